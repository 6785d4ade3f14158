import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Payload } from '@temporalio/common';
import { HttpError, listenOn, readBody, sameSecret, type Listening } from '../config/http-server';
import { AesGcmPayloadCodec, type PayloadKeys } from '../config/payload-encryption';

/** Batches of payloads as the UI sends them; Temporal caps one payload at 2 MB. */
const maxBodyBytes = 16 * 1024 * 1024;

export interface CodecServerOptions {
  encryption: PayloadKeys;
  /** host:port; port 0 picks a free one (tests). */
  listen: string;
  token: string;
  /** Browser origins (the Temporal UI's) allowed to call; others get no CORS headers. */
  corsOrigins: string[];
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** Its url is http://host:port; the UI's codec endpoint is `${url}/${token}` (see README "Payload encryption"). */
export type CodecServer = Listening;

/** A payload in the JSON form of Temporal's codec server protocol: bytes as base64. */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const fromJson = (payload: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')])),
  data: Buffer.from(payload.data ?? '', 'base64'),
});

const toJson = (payload: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? []).toString('base64')])),
  data: Buffer.from(payload.data ?? []).toString('base64'),
});

function parsePayloads(text: string): JsonPayload[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not JSON; expected {"payloads": [...]}');
  }
  const payloads = (body as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads) || payloads.some((p) => typeof p !== 'object' || p === null)) throw new HttpError(400, 'expected {"payloads": [{"metadata": {...}, "data": "<base64>"}, ...]}');
  return payloads as JsonPayload[];
}

/**
 * The route and whether the caller proved the token: by `Authorization: Bearer <token>`, or as the
 * first path segment (`/<token>/decode`) for a UI that cannot add a header (the dev server's UI
 * has no login, so it has no access token to pass).
 */
function route(req: IncomingMessage, token: string): { action: string; authorized: boolean } {
  const segments = new URL(req.url ?? '/', 'http://codec').pathname.split('/').filter(Boolean);
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (segments.length === 2) return { action: segments[1]!, authorized: sameSecret(segments[0]!, token) || (bearer !== undefined && sameSecret(bearer, token)) };
  return { action: segments[0] ?? '', authorized: bearer !== undefined && sameSecret(bearer, token) };
}

/**
 * Temporal's codec server protocol: POST /encode and /decode with {"payloads": [...]}, so the
 * Temporal UI (and `temporal` CLI users) see decrypted payloads. Every call needs the token; the
 * UI's origins get CORS answers. Neither tokens nor payloads are ever logged.
 */
export async function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  const codec = new AesGcmPayloadCodec(options.encryption);
  const log = options.log ?? (() => {});

  function corsHeaders(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    if (!origin || !options.corsOrigins.includes(origin)) return {};
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': 'POST, OPTIONS',
      'access-control-allow-headers': 'content-type, x-namespace, authorization',
      'access-control-allow-credentials': 'true',
      'access-control-max-age': '600',
      vary: 'Origin',
    };
  }

  function send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...corsHeaders(req), ...headers });
    res.end(`${JSON.stringify(body)}\n`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { action, authorized } = route(req, options.token);
    if (req.method === 'OPTIONS') {
      // A preflight carries no credentials; it only learns whether this origin may call.
      const cors = corsHeaders(req);
      res.writeHead(Object.keys(cors).length > 0 ? 204 : 403, cors);
      res.end();
      return;
    }
    if (action !== 'encode' && action !== 'decode') throw new HttpError(404, 'not found; POST /encode or /decode');
    if (req.method !== 'POST') throw new HttpError(405, 'POST only');
    if (!authorized) throw new HttpError(401, 'missing or wrong bearer token');
    const payloads = parsePayloads(await readBody(req, maxBodyBytes)).map(fromJson);
    const result = action === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
    send(req, res, 200, { payloads: result.map(toJson) });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 400;
      const message = err instanceof Error ? err.message : String(err);
      log('warn', 'codec request refused', { status, error: message, namespace: req.headers['x-namespace'] });
      if (!res.headersSent) send(req, res, status, { error: message }, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  const listening = await listenOn(server, options.listen);
  log('info', 'codec server listening', { url: listening.url, corsOrigins: options.corsOrigins, activeKeyId: options.encryption.activeKeyId });
  return listening;
}
