import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { Client as PgClient } from 'pg';
import type { DatabaseOptimizationResult } from '../../workflows/database-optimization';
import { workflowBundle } from '../../workers/run-worker';
import { waitUntil } from '../../scripts/testbed/processes';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres-scratch';
import { startScript, type RunningProcess } from '../helpers/process-output';
import { testbedConfig, testbedEnv, unsignedTeam } from '../helpers/testbed';
import { withRunbookClient } from '../helpers/worker';
import { approveEach } from '../helpers/runbook-runs';
import { recordHistory } from '../helpers/histories';

/**
 * A worker SIGKILLed while its CREATE INDEX CONCURRENTLY waits for an open writer: the build goes
 * on in its server session; the retry on another worker waits for it instead of building a second
 * time, then builds the rest. Real worker processes, the real PostgreSQL 15.
 */
describe('databaseOptimization: a worker killed during a concurrent build', () => {
  let scratch: ScratchDatabase;
  let bundleDir: string;
  const workers: RunningProcess[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase('dbopt_kill', { seed: true });
    bundleDir = mkdtempSync(join(tmpdir(), 'dbopt-bundle-'));
    // One bundle for both worker processes (webpack once, not at each start).
    const { code } = await bundleWorkflowCode({ workflowsPath: workflowBundle.workflowsPath, workflowInterceptorModules: workflowBundle.interceptors.workflowModules });
    writeFileSync(join(bundleDir, 'bundle.js'), code);
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await scratch?.drop();
    rmSync(bundleDir, { recursive: true, force: true });
  });

  test('the build of the killed worker finishes in its session, the retry waits for it: each index once, VALID, no INVALID leftover, the run completes', async () => {
    const admin = new PgClient({ connectionString: scratch.adminUrl, application_name: 'dbopt-writer' });
    await admin.connect();
    const query = async <T extends Record<string, unknown>>(text: string) => (await admin.query<T>(text)).rows;
    const holder = new PgClient({ connectionString: scratch.adminUrl, application_name: 'dbopt-open-writer' });
    await holder.connect();
    // An open writer on projects: CREATE INDEX CONCURRENTLY on it waits ("waiting for writers before build").
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE projects IN ROW EXCLUSIVE MODE');

    const config = testbedConfig({ DATABASE_URL: scratch.url, ALLOWED_DATABASES: scratch.name, RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam) });
    const start = () => {
      const worker = startScript('workers/main.ts', {
        ...process.env,
        ...testbedEnv(),
        DATABASE_URL: scratch.url,
        ALLOWED_DATABASES: scratch.name,
        RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam),
        TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
        WORKFLOW_BUNDLE: join(bundleDir, 'bundle.js'),
        WORKER_METRICS_HOST: '127.0.0.1',
        WORKER_METRICS_PORT: '0',
      });
      workers.push(worker);
      return worker;
    };
    const building = async () =>
      query<{ pid: number; phase: string; index: string }>(
        `SELECT p.pid, p.phase, p.index_relid::regclass::text AS index FROM pg_stat_progress_create_index AS p WHERE p.datname = current_database()`,
      );

    try {
      const first = start();
      await first.waitForLine((line) => line.includes('"worker ready"'));
      const result = await withRunbookClient(config, async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('databaseOptimization', { database: scratch.name, mode: 'execute' }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['create-indexes']);
        await waitUntil('CREATE INDEX CONCURRENTLY waiting for the open writer', async () => (await building()).some((b) => b.phase.startsWith('waiting for writers')));
        const [orphan] = await building();
        expect(orphan).toMatchObject({ index: 'idx_projects_user_created' });

        first.child.kill('SIGKILL');
        await first.exited;
        // The killed worker's session goes on building: PostgreSQL does not notice a dead client while it waits.
        expect((await building()).map((b) => b.pid)).toEqual([orphan!.pid]);

        const second = start();
        // The retry (after the lost heartbeat) finds the build running and waits for it rather than start another.
        await second.waitForLine((line) => line.includes('waiting for the build of the index another session runs') && line.includes(`"pid":${orphan!.pid}`), 90_000);
        await holder.query('COMMIT');
        const finished = await runbooks.waitForResult<DatabaseOptimizationResult>(workflowId);
        await recordHistory(client.workflow.getHandle(workflowId), 'worker-killed-during-build');
        return finished;
      });

      expect(result.outcome).toBe('completed');
      expect(result.indexes.map((i) => [i.name, i.state, i.after])).toEqual([
        ['idx_projects_user_created', 'missing', 'valid'],
        ['idx_storyboards_project', 'missing', 'valid'],
        ['idx_characters_user', 'missing', 'valid'],
        ['idx_projects_name_gin', 'missing', 'valid'],
      ]);
      expect(result.timeline.find((e) => e.event === 'applied' && e.stepId === 'create-indexes')?.detail).toMatch(
        /^idx_projects_user_created built by an earlier attempt \(valid, \d+ kB\); idx_storyboards_project created/,
      );
      // Each index exactly once (no second index on the same columns under another name), all VALID.
      const onProjects = await query<{ name: string; valid: boolean; def: string }>(
        `SELECT c.relname AS name, i.indisvalid AS valid, pg_get_indexdef(c.oid) AS def FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
          WHERE i.indrelid IN ('projects'::regclass, 'storyboards'::regclass, 'characters'::regclass) AND NOT i.indisprimary ORDER BY 1`,
      );
      expect(onProjects.map((r) => [r.name, r.valid])).toEqual([
        ['idx_characters_user', true],
        ['idx_projects_name_gin', true],
        ['idx_projects_user_created', true],
        ['idx_storyboards_project', true],
      ]);
      expect(await query(`SELECT 1 FROM pg_index WHERE NOT indisvalid`)).toEqual([]);
      expect(await building()).toEqual([]);
      // No credential in what either worker logged (the killed one's last lines included).
      const logged = workers.flatMap((w) => w.lines).join('\n');
      expect(logged).toContain('waiting for the build of the index another session runs');
      for (const secret of [testbedEnv().TESTBED_WORKER_DATABASE_PASSWORD!, testbedEnv().TESTBED_POSTGRES_PASSWORD!]) expect(logged).not.toContain(secret);
    } finally {
      await holder.end().catch(() => undefined);
      await admin.end();
    }
  });
});
