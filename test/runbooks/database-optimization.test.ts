import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import type { DatabaseOptimizationResult } from '../../workflows/database-optimization';
import { tableOwnerRole } from '../../scripts/testbed/seed-postgres';
import { recordHistory } from '../helpers/histories';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres-scratch';
import { testbedConfig, testbedEnv, unsignedTeam } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { approveEach, expectIncidentReport, historyText, readBucketText, scheduledActivityTypes } from '../helpers/runbook-runs';

/** 性能优化 → 数据库优化 against the real PostgreSQL 15 of the test bed, in a seeded database of its own. */
describe('databaseOptimization', () => {
  let scratch: ScratchDatabase;
  let config: ReturnType<typeof testbedConfig>;

  async function sql<T extends Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
    const admin = new PgClient({ connectionString: scratch.adminUrl, application_name: 'dbopt-test' });
    await admin.connect();
    try {
      return (await admin.query<T>(text, values)).rows;
    } finally {
      await admin.end();
    }
  }
  const count = async (table: string) => Number((await sql<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0]!.n);
  const indexStates = async () =>
    Object.fromEntries(
      (
        await sql<{ name: string; valid: boolean }>(
          `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
            WHERE c.relname IN ('idx_projects_user_created', 'idx_storyboards_project', 'idx_characters_user', 'idx_projects_name_gin')`,
        )
      ).map((r) => [r.name, r.valid]),
    );

  /** Statements pg_stat_statements then lists as the slowest of this database (each sleeps 100 ms, once: the sleep is an InitPlan, not run per row). */
  const slow = {
    select: `SELECT p.id, p.name FROM projects AS p WHERE p.user_id = 7 AND (SELECT pg_sleep(0.1)) IS NOT NULL ORDER BY p.created_at DESC`,
    insert: `INSERT INTO characters (user_id, name) SELECT 1, 'slow insert' FROM pg_sleep(0.1)`,
    update: `UPDATE storyboards SET position = position + 1 WHERE id = 1 AND (SELECT pg_sleep(0.1)) IS NOT NULL`,
    delete: `DELETE FROM sessions WHERE id = 'none' AND (SELECT pg_sleep(0.1)) IS NOT NULL`,
    lock: `SELECT id FROM users WHERE id = 3 AND (SELECT pg_sleep(0.1)) IS NOT NULL FOR UPDATE`,
    cte: `WITH gone AS (DELETE FROM dbopt_victim WHERE (SELECT pg_sleep(0.1)) IS NULL RETURNING id) SELECT count(*) FROM gone`,
    // The attack: DROP TABLE in a text pg_stat_statements keeps verbatim (a DO block is not normalized).
    drop: `DO $$BEGIN PERFORM pg_sleep(0.1); IF now() < '2000-01-01' THEN DROP TABLE dbopt_victim; END IF; END$$`,
    comment: `SELECT count(*) FROM dbopt_victim /* ; DROP TABLE dbopt_victim; */ WHERE (SELECT pg_sleep(0.1)) IS NOT NULL`,
  };

  beforeAll(async () => {
    scratch = await createScratchDatabase('dbopt', { seed: true });
    config = testbedConfig({ DATABASE_URL: scratch.url, ALLOWED_DATABASES: scratch.name, RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam) });
    // A table whose index is mostly empty pages: 20000 rows, 95% deleted, vacuumed, analyzed.
    await sql(`CREATE TABLE dbopt_bloat (id integer NOT NULL, pad text)`);
    await sql(`CREATE INDEX dbopt_bloat_id ON dbopt_bloat (id)`);
    await sql(`INSERT INTO dbopt_bloat SELECT i, 'x' FROM generate_series(1, 20000) AS i`);
    await sql(`DELETE FROM dbopt_bloat WHERE id % 20 <> 0`);
    await sql(`VACUUM ANALYZE dbopt_bloat`);
    await sql(`ALTER TABLE dbopt_bloat OWNER TO ${tableOwnerRole}`);
    // What an interrupted REINDEX CONCURRENTLY of it leaves: an INVALID dbopt_bloat_id_ccnew (here a failed unique build).
    await expect(sql('CREATE UNIQUE INDEX CONCURRENTLY dbopt_bloat_id_ccnew ON dbopt_bloat ((1))')).rejects.toMatchObject({ code: '23505' });
    await sql(`CREATE TABLE dbopt_victim (id integer)`);
    await sql(`INSERT INTO dbopt_victim SELECT generate_series(1, 10)`);
    await sql(`ALTER TABLE dbopt_victim OWNER TO ${tableOwnerRole}`);
    // A failed concurrent build leaves an INVALID index behind: a unique index on a column with duplicates.
    await expect(sql('CREATE UNIQUE INDEX CONCURRENTLY idx_storyboards_project ON storyboards (project_id)')).rejects.toMatchObject({ code: '23505' });
    for (const text of Object.values(slow)) await sql(text);
    await sql(`DELETE FROM characters WHERE name = 'slow insert'`);
  });

  afterAll(async () => {
    await scratch?.drop();
  });

  test('bad input and an attacker: refused before anything is read, and nothing changes', async () => {
    const before = { indexes: await indexStates(), victim: await count('dbopt_victim') };
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      // The client refuses what the workflow would.
      await expect(runbooks.startRunbook('databaseOptimization', { database: scratch.name, reindexBloatAbove: 0 }, { startedBy: 'erin' })).rejects.toThrow(/reindexBloatAbove: at least 0\.2/);
      // Started past the client: non-retryable, the field named, no activity run.
      const bad = await client.workflow.start('databaseOptimization', {
        taskQueue,
        workflowId: `dbopt-bad-${randomUUID()}`,
        args: [{ database: 'short_drama_prod; DROP TABLE users', reindexBloatAbove: 0, reindexMinBytes: 1, mode: 'execute' }],
      });
      const failed = await bad.result().catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(WorkflowFailedError);
      const cause = (failed as WorkflowFailedError).cause as { type?: string; nonRetryable?: boolean; message: string };
      expect(cause).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
      expect(cause.message).toMatch(/database: expected a database name/);
      expect(cause.message).toMatch(/reindexBloatAbove: at least 0\.2/);
      expect(cause.message).toMatch(/reindexMinBytes: at least 65536/);
      expect(await scheduledActivityTypes(bad)).toEqual([]);
      // A database that is not allowlisted (the shared one): refused by the first activity, before any read.
      const other = await client.workflow.start('databaseOptimization', { taskQueue, workflowId: `dbopt-other-${randomUUID()}`, args: [{ database: 'short_drama_prod', mode: 'execute' }] });
      const refused = await other.result().catch((err: unknown) => err);
      expect((refused as WorkflowFailedError).cause?.cause).toMatchObject({ type: 'Refused', message: expect.stringMatching(/short_drama_prod/) });
      expect(await scheduledActivityTypes(other)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    expect({ indexes: await indexStates(), victim: await count('dbopt_victim') }).toEqual(before);
  });

  test('plan, then execute with approval: plans of SELECTs only, nothing else executed; missing and INVALID indexes built CONCURRENTLY, the bloated index rebuilt, ANALYZE; sizes and served statements reported', async () => {
    const counts = async () => ({
      characters: await count('characters'),
      victim: await count('dbopt_victim'),
      position: (await sql<{ p: number }>('SELECT position AS p FROM storyboards WHERE id = 1'))[0]!.p,
    });
    const before = await counts();
    const input = { database: scratch.name, slowStatements: 30, reindexMinBytes: 65_536 };
    const [plan, done] = await withRunbooks(config, async ({ runbooks, client }) => {
      const planned = await runbooks.waitForResult<DatabaseOptimizationResult>((await runbooks.startRunbook('databaseOptimization', input, { startedBy: 'erin' })).workflowId);
      const { workflowId } = await runbooks.startRunbook('databaseOptimization', { ...input, mode: 'execute' }, { startedBy: 'erin' });
      await approveEach(runbooks, workflowId, ['create-indexes', 'reindex-bloated']);
      const finished = await runbooks.waitForResult<DatabaseOptimizationResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved');
      expect(historyText((await client.workflow.getHandle(workflowId).fetchHistory()).events).join('\n')).not.toContain(testbedEnv().TESTBED_WORKER_DATABASE_PASSWORD!);
      return [planned, finished];
    });

    // Plan mode: the exact changes, none made.
    expect(plan.outcome).toBe('planned');
    expect(plan.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      [
        'create-indexes',
        `CREATE INDEX CONCURRENTLY on ${scratch.name}: idx_projects_user_created, idx_storyboards_project (INVALID leftover: DROP INDEX CONCURRENTLY, then build), idx_characters_user, idx_projects_name_gin`,
      ],
      ['reindex-bloated', expect.stringMatching(new RegExp(`^REINDEX INDEX CONCURRENTLY on ${scratch.name}: public\\.dbopt_bloat_id \\(\\d+% of \\d+ kB estimated bloat\\)$`))],
    ]);
    const markers: Record<keyof typeof slow, string> = {
      select: 'ORDER BY p.created_at DESC',
      insert: 'INSERT INTO characters',
      update: 'UPDATE storyboards SET position',
      delete: 'DELETE FROM sessions',
      lock: 'FOR UPDATE',
      cte: 'WITH gone AS',
      drop: 'DO $$BEGIN',
      comment: '/* ; DROP TABLE',
    };
    const shown = (text: string) => {
      const key = (Object.keys(slow) as Array<keyof typeof slow>).find((k) => slow[k] === text)!;
      return plan.statements.find((s) => s.query.includes(markers[key]));
    };
    // A SELECT: a plan, the generic one ($1 kept).
    expect(shown(slow.select)).toMatchObject({ plan: expect.arrayContaining([expect.stringMatching(/Sort|Seq Scan|Index Scan/)]) });
    expect(shown(slow.select)!.plan!.join('\n')).toMatch(/\$\d/);
    // Everything else: text, the reason given, no plan.
    const reasons = Object.fromEntries((['insert', 'update', 'delete', 'lock', 'cte', 'drop'] as const).map((k) => [k, shown(slow[k])?.textOnly]));
    expect(reasons).toEqual({
      insert: 'not a SELECT (starts with INSERT)',
      update: 'not a SELECT (starts with UPDATE)',
      delete: 'not a SELECT (starts with DELETE)',
      lock: 'a locking clause (FOR UPDATE/SHARE)',
      cte: 'not a SELECT (starts with WITH)',
      drop: 'not a SELECT (starts with DO)',
    });
    // The comment's "; DROP TABLE" is no statement: planned (never run) like any SELECT.
    expect(shown(slow.comment)?.plan).not.toBeNull();
    expect(plan.indexes.find((i) => i.name === 'idx_projects_user_created')).toMatchObject({
      state: 'missing',
      bytesBefore: null,
      mayServe: [expect.stringMatching(/^SELECT p\.id, p\.name FROM projects/)],
    });
    expect(plan.bloat.indexes.find((i) => i.index === 'dbopt_bloat_id')?.bloatRatio).toBeGreaterThan(0.8);

    // Execute: both steps approved and applied.
    expect(done.outcome).toBe('completed');
    expect(done.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['create-indexes', 'reindex-bloated']);
    expect(await indexStates()).toEqual({ idx_projects_user_created: true, idx_storyboards_project: true, idx_characters_user: true, idx_projects_name_gin: true });
    expect(done.indexes.map((i) => [i.name, i.state, i.after])).toEqual([
      ['idx_projects_user_created', 'missing', 'valid'],
      ['idx_storyboards_project', 'invalid', 'valid'],
      ['idx_characters_user', 'missing', 'valid'],
      ['idx_projects_name_gin', 'missing', 'valid'],
    ]);
    for (const i of done.indexes) expect(i.bytesAfter).toBeGreaterThan(0);
    const [rebuilt] = done.reindexed;
    expect(rebuilt).toMatchObject({ index: 'dbopt_bloat_id', action: 'reindexed', droppedLeftovers: ['dbopt_bloat_id_ccnew'] });
    expect(rebuilt!.bytesAfter!).toBeLessThan(rebuilt!.bytesBefore / 3);
    expect(done.analyzed.sort()).toEqual(['public.characters', 'public.dbopt_bloat', 'public.projects', 'public.storyboards']);
    expect(done.timeline.find((e) => e.stepId === 'verify')?.detail).toMatch(/^verified: index idx_projects_user_created valid/);
    // The report in S3: each index's cost and the slow statements it may serve, what was rebuilt.
    const markdown = await readBucketText(done.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toMatch(/idx_projects_user_created on projects: missing -> valid, - -> \d+ kB; may serve "SELECT p\.id, p\.name FROM projects/);
    expect(markdown).toMatch(/Rebuilt: dbopt_bloat_id reindexed \(\d+ kB -> \d+ kB\)/);
    expect(markdown).not.toContain(testbedEnv().TESTBED_WORKER_DATABASE_PASSWORD!);
    // Nothing but the plans ran: no row written by the slow writes, the victim table still there.
    expect(await counts()).toEqual(before);
    // No statement of ours left prepared in a pooled session, no INVALID index anywhere.
    expect(await sql(`SELECT c.relname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid WHERE NOT i.indisvalid`)).toEqual([]);

    // Again: nothing to do, said so.
    const again = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('databaseOptimization', { ...input, mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<DatabaseOptimizationResult>(workflowId);
    });
    expect(again.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual([
      ['create-indexes', "nothing to change: the manual's indexes are all valid; none to create"],
      ['reindex-bloated', 'nothing to change: no index has an estimated bloat of 40% or more at 64 kB or more; none to rebuild'],
    ]);
  });
});
