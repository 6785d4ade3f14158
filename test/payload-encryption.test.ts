import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { createRunbookClient } from '../client';
import { startCodecServer, type CodecServer } from '../workers/codec-server';
import type { RunbookResultBase } from '../common/runbook';
import { lockWorkflowId } from '../common/target-lock-messages';
import { pendingOf } from './helpers/runbook-runs';
import { TestTargets } from './helpers/test-target';
import { testbedConfig, unsignedTeam } from './helpers/testbed';
import { withWorker } from './helpers/worker';
import { extraCatalog } from './workflows/test-catalog';

type History = temporal.api.history.v1.IHistory;
type RawPayload = temporal.api.common.v1.IPayload;

const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');

/** Every payload of run data in a history, with where it sits. */
function payloadsOf(history: History): Array<{ where: string; payload: RawPayload }> {
  const found: Array<{ where: string; payload: RawPayload }> = [];
  const walk = (node: unknown, where: string): void => {
    if (node === null || typeof node !== 'object' || node instanceof Uint8Array) return;
    // Search attributes are indexed by the server in plaintext by design; patch markers hold the SDK's patch ids, not run data.
    if (where.endsWith('.searchAttributes') || where.endsWith('.patch-data')) return;
    const record = node as Record<string, unknown>;
    if (record.data instanceof Uint8Array && typeof record.metadata === 'object') {
      found.push({ where, payload: record as RawPayload });
      return;
    }
    for (const [key, value] of Object.entries(record)) walk(value, `${where}.${key}`);
  };
  for (const event of history.events ?? []) walk(event, `event ${String(event.eventId)}`);
  return found;
}

describe('payload encryption (real Temporal dev server)', () => {
  const oldKey = randomBytes(32).toString('base64');
  const activeKey = randomBytes(32).toString('base64');
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam),
    RUNBOOK_PAYLOAD_KEYS: JSON.stringify({ 'old-1': oldKey, 'active-2': activeKey }),
    RUNBOOK_PAYLOAD_KEY_ID: 'active-2',
  });
  const targets = new TestTargets();
  const target = `test/${randomUUID()}`;
  const title = `Raise the limit ${randomUUID()}`;
  const reason = `the limit is too low ${randomUUID()}`;
  let workflowId = '';
  let result: RunbookResultBase;
  let rawHistory: History;
  let rawLockHistory: History;
  let rawConnection: Connection;

  beforeAll(async () => {
    result = await withWorker(
      config,
      async ({ client, taskQueue }) => {
        const runbooks = createRunbookClient({ client, taskQueue, catalog: extraCatalog });
        ({ workflowId } = await runbooks.startRunbook('kernelTestRunbook', { mode: 'execute', target, report: false, steps: [{ id: 'raise', title }] }, { startedBy: 'erin' }));
        const pending = await pendingOf(runbooks, workflowId, 'raise');
        await runbooks.approve(workflowId, { stepId: 'raise', planHash: pending.planHash, approver: 'bob', reason });
        return runbooks.waitForResult<RunbookResultBase>(workflowId);
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
    // A client without the codec: what anyone with access to Temporal (or its database) sees.
    rawConnection = await Connection.connect({ address: config.temporal.address });
    const raw = new Client({ connection: rawConnection, namespace: config.temporal.namespace });
    rawHistory = await raw.workflow.getHandle(workflowId).fetchHistory();
    rawLockHistory = await raw.workflow.getHandle(lockWorkflowId(target)).fetchHistory();
  });

  afterAll(async () => {
    await rawConnection?.close();
  });

  test('the client API with the codec reads input, timeline and result in plaintext', () => {
    expect(result.outcome).toBe('completed');
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({ by: 'bob', reason });
    expect(JSON.stringify(result)).toContain(title);
  });

  test('the raw history holds no plaintext: every payload is encrypted with the active key', () => {
    for (const history of [rawHistory, rawLockHistory]) {
      const payloads = payloadsOf(history);
      expect(payloads.length).toBeGreaterThan(3);
      for (const { where, payload } of payloads) {
        expect({ where, encoding: text(payload.metadata?.encoding), keyId: text(payload.metadata?.['encryption-key-id']) }).toEqual({ where, encoding: 'binary/encrypted', keyId: 'active-2' });
        for (const secret of [target, title, reason]) expect({ where, contains: text(payload.data).includes(secret) }).toEqual({ where, contains: false });
      }
    }
    // Nor anywhere else in the history (failure messages, summaries): only payloads carried these.
    const everything = JSON.stringify(rawHistory.events, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : value));
    expect(everything).not.toContain(title);
    expect(everything).not.toContain(reason);
  });

  describe('codec server', () => {
    const token = randomBytes(18).toString('hex');
    const uiOrigin = 'http://127.0.0.1:8233';
    let server: CodecServer;

    beforeAll(async () => {
      server = await startCodecServer({ encryption: config.temporal.payloadEncryption!, listen: '127.0.0.1:0', token, corsOrigins: [uiOrigin] });
    });
    afterAll(() => server?.close());

    const completed = () => {
      const event = rawHistory.events!.find((e) => e.workflowExecutionCompletedEventAttributes);
      const payload = event!.workflowExecutionCompletedEventAttributes!.result!.payloads![0]!;
      return {
        metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
        data: Buffer.from(payload.data!).toString('base64'),
      };
    };
    const decode = (path: string, headers: Record<string, string>) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers }, body: JSON.stringify({ payloads: [completed()] }) });

    test('/decode gives the UI the plaintext of a history payload with the token, by header or path', async () => {
      for (const response of [await decode('/decode', { authorization: `Bearer ${token}` }), await decode(`/${token}/decode`, { origin: uiOrigin })]) {
        expect(response.status).toBe(200);
        const { payloads } = (await response.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
        expect(Buffer.from(payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
        expect(Buffer.from(payloads[0]!.data, 'base64').toString()).toContain(reason);
      }
      expect((await decode(`/${token}/decode`, { origin: uiOrigin })).headers.get('access-control-allow-origin')).toBe(uiOrigin);
    });

    test('without the right token: 401 and no plaintext', async () => {
      for (const response of [await decode('/decode', {}), await decode('/decode', { authorization: 'Bearer wrong' }), await decode('/wrong/decode', {})]) {
        expect(response.status).toBe(401);
        expect(await response.text()).not.toContain(reason);
      }
    });

    test('/encode round-trips through /decode', async () => {
      const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"hello"').toString('base64') };
      const encoded = (await (await fetch(`${server.url}/encode`, { method: 'POST', headers: auth, body: JSON.stringify({ payloads: [plain] }) })).json()) as { payloads: unknown[] };
      expect(Buffer.from((encoded.payloads[0] as { metadata: Record<string, string> }).metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
      const decoded = (await (await fetch(`${server.url}/decode`, { method: 'POST', headers: auth, body: JSON.stringify(encoded) })).json()) as { payloads: unknown[] };
      expect(decoded.payloads).toEqual([plain]);
    });

    test("CORS: the UI's origin gets its preflight answered, another origin does not", async () => {
      const preflight = (origin: string) =>
        fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' } });
      const allowed = await preflight(uiOrigin);
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(uiOrigin);
      expect(allowed.headers.get('access-control-allow-headers')).toBe('content-type, x-namespace, authorization');
      const other = await preflight('http://evil.example');
      expect(other.status).toBe(403);
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    });
  });
});
