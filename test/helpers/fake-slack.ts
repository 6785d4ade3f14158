import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  method: string;
  authorization: string | undefined;
  args: Record<string, unknown>;
}

/**
 * Slack's Web API as far as the approvals use it (chat.postMessage, chat.postEphemeral,
 * views.open), on loopback: it answers as Slack does ({ ok: true, ... }) and records each call,
 * with form fields that carry JSON (blocks, view) decoded.
 */
export async function startFakeSlack(): Promise<{ apiUrl: string; calls: SlackCall[]; close: () => Promise<void> }> {
  const calls: SlackCall[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const method = (req.url ?? '').replace(/^\/api\//, '');
      const form = Object.fromEntries(new URLSearchParams(body));
      const args: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(form)) {
        try {
          args[key] = /^[[{]/.test(value) ? JSON.parse(value) : value;
        } catch {
          args[key] = value;
        }
      }
      calls.push({ method, authorization: req.headers.authorization, args });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(method === 'views.open' ? { ok: true, view: { id: 'V0TEST' } } : { ok: true, ts: `${Date.now() / 1000}`, channel: 'C0OPS' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An interactivity request exactly as Slack sends it: form-encoded payload, v0 HMAC-SHA256 signature. */
export function slackInteractivityRequest(payload: unknown, signingSecret: string, timestampSeconds = Math.floor(Date.now() / 1000)): { body: string; headers: Record<string, string> } {
  const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
  const signature = `v0=${createHmac('sha256', signingSecret).update(`v0:${timestampSeconds}:${body}`).digest('hex')}`;
  return { body, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(timestampSeconds), 'x-slack-signature': signature } };
}
