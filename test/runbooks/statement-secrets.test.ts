import { randomBytes, randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { createRunbookClient } from '../../client';
import type { ChecklistResult } from '../../common/checklist';
import type { RunbookConfig } from '../../config/schema';
import { waitUntil } from '../../scripts/testbed/processes';
import { createScratchDatabase, withAdmin, type ScratchDatabase } from '../helpers/postgres-scratch';
import { readBucketText, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';

/** Every string and every payload (decoded) of a run's history, as one text to search. */
async function historyText(handle: WorkflowHandle): Promise<string> {
  const parts: string[] = [];
  const walk = (value: unknown): void => {
    if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('utf8'));
    else if (typeof value === 'string') parts.push(value);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(await handle.fetchHistory());
  return parts.join('\n');
}

/** What the process prints while `body` runs (the worker's and the activities' logs go to stdout/stderr). */
async function capturingOutput<T>(body: () => Promise<T>): Promise<{ value: T; output: string }> {
  const chunks: string[] = [];
  const originals = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  const tap = (original: typeof process.stdout.write) =>
    ((chunk: unknown, ...rest: unknown[]) => {
      chunks.push(String(chunk));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
  process.stdout.write = tap(originals.out);
  process.stderr.write = tap(originals.err);
  try {
    return { value: await body(), output: chunks.join('') };
  } finally {
    process.stdout.write = originals.out;
    process.stderr.write = originals.err;
  }
}

/**
 * Issue 13 item 10: a password rotation's SCRAM verifier and a new role's plaintext password
 * executed for real reach pg_stat_statements; the slow-statement checks of dailyHealthCheck and
 * weeklyReview show those statements (held on a lock so they are the slowest) with the
 * credentials redacted, and neither secret is in the histories, the reports, the notifications
 * or the output of the worker.
 */
describe('statement texts carry no credentials', () => {
  const env = testbedEnv();
  const role = `pgtest_secret_${randomBytes(4).toString('hex')}`;
  /** Exists before the rotation-like ALTER ROLE. */
  const rotated = `${role}_rotated`;
  const plaintext = `Plain-${randomUUID()}`;
  const b64 = (n: number) => randomBytes(n).toString('base64');
  const verifier = `SCRAM-SHA-256$4096:${b64(16)}$${b64(32)}:${b64(32)}`;
  const secrets = [plaintext, verifier, verifier.split('$')[2]!];
  let scratch: ScratchDatabase;
  let config: RunbookConfig;

  const expectNoSecret = (where: string, text: string) => {
    for (const secret of secrets) expect({ where, leaked: text.includes(secret) }).toEqual({ where, leaked: false });
  };

  /** Runs the two statements in the scratch database while pg_authid is locked, so each takes over a second. */
  async function slowCredentialStatements(): Promise<void> {
    // Roles and pg_authid's lock are the superuser's; the worker's role could do neither.
    const locker = new PgClient({ connectionString: scratch.adminUrl, application_name: 'pgtest-secrets-lock' });
    const sessions = [0, 1].map(() => new PgClient({ connectionString: scratch.adminUrl, application_name: 'pgtest-secrets' }));
    await Promise.all([locker, ...sessions].map((c) => c.connect()));
    try {
      await locker.query(`CREATE ROLE ${rotated} LOGIN`);
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE pg_catalog.pg_authid IN EXCLUSIVE MODE');
      const created = sessions[0]!.query(`CREATE ROLE ${role} LOGIN PASSWORD '${plaintext}'`);
      await waitUntil('CREATE ROLE waiting on the lock', async () => (await waiting()) === 1);
      const altered = sessions[1]!.query(`ALTER ROLE ${rotated} PASSWORD '${verifier}'`);
      await waitUntil('ALTER ROLE waiting on the lock', async () => (await waiting()) === 2);
      // Held on purpose (not a synchronisation): the statements must be slower than the 1 s threshold.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      await locker.query('COMMIT');
      await Promise.all([created, altered]);
    } finally {
      await Promise.all([locker, ...sessions].map((c) => c.end()));
    }
    async function waiting(): Promise<number> {
      const { rows } = await locker.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgtest-secrets' AND wait_event_type = 'Lock'`);
      return rows[0]!.n;
    }
  }

  async function run(workflowType: 'dailyHealthCheck' | 'weeklyReview', input: Record<string, unknown>): Promise<{ result: ChecklistResult; history: string; output: string }> {
    const workflowId = `${workflowType}/${namespace}`;
    await terminateRuns(config.temporal, [workflowId, `lock/${namespace}`]);
    const { value, output } = await capturingOutput(() =>
      withWorker(config, async ({ client }) => {
        const runbooks = createRunbookClient({ client, taskQueue: config.temporal.taskQueue });
        const { workflowId: id } = await runbooks.startRunbook(workflowType, input, { startedBy: 'test' });
        const result = await runbooks.waitForResult<ChecklistResult>(id);
        return { result, history: await historyText(client.workflow.getHandle(id)) };
      }),
    );
    return { ...value, output };
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase('secrets', { seed: true });
    config = testbedConfig({ DATABASE_URL: scratch.url, ALLOWED_DATABASES: scratch.name });
    await slowCredentialStatements();
  }, 60_000);

  afterAll(async () => {
    await terminateRuns(config.temporal, [`dailyHealthCheck/${namespace}`, `weeklyReview/${namespace}`, `lock/${namespace}`]).catch(() => undefined);
    await withAdmin(async (admin) => {
      for (const name of [role, rotated]) await admin.query(`DROP ROLE IF EXISTS ${name}`);
    });
    await scratch?.drop();
  });

  test.each([
    ['dailyHealthCheck', { only: ['slow-statements'] }],
    ['weeklyReview', { database: 'placeholder', window: '1m' }],
  ] as const)(
    '%s: the statements are reported, their credentials are not',
    async (workflowType, input) => {
      const { result, history, output } = await run(workflowType, { ...input, ...('database' in input ? { database: scratch.name } : {}) });
      const row = result.checks.find((r) => r.id === 'database.slow-statements')!;
      // The positive control: the slowest statement is one of the two, shown redacted.
      expect(row).toMatchObject({ status: 'WARN', detail: expect.stringMatching(/(CREATE|ALTER) ROLE pgtest_secret_\w+ (LOGIN )?PASSWORD '\*\*\*'/) });
      expect(history).toContain(`CREATE ROLE ${role} LOGIN PASSWORD '***'`);
      expect(history).toContain(`ALTER ROLE ${rotated} PASSWORD '***'`);
      expectNoSecret('history', history);
      expectNoSecret('result', JSON.stringify(result));
      expectNoSecret('report (JSON)', await readBucketText(result.checklistReport!.jsonKey));
      expectNoSecret('report (Markdown)', await readBucketText(result.checklistReport!.markdownKey));
      expectNoSecret('notifications', JSON.stringify(await (await fetch(`${env.TESTBED_WEBHOOK_URL}/messages`)).json()));
      expectNoSecret('worker output', output);
    },
    240_000,
  );
});
