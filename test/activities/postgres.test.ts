import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Client, Pool } from 'pg';
import { createPostgresActivities, type PostgresDeps } from '../../activities/postgres';
import { assertScratchName, defaultScratchName, drillRoleOf } from '../../activities/postgres-restore';
import { chooseStatementTimingColumns, slowestStatementsSql, statementTextLimit } from '../../activities/postgres-statistics';
import { closedPort, testbedEnv, testbedS3 } from '../helpers/testbed';
import { createScratchDatabase, databaseExists, uniqueSuffix, waitUntil, withAdmin, type ScratchDatabase } from '../helpers/postgres-scratch';

type Activities = ReturnType<typeof createPostgresActivities>;

const env = testbedEnv();
const suffix = uniqueSuffix();
const s3 = testbedS3();
const bucket = env.S3_BUCKET!;
const pools: Pool[] = [];

/** A pool like the worker's, with an application name of its own. */
function poolFor(url: string, applicationName: string, max = 3): Pool {
  const pool = new Pool({ connectionString: url, application_name: applicationName, max, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  pools.push(pool);
  return pool;
}

/** The real activities on real clients; MockActivityEnvironment supplies only the activity context. */
function harness(deps: Partial<PostgresDeps> = {}) {
  const activities = createPostgresActivities({
    pool: poolFor(env.DATABASE_URL!, `pgtest-worker-${suffix}`),
    allowedDatabases: ['short_drama_prod'],
    databaseUrl: env.DATABASE_URL,
    restoreDrillUrl: env.RESTORE_DRILL_DATABASE_URL,
    s3: { client: s3, bucket },
    ...deps,
  });
  const heartbeats: unknown[] = [];
  // Failures are expected in many cases; the environment's logger would print each one at WARN.
  const environment = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  environment.on('heartbeat', (details: unknown) => heartbeats.push(details));
  const run = <K extends keyof Activities>(name: K, ...args: Parameters<Activities[K]>): Promise<Awaited<ReturnType<Activities[K]>>> =>
    environment.run(activities[name] as (...a: unknown[]) => Promise<never>, ...args);
  return { activities, run, heartbeats, environment };
}

async function expectFailure(promise: Promise<unknown>, type: string, message?: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err as { type?: string; message?: string; name?: string },
  );
  expect(error).toBeDefined();
  expect({ type: error!.type, message: error!.message }).toMatchObject({ type, ...(message ? { message: expect.stringMatching(message) } : {}) });
}

/** The test bed's server as another role. */
function roleUrl(role: string, password = 'x'): string {
  const url = new URL(env.DATABASE_URL!);
  url.username = role;
  url.password = password;
  return url.toString();
}

async function openClient(url: string, applicationName: string): Promise<Client> {
  const client = new Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => undefined); // terminated on purpose in some tests
  await client.connect();
  return client;
}

async function scalar<T = string>(url: string, sql: string, params: unknown[] = []): Promise<T> {
  const client = await openClient(url, 'pgtest-check');
  try {
    const { rows } = await client.query(sql, params);
    return Object.values(rows[0] ?? {})[0] as T;
  } finally {
    await client.end();
  }
}

afterAll(async () => {
  await Promise.allSettled(pools.map((p) => p.end()));
  s3.destroy();
});

describe('pure helpers', () => {
  test('pg_stat_statements column chooser: 13+ *_exec_time, older *_time, neither', () => {
    const pg15 = ['userid', 'dbid', 'queryid', 'query', 'plans', 'total_plan_time', 'calls', 'total_exec_time', 'min_exec_time', 'max_exec_time', 'mean_exec_time', 'rows'];
    const pg12 = ['userid', 'dbid', 'queryid', 'query', 'calls', 'total_time', 'min_time', 'max_time', 'mean_time', 'stddev_time', 'rows'];
    expect(chooseStatementTimingColumns(pg15)).toEqual({ total: 'total_exec_time', mean: 'mean_exec_time', max: 'max_exec_time' });
    expect(chooseStatementTimingColumns(pg12)).toEqual({ total: 'total_time', mean: 'mean_time', max: 'max_time' });
    expect(chooseStatementTimingColumns(['query', 'calls', 'total_exec_time'])).toBeUndefined();
    const old = slowestStatementsSql('public', chooseStatementTimingColumns(pg12)!);
    expect(old).toContain('"mean_time" AS mean_ms');
    expect(old).toContain('ORDER BY s."mean_time" DESC');
    expect(old).not.toContain('exec_time');
    expect(slowestStatementsSql('public', chooseStatementTimingColumns(pg15)!)).toContain('ORDER BY s."mean_exec_time" DESC');
  });

  test('restore drill: scratch names are validated, the drill role comes from its URL', () => {
    expect(defaultScratchName('database/latest.sql')).toMatch(/^dr_drill_[0-9a-f]{16}$/);
    expect(defaultScratchName('database/latest.sql')).toBe(defaultScratchName('database/latest.sql'));
    expect(() => assertScratchName('short_drama_prod', ['short_drama_prod'])).toThrow(/must match/);
    expect(() => assertScratchName('dr_drill_x; DROP DATABASE y', [])).toThrow(/must match/);
    expect(() => assertScratchName('dr_drill_prod', ['dr_drill_prod'])).toThrow(/configured database/);
    expect(drillRoleOf('postgres://drill%40x:p%2Fss@db.example:6543/app')).toBe('drill@x');
    expect(() => drillRoleOf('postgres://db.example/app')).toThrow(/names no role/);
  });
});

describe('connectionStats', () => {
  test('counts by state and application, leaves our own backend out', async () => {
    const selfApp = `pgtest-self-${suffix}`;
    const { run } = harness({ pool: poolFor(env.DATABASE_URL!, selfApp, 1) });
    const otherApp = `pgtest-stats-${suffix}`;
    const clients = await Promise.all([1, 2, 3].map(() => openClient(env.DATABASE_URL!, otherApp)));
    try {
      const stats = await run('connectionStats', { topApplications: 200 });
      expect(stats.maxConnections).toBe(Number(await scalar(env.DATABASE_URL!, 'SHOW max_connections')));
      expect(stats.byApplication).toContainEqual({ applicationName: otherApp, count: 3 });
      // The activity's pool has one connection, and it is the one asking: not counted.
      expect(stats.byApplication.find((a) => a.applicationName === selfApp)).toBeUndefined();
      expect(stats.total).toBe(Object.values(stats.byState).reduce((a, b) => a + b, 0));
      expect(stats.byState.idle).toBeGreaterThanOrEqual(3);
      expect(stats.oldestIdleSeconds).not.toBeNull();
      expect(stats.usage).toBeCloseTo(stats.total / stats.maxConnections, 2);
      const scoped = await run('connectionStats', { database: 'short_drama_prod', topApplications: 200 });
      expect(scoped.byApplication).toContainEqual({ applicationName: otherApp, count: 3 });
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  test('bad input and no database configured', async () => {
    const { run } = harness();
    await expectFailure(run('connectionStats', { database: 'x; SELECT 1' }), 'InvalidInput');
    await expectFailure(run('connectionStats', { topApplications: 0 }), 'InvalidInput');
    await expectFailure(harness({ pool: undefined }).run('connectionStats'), 'Refused', /not configured/);
  });
});

describe('terminateIdleConnections', () => {
  let scratch: ScratchDatabase;
  beforeAll(async () => {
    scratch = await createScratchDatabase('conn', { seed: false });
  });
  afterAll(() => scratch?.drop());

  test('terminates only idle sessions older than the threshold, never active ones or our own application; second run does nothing', async () => {
    const workerApp = `pgtest-terminator-${suffix}`;
    const { run } = harness({ pool: poolFor(scratch.url, workerApp, 1), allowedDatabases: [scratch.name] });
    const idleApp = `pgtest-idle-${suffix}`;
    const activeApp = `pgtest-active-${suffix}`;
    const idle = await Promise.all(Array.from({ length: 20 }, () => openClient(scratch.url, idleApp)));
    const active = await Promise.all([1, 2].map(() => openClient(scratch.url, activeApp)));
    const sibling = await openClient(scratch.url, workerApp); // another connection of "our" application
    const sleeping = active.map((c) => c.query('SELECT pg_sleep(300)').catch(() => undefined));
    const pidsOf = (clients: Client[]) => clients.map((c) => (c as unknown as { processID: number }).processID).sort((a, b) => a - b);
    const idlePids = pidsOf(idle);
    const activePids = pidsOf(active);
    const siblingPid = pidsOf([sibling])[0]!;
    const sessions = async () =>
      withAdmin(async (admin) => {
        const { rows } = await admin.query<{ pid: number; state: string; old: boolean }>(
          `SELECT pid, state, state_change < now() - interval '1500 milliseconds' AS old FROM pg_stat_activity WHERE datname = $1`,
          [scratch.name],
        );
        return new Map(rows.map((r) => [r.pid, r]));
      });
    try {
      await waitUntil('idle sessions older than 1.5 s and both sleepers active', async () => {
        const now = await sessions();
        return idlePids.every((p) => now.get(p)?.state === 'idle' && now.get(p)?.old) && activePids.every((p) => now.get(p)?.state === 'active') && now.get(siblingPid)?.old === true;
      });

      const capped = await run('terminateIdleConnections', { olderThanSeconds: 1, max: 5, dryRun: true });
      expect(capped).toMatchObject({ database: scratch.name, dryRun: true, matched: 20, capped: true, changed: false, protectedApplicationName: workerApp });
      expect(capped.pids).toHaveLength(5);

      const plan = await run('terminateIdleConnections', { olderThanSeconds: 1, max: 100, dryRun: true });
      expect([...plan.pids].sort((a, b) => a - b)).toEqual(idlePids);
      expect([...(await sessions()).keys()]).toEqual(expect.arrayContaining([...idlePids, ...activePids, siblingPid]));

      const applied = await run('terminateIdleConnections', { olderThanSeconds: 1, max: 100 });
      expect(applied).toMatchObject({ dryRun: false, matched: 20, capped: false, changed: true });
      expect([...applied.pids].sort((a, b) => a - b)).toEqual(idlePids);
      await waitUntil('terminated sessions to be gone', async () => {
        const now = await sessions();
        return idlePids.every((p) => !now.has(p));
      });
      const after = await sessions();
      for (const pid of activePids) expect(after.get(pid)?.state).toBe('active');
      expect(after.get(siblingPid)?.state).toBe('idle');

      const again = await run('terminateIdleConnections', { olderThanSeconds: 1, max: 100 });
      expect(again).toMatchObject({ matched: 0, pids: [], changed: false });
      const final = await sessions();
      expect([...final.keys()].sort()).toEqual([...after.keys()].sort());
    } finally {
      await withAdmin((admin) => admin.query('SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid', [activePids]));
      await Promise.all(sleeping);
      await Promise.all([...idle, ...active, sibling].map((c) => c.end().catch(() => undefined)));
    }
  });

  test('refuses a database outside the allowlist and nonsense thresholds', async () => {
    const { run } = harness({ pool: poolFor(scratch.url, `pgtest-terminator-${suffix}`, 1), allowedDatabases: [scratch.name] });
    await expectFailure(run('terminateIdleConnections', { olderThanSeconds: 300, max: 10, database: 'short_drama_prod' }), 'Refused', /not in the allowlist/);
    await expectFailure(run('terminateIdleConnections', { olderThanSeconds: 300, max: 10, database: 'postgres' }), 'Refused');
    // Connected to a database that is not allowlisted, and no database named: refused too.
    await expectFailure(harness({ allowedDatabases: [scratch.name] }).run('terminateIdleConnections', { olderThanSeconds: 300, max: 10 }), 'Refused');
    await expectFailure(run('terminateIdleConnections', { olderThanSeconds: -5, max: 10 }), 'InvalidInput');
    await expectFailure(run('terminateIdleConnections', { olderThanSeconds: 300, max: 0 }), 'InvalidInput');
    await expectFailure(run('terminateIdleConnections', { olderThanSeconds: 1.5, max: 10 }), 'InvalidInput');
  });
});

describe('setMaxConnections', () => {
  /** What postgresql.auto.conf said before the tests, restored afterwards (the server is never restarted). */
  let original: string | undefined;
  const fileSettings = (admin: Client) => admin.query<{ setting: string; sourcefile: string }>(`SELECT setting, sourcefile FROM pg_file_settings WHERE name = 'max_connections' ORDER BY seqno`);
  beforeAll(async () => {
    original = await withAdmin(async (admin) => (await fileSettings(admin)).rows.find((r) => r.sourcefile.endsWith('postgresql.auto.conf'))?.setting);
  });
  afterAll(async () => {
    await withAdmin(async (admin) => {
      if (original === undefined) await admin.query('ALTER SYSTEM RESET max_connections');
      else await admin.query(`ALTER SYSTEM SET max_connections = ${Number(original)}`);
      await admin.query('SELECT pg_reload_conf()');
    });
  });

  test('dry run changes nothing; ALTER SYSTEM + reload reports the pending restart; a second run changes nothing', async () => {
    const { run } = harness();
    const running = Number(await scalar(env.DATABASE_URL!, 'SHOW max_connections'));
    const target = running + 7;
    const filesBefore = await withAdmin(async (admin) => (await fileSettings(admin)).rows);

    const plan = await run('setMaxConnections', { value: target, dryRun: true });
    expect(plan).toMatchObject({ dryRun: true, requested: target, needsChange: true, changed: false, restartNeeded: true, before: { running, pendingRestart: false } });
    expect(await withAdmin(async (admin) => (await fileSettings(admin)).rows)).toEqual(filesBefore);

    const applied = await run('setMaxConnections', { value: target });
    expect(applied).toMatchObject({
      changed: true,
      restartNeeded: true,
      before: { running, pending: running, pendingRestart: false },
      after: { running, pending: target, pendingRestart: true },
    });
    expect(Number(await scalar(env.DATABASE_URL!, 'SHOW max_connections'))).toBe(running); // no restart happened

    const again = await run('setMaxConnections', { value: target });
    expect(again).toMatchObject({ changed: false, needsChange: false, before: { pending: target, pendingRestart: true }, after: { pending: target } });

    // Back to the running value: nothing pending any more once the server re-read its files.
    const back = await run('setMaxConnections', { value: running });
    expect(back).toMatchObject({ changed: true, restartNeeded: false, after: { running, pending: running, pendingRestart: false } });
  });

  test('bad values and a database outside the allowlist are refused', async () => {
    const { run } = harness();
    for (const value of [5, 100.5, 100_000, -1]) await expectFailure(run('setMaxConnections', { value }), 'InvalidInput');
    await expectFailure(run('setMaxConnections', { value: '200' as unknown as number }), 'InvalidInput');
    await expectFailure(harness({ allowedDatabases: ['another_db'] }).run('setMaxConnections', { value: 150 }), 'Refused');
  });
});

describe('waitForPostgres', () => {
  test('answers at once when the server is up', async () => {
    const { run, heartbeats } = harness();
    const result = await run('waitForPostgres', { timeoutSeconds: 10 });
    expect(result.attempts).toBe(1);
    expect(result.serverVersion).toMatch(/^15\./);
    expect(heartbeats).toEqual([{ attempts: 1, ok: true }]);
  });

  test('keeps polling, heartbeating, until the server accepts connections', async () => {
    // A port nobody listens on yet; after the first failed attempt a proxy to the real server opens on it.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address() as AddressInfo;
        probe.close(() => resolve(p));
      });
    });
    const target = new URL(env.DATABASE_URL!);
    const url = new URL(env.DATABASE_URL!);
    url.hostname = '127.0.0.1'; // the proxy's address (the server's may be the real node's)
    url.port = String(port);
    const { run, heartbeats } = harness({ databaseUrl: url.toString() });
    const sockets: Socket[] = [];
    let proxy: Server | undefined;
    try {
      const waiting = run('waitForPostgres', { timeoutSeconds: 60, intervalMs: 100 });
      await waitUntil('a failed attempt', () => heartbeats.some((h) => (h as { lastError?: string }).lastError));
      proxy = createServer((socket) => {
        const upstream = netConnect(Number(target.port), target.hostname);
        sockets.push(socket, upstream);
        socket
          .on('error', () => undefined)
          .pipe(upstream.on('error', () => undefined))
          .pipe(socket);
      });
      await new Promise<void>((resolve) => proxy!.listen(port, '127.0.0.1', resolve));
      const result = await waiting;
      expect(result.attempts).toBeGreaterThanOrEqual(2);
      expect(heartbeats.at(-1)).toEqual({ attempts: result.attempts, ok: true });
      expect((heartbeats[0] as { lastError: string }).lastError).toMatch(/ECONNREFUSED/);
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
    }
  });

  test('times out with a Transient failure', async () => {
    const { run, heartbeats } = harness({ databaseUrl: `postgres://nobody:secret@127.0.0.1:${closedPort}/x` });
    await expectFailure(run('waitForPostgres', { timeoutSeconds: 1, intervalMs: 200 }), 'Transient', /did not accept connections within 1 s/);
    expect(heartbeats.length).toBeGreaterThanOrEqual(2);
  });

  test('honours cancellation', async () => {
    const { run, heartbeats, environment } = harness({ databaseUrl: `postgres://nobody:secret@127.0.0.1:${closedPort}/x` });
    const waiting = run('waitForPostgres', { timeoutSeconds: 600, intervalMs: 60_000 });
    await waitUntil('the first attempt', () => heartbeats.length > 0);
    const started = Date.now();
    environment.cancel();
    await expect(waiting).rejects.toMatchObject({ name: 'CancelledFailure' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('bad input', async () => {
    const { run } = harness();
    await expectFailure(run('waitForPostgres', { timeoutSeconds: 0 }), 'InvalidInput');
    await expectFailure(run('waitForPostgres', { timeoutSeconds: 10, intervalMs: -1 }), 'InvalidInput');
    await expectFailure(harness({ pool: undefined, databaseUrl: undefined }).run('waitForPostgres', { timeoutSeconds: 10 }), 'Refused', /not configured/);
  });
});

describe('database statistics', () => {
  test('databaseSize of the shared database; bad and unknown names', async () => {
    const { run } = harness();
    const size = await run('databaseSize', { database: 'short_drama_prod' });
    const direct = Number(await scalar(env.DATABASE_URL!, `SELECT pg_database_size('short_drama_prod')`));
    expect(size.database).toBe('short_drama_prod');
    expect(size.bytes).toBeGreaterThan(1024 * 1024);
    expect(Math.abs(size.bytes - direct)).toBeLessThan(direct * 0.1);
    expect(size.pretty).toMatch(/^\d+ (kB|MB|GB)$/);
    await expectFailure(run('databaseSize', { database: `x'; DROP DATABASE short_drama_prod; --` }), 'InvalidInput');
    await expectFailure(run('databaseSize', { database: `pgtest_missing_${suffix}` }), 'NotFound');
  });

  test('largestTables: largest first, sizes as PostgreSQL computes them', async () => {
    const { run } = harness();
    const { database, tables } = await run('largestTables', { limit: 3 });
    expect(database).toBe('short_drama_prod');
    expect(tables).toHaveLength(3);
    for (let i = 1; i < tables.length; i++) expect(tables[i - 1]!.totalBytes).toBeGreaterThanOrEqual(tables[i]!.totalBytes);
    const all = await run('largestTables', { limit: 100 });
    expect(all.tables.map((t) => `${t.schema}.${t.table}`)).toEqual(expect.arrayContaining(['public.users', 'public.projects', 'public.storyboards', 'public.characters', 'public.sessions']));
    expect(all.tables.every((t) => !t.schema.startsWith('pg_') && t.schema !== 'information_schema')).toBe(true);
    const storyboards = all.tables.find((t) => t.table === 'storyboards')!;
    expect(storyboards.totalBytes).toBe(Number(await scalar(env.DATABASE_URL!, `SELECT pg_total_relation_size('public.storyboards')`)));
    await expectFailure(run('largestTables', { limit: 0 }), 'InvalidInput');
    await expectFailure(run('largestTables', { limit: 1000 }), 'InvalidInput');
  });

  test('slowestStatements: PostgreSQL 15 columns, slowest first, long statements truncated', async () => {
    const { run } = harness();
    // A slow statement whose normalised text is far longer than the limit.
    const columns = Array.from({ length: 80 }, (_, i) => `'padding value ${i}' AS pgtest_padding_column_${i}`).join(', ');
    const client = await openClient(env.DATABASE_URL!, `pgtest-slow-${suffix}`);
    try {
      await client.query(`SELECT pg_sleep(0.3), ${columns}`);
    } finally {
      await client.end();
    }
    const result = await run('slowestStatements', { limit: 100 });
    expect(result.database).toBe('short_drama_prod');
    expect(result.timingColumns).toEqual({ total: 'total_exec_time', mean: 'mean_exec_time', max: 'max_exec_time' });
    for (let i = 1; i < result.statements.length; i++) expect(result.statements[i - 1]!.meanMs).toBeGreaterThanOrEqual(result.statements[i]!.meanMs);
    expect(result.statements.every((s) => s.query.length <= statementTextLimit + 1)).toBe(true);
    const ours = result.statements.find((s) => s.query.includes('pgtest_padding_column_0'));
    expect(ours).toBeDefined();
    expect(ours!.query).toHaveLength(statementTextLimit + 1);
    expect(ours!.query.endsWith('…')).toBe(true);
    expect(ours!.meanMs).toBeGreaterThanOrEqual(250);
    expect(ours!.calls).toBeGreaterThanOrEqual(1);
    await expectFailure(run('slowestStatements', { limit: -1 }), 'InvalidInput');
  });

  test('slowestStatements where the extension is not installed: NotFound', async () => {
    const empty = await createScratchDatabase('noext', { seed: false });
    try {
      const { run } = harness({ pool: empty.pool(`pgtest-noext-${suffix}`), allowedDatabases: [empty.name] });
      await expectFailure(run('slowestStatements', {}), 'NotFound', /pg_stat_statements is not installed/);
    } finally {
      await empty.drop();
    }
  });
});

describe('maintenance on a scratch copy of the seed', () => {
  let scratch: ScratchDatabase;
  let h: ReturnType<typeof harness>;
  beforeAll(async () => {
    scratch = await createScratchDatabase('maint', { seed: true });
    h = harness({ pool: scratch.pool(`pgtest-maint-${suffix}`), allowedDatabases: [scratch.name] });
  });
  afterAll(() => scratch?.drop());

  const sessionsByKind = () =>
    scalar<Record<string, number>>(scratch.url, `SELECT json_object_agg(kind, n) FROM (SELECT split_part(id, '-', 1) AS kind, count(*)::int AS n FROM sessions GROUP BY 1) AS k`);

  describe('deleteExpiredSessions', () => {
    test('dry run counts, batched delete with a cap and heartbeats, then nothing left to do', async () => {
      expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 60 });

      const plan = await h.run('deleteExpiredSessions', { dryRun: true });
      expect(plan).toMatchObject({ database: scratch.name, dryRun: true, olderThanDays: 7, before: 60, deleted: 60, after: 60, changed: false });
      expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 60 });

      h.heartbeats.length = 0;
      const capped = await h.run('deleteExpiredSessions', { batchSize: 20, maxRows: 50 });
      expect(capped).toMatchObject({ before: 60, deleted: 50, after: 10, batches: 3, capped: true, changed: true });
      expect(h.heartbeats).toEqual([
        { deleted: 20, batches: 1 },
        { deleted: 40, batches: 2 },
        { deleted: 50, batches: 3 },
      ]);
      expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 10 });

      const rest = await h.run('deleteExpiredSessions', { batchSize: 20 });
      expect(rest).toMatchObject({ before: 10, deleted: 10, after: 0, capped: false, changed: true });

      const again = await h.run('deleteExpiredSessions', { batchSize: 20 });
      expect(again).toMatchObject({ before: 0, deleted: 0, after: 0, batches: 0, changed: false });
      // Sessions that expired a day ago are not older than 7 days: kept, as are live ones.
      expect(await sessionsByKind()).toEqual({ live: 100, recent: 40 });
    });

    test('cancelled between batches: committed batches stay deleted, the next run finishes the rest', async () => {
      await scalar(
        scratch.url,
        `INSERT INTO sessions (id, user_id, created_at, expires_at)
           SELECT 'cancel-' || i, 1, now() - interval '40 days', now() - interval '20 days' FROM generate_series(1, 30) AS i`,
      );
      const cancelling = harness({ pool: scratch.pool(`pgtest-maint-cancel-${suffix}`), allowedDatabases: [scratch.name] });
      cancelling.environment.on('heartbeat', () => cancelling.environment.cancel());
      await expect(cancelling.run('deleteExpiredSessions', { batchSize: 10 })).rejects.toMatchObject({ name: 'CancelledFailure' });
      expect(cancelling.heartbeats).toEqual([{ deleted: 10, batches: 1 }]);
      expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, cancel: 20 });
      const rest = await h.run('deleteExpiredSessions', { batchSize: 10 });
      expect(rest).toMatchObject({ before: 20, deleted: 20, after: 0, batches: 2 });
      expect(await sessionsByKind()).toEqual({ live: 100, recent: 40 });
    });

    test('refuses a database outside the allowlist (the shared seed keeps its stale sessions) and bad options', async () => {
      const stale = () => scalar(env.DATABASE_URL!, `SELECT count(*)::int FROM sessions WHERE expires_at < now() - interval '7 days'`);
      const before = await stale();
      await expectFailure(harness({ allowedDatabases: [scratch.name] }).run('deleteExpiredSessions', {}), 'Refused', /short_drama_prod is not in the allowlist/);
      expect(await stale()).toBe(before);
      expect(before).toBeGreaterThan(0);
      await expectFailure(h.run('deleteExpiredSessions', { olderThanDays: -3 }), 'InvalidInput');
      await expectFailure(h.run('deleteExpiredSessions', { olderThanDays: 0.5 }), 'InvalidInput');
      await expectFailure(h.run('deleteExpiredSessions', { batchSize: 0 }), 'InvalidInput');
    });
  });

  describe('vacuumAnalyze', () => {
    const vacuumCount = (table: string) => scalar<number>(scratch.url, 'SELECT (vacuum_count + autovacuum_count)::int FROM pg_stat_user_tables WHERE relname = $1', [table]);

    test('dry run reports, VACUUM (ANALYZE) of one table clears its dead tuples; running again is harmless', async () => {
      // Autovacuum off for this table of the scratch database, so only our VACUUM changes its counters.
      await scalar(scratch.url, 'ALTER TABLE storyboards SET (autovacuum_enabled = false)');
      await scalar(scratch.url, 'UPDATE storyboards SET position = position');
      await waitUntil(
        'dead tuples of storyboards in the statistics',
        async () => Number(await scalar(scratch.url, `SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'storyboards'`)) >= 1000,
      );
      const countBefore = await vacuumCount('storyboards');

      const plan = await h.run('vacuumAnalyze', { table: 'storyboards', dryRun: true });
      expect(plan).toMatchObject({ database: scratch.name, dryRun: true, target: 'public.storyboards' });
      expect(plan.tables).toHaveLength(1);
      expect(plan.tables[0]).toMatchObject({ vacuumCountBefore: countBefore, vacuumCountAfter: countBefore });
      expect(plan.tables[0]!.deadTuplesBefore).toBeGreaterThanOrEqual(1000);
      expect(await vacuumCount('storyboards')).toBe(countBefore);

      const applied = await h.run('vacuumAnalyze', { table: 'storyboards' });
      expect(applied.tables[0]).toMatchObject({ vacuumCountBefore: countBefore, vacuumCountAfter: countBefore + 1, deadTuplesAfter: 0 });
      expect(applied.tables[0]!.analyzeCountAfter).toBe(applied.tables[0]!.analyzeCountBefore + 1);

      const again = await h.run('vacuumAnalyze', { table: 'storyboards' });
      expect(again.tables[0]).toMatchObject({ deadTuplesBefore: 0, deadTuplesAfter: 0, vacuumCountAfter: countBefore + 2 });
    });

    test('cancelled while VACUUM waits for a lock: the statement is cancelled on the server', async () => {
      const locker = await openClient(scratch.url, `pgtest-locker-${suffix}`);
      const vacuumApp = `pgtest-vacuum-cancel-${suffix}`;
      const cancelling = harness({ pool: scratch.pool(vacuumApp), allowedDatabases: [scratch.name] });
      const waitingVacuum = () =>
        scalar<number>(scratch.url, `SELECT count(*)::int FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'VACUUM%' AND wait_event_type = 'Lock'`, [vacuumApp]);
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE characters IN ACCESS EXCLUSIVE MODE');
        const vacuuming = cancelling.run('vacuumAnalyze', { table: 'characters' });
        await waitUntil('VACUUM blocked on the lock', async () => (await waitingVacuum()) === 1);
        expect(cancelling.heartbeats).toContainEqual({ vacuuming: 'public.characters' });
        cancelling.environment.cancel();
        await expect(vacuuming).rejects.toMatchObject({ name: 'CancelledFailure' });
        await waitUntil('the VACUUM statement gone from the server', async () => (await waitingVacuum()) === 0, 10_000);
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        await locker.end();
      }
    });

    test('the whole database', async () => {
      const result = await h.run('vacuumAnalyze', {});
      expect(result.target).toBeNull();
      const names = result.tables.map((t) => t.table);
      expect(names).toEqual(expect.arrayContaining(['users', 'projects', 'storyboards', 'characters', 'sessions']));
      for (const t of result.tables) expect(t.vacuumCountAfter).toBe(t.vacuumCountBefore + 1);
    });

    test('invalid and unknown tables, and a database outside the allowlist', async () => {
      await expectFailure(h.run('vacuumAnalyze', { table: 'storyboards; DROP TABLE users' }), 'InvalidInput');
      await expectFailure(h.run('vacuumAnalyze', { table: 'users', schema: 'public"; --' }), 'InvalidInput');
      await expectFailure(h.run('vacuumAnalyze', { table: 'no_such_table' }), 'NotFound');
      await expectFailure(harness({ allowedDatabases: [scratch.name] }).run('vacuumAnalyze', { table: 'users' }), 'Refused');
    });
  });

  describe('ensureRecommendedIndexes', () => {
    const indexes = (url: string) =>
      scalar<Record<string, boolean> | null>(
        url,
        `SELECT json_object_agg(c.relname, i.indisvalid) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
          WHERE c.relname IN ('idx_projects_user_created', 'idx_storyboards_project', 'idx_characters_user', 'idx_projects_name_gin')`,
      );

    test('detects an INVALID leftover, dry run changes nothing, creates and rebuilds concurrently, then nothing to do', async () => {
      // A failed concurrent build leaves an INVALID index behind: a unique index on a column with duplicates.
      const client = await openClient(scratch.url, `pgtest-failed-build-${suffix}`);
      try {
        await expect(client.query('CREATE UNIQUE INDEX CONCURRENTLY idx_storyboards_project ON storyboards (project_id)')).rejects.toMatchObject({ code: '23505' });
      } finally {
        await client.end();
      }
      expect(await indexes(scratch.url)).toEqual({ idx_storyboards_project: false });

      const plan = await h.run('ensureRecommendedIndexes', { dryRun: true });
      expect(plan.changed).toBe(false);
      expect(Object.fromEntries(plan.indexes.map((i) => [i.name, [i.before, i.action]]))).toEqual({
        idx_projects_user_created: ['missing', 'would create'],
        idx_storyboards_project: ['invalid', 'would rebuild'],
        idx_characters_user: ['missing', 'would create'],
        idx_projects_name_gin: ['missing', 'would create'],
      });
      expect(await indexes(scratch.url)).toEqual({ idx_storyboards_project: false });

      const applied = await h.run('ensureRecommendedIndexes', {});
      expect(applied.changed).toBe(true);
      expect(Object.fromEntries(applied.indexes.map((i) => [i.name, [i.action, i.after]]))).toEqual({
        idx_projects_user_created: ['created', 'valid'],
        idx_storyboards_project: ['rebuilt', 'valid'],
        idx_characters_user: ['created', 'valid'],
        idx_projects_name_gin: ['created', 'valid'],
      });
      expect(applied.indexes.find((i) => i.name === 'idx_storyboards_project')!.definition).toBe('CREATE INDEX idx_storyboards_project ON public.storyboards USING btree (project_id)');
      expect(applied.indexes.find((i) => i.name === 'idx_projects_name_gin')!.definition).toMatch(/USING gin \(to_tsvector\('english'::regconfig, name\)\)/);
      const state = await indexes(scratch.url);

      const again = await h.run('ensureRecommendedIndexes', {});
      expect(again.changed).toBe(false);
      expect(again.indexes.every((i) => i.before === 'valid' && i.action === 'none')).toBe(true);
      expect(await indexes(scratch.url)).toEqual(state);
    });

    test('refuses a database outside the allowlist: the shared database keeps its indexes', async () => {
      const before = await indexes(env.DATABASE_URL!);
      await expectFailure(harness({ allowedDatabases: [scratch.name] }).run('ensureRecommendedIndexes', {}), 'Refused');
      expect(await indexes(env.DATABASE_URL!)).toEqual(before);
      await expectFailure(h.run('ensureRecommendedIndexes', { dryRun: 'yes' as unknown as boolean }), 'InvalidInput');
    });
  });
});

describe('restoreDumpIntoScratchDatabase', () => {
  const expectTables = ['users', 'projects', 'storyboards', 'characters', 'sessions'];
  const seedCounts = { users: 50, projects: 200, storyboards: 1000, characters: 300, sessions: 200 };
  const counts = (tables: Array<{ table: string; rows: number }>) => Object.fromEntries(tables.map((t) => [t.table, t.rows]));
  const testPrefix = `runbooks/test/pg-restore-${suffix}/`;

  afterAll(async () => {
    await withAdmin(async (admin) => {
      for (const role of [`dr_createrole_${suffix}`, `dr_login_${suffix}`]) await admin.query(`DROP ROLE IF EXISTS ${role}`);
    });
    const listing = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: testPrefix }));
    const keys = (listing.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
  });

  test('plain SQL (latest.sql) as the drill role, without psql: tables and row counts, scratch database owned by the drill role and dropped', async () => {
    const { run, heartbeats } = harness();
    const childProcess = require('node:child_process') as typeof import('node:child_process');
    const spawnSpy = jest.spyOn(childProcess, 'spawn');
    const scratchName = `dr_drill_pgtest_${suffix}`;
    const owners: string[] = [];
    // Who owns the scratch database while the drill runs, read from outside.
    const watcher = setInterval(() => {
      void withAdmin(async (admin) => {
        const { rows } = await admin.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [scratchName]);
        if (rows[0]) owners.push(rows[0].owner);
      }).catch(() => undefined);
    }, 50);
    try {
      const result = await run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql', scratchName, expectTables });
      expect(result).toMatchObject({ key: 'database/latest.sql', format: 'plain', scratchDatabase: scratchName, verified: true, problems: [], dropped: true });
      expect(counts(result.tables)).toEqual(seedCounts);
      expect(result.totalRows).toBe(1750);
      // pg_stat_statements is not a trusted extension: the drill role may not create it, and says so.
      expect(result.skipped.slice(0, 2)).toEqual([
        expect.stringMatching(/^CREATE EXTENSION IF NOT EXISTS pg_stat_statements .*permission denied/),
        expect.stringMatching(/^COMMENT ON EXTENSION pg_stat_statements/),
      ]);
      // Nor may it grant on catalog objects, as pg_dump keeps deploy/postgres/runbook-worker.sql's grants to the worker.
      expect(result.skipped.slice(2)).toContainEqual(expect.stringMatching(/^GRANT ALL ON FUNCTION pg_catalog\.pg_reload_conf\(\) TO runbook_worker;: permission denied/));
      for (const skipped of result.skipped.slice(2)) expect(skipped).toMatch(/^GRANT \w+ ON (FUNCTION pg_catalog\.\w+\(.*|TABLE pg_catalog\.\w+ TO runbook_worker;): permission denied/);
      expect(result.bytes).toBeGreaterThan(10_000);
      expect(result.durationMs).toBeGreaterThan(0);
      expect(heartbeats).toContainEqual({ phase: 'verify', key: 'database/latest.sql', bytes: result.bytes });
      expect(await databaseExists(scratchName)).toBe(false);
      expect(spawnSpy).not.toHaveBeenCalled();
      expect(new Set(owners)).toEqual(new Set([drillRoleOf(env.RESTORE_DRILL_DATABASE_URL!)]));
    } finally {
      clearInterval(watcher);
      spawnSpy.mockRestore();
    }
  });

  test('custom format (PGDMP) through pg_restore, default scratch name', async () => {
    const { run } = harness();
    const listing = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'database/' }));
    const key = (listing.Contents ?? []).map((o) => o.Key!).find((k) => k.endsWith('.dump'))!;
    expect(key).toBeDefined();
    const childProcess = require('node:child_process') as typeof import('node:child_process');
    const spawnSpy = jest.spyOn(childProcess, 'spawn');
    try {
      const result = await run('restoreDumpIntoScratchDatabase', { key, expectTables });
      expect(result).toMatchObject({ format: 'custom', scratchDatabase: defaultScratchName(key), verified: true, dropped: true });
      expect(counts(result.tables)).toEqual(seedCounts);
      expect(await databaseExists(defaultScratchName(key))).toBe(false);
      // pg_restore only converts the archive to SQL: it connects nowhere and gets no credentials.
      expect(spawnSpy).toHaveBeenCalledTimes(1);
      const [command, args, options] = spawnSpy.mock.calls[0]! as unknown as [string, string[], { env: NodeJS.ProcessEnv }];
      expect(command).toBe('pg_restore');
      expect(args).toEqual(['--no-owner', '--no-privileges', '--file=-']);
      expect(Object.keys(options.env).filter((k) => k.startsWith('PG'))).toEqual([]);
      expect(JSON.stringify(options.env)).not.toContain(env.TESTBED_RESTORE_DRILL_PASSWORD!);
      expect(JSON.stringify(options.env)).not.toContain(env.TESTBED_POSTGRES_PASSWORD!);
    } finally {
      spawnSpy.mockRestore();
    }
  });

  test('cancelled while streaming: the tool is stopped and the scratch database dropped', async () => {
    const { run, environment } = harness();
    environment.on('heartbeat', (details: { phase?: string }) => {
      if (details.phase === 'restore') environment.cancel();
    });
    const scratchName = `dr_drill_cancel_${suffix}`;
    await expect(run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql', scratchName })).rejects.toMatchObject({ name: 'CancelledFailure' });
    expect(await databaseExists(scratchName)).toBe(false);
  });

  test('a broken dump fails with the tool’s error and the scratch database is dropped; missing tables are reported', async () => {
    const { run } = harness({ s3: { client: s3, bucket, backupPrefix: testPrefix } });
    const broken = `${testPrefix}broken.sql`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: broken, Body: 'CREATE TABLE half (id int);\nTHIS IS NOT SQL;\n' }));
    const scratchName = `dr_drill_broken_${suffix}`;
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: broken, scratchName }), 'InvalidInput', /could not restore .*syntax error/);
    expect(await databaseExists(scratchName)).toBe(false);

    const brokenCustom = `${testPrefix}broken.dump`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: brokenCustom, Body: Buffer.concat([Buffer.from('PGDMP'), Buffer.alloc(64, 7)]) }));
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: brokenCustom, scratchName }), 'InvalidInput', /pg_restore could not read/);
    expect(await databaseExists(scratchName)).toBe(false);

    const partial = `${testPrefix}partial.sql`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: partial, Body: 'CREATE TABLE users (id int);\nINSERT INTO users VALUES (1), (2);\n' }));
    const result = await run('restoreDumpIntoScratchDatabase', { key: partial, scratchName, expectTables: ['users', 'sessions'] });
    expect(result).toMatchObject({ verified: false, problems: ['expected table sessions is missing'], tables: [{ schema: 'public', table: 'users', rows: 2 }], dropped: true });
    expect(await databaseExists(scratchName)).toBe(false);
  });

  test('missing object, keys outside the backup prefix, scratch names that are not scratch', async () => {
    const { run } = harness({ allowedDatabases: ['short_drama_prod', 'dr_drill_prod'] });
    const scratchName = `dr_drill_missing_${suffix}`;
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: `database/no-such-${randomUUID()}.sql`, scratchName }), 'NotFound');
    expect(await databaseExists(scratchName)).toBe(false);
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: 'runbooks/evidence.sql' }), 'Refused', /not under the backup prefix/);
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: 'database/../secrets.sql' }), 'InvalidInput');
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql', scratchName: 'short_drama_prod' }), 'InvalidInput');
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql', scratchName: 'dr_drill_prod' }), 'Refused');
    await expectFailure(run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql', expectTables: ['users; --'] }), 'InvalidInput');
    await expectFailure(harness({ s3: undefined }).run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql' }), 'Refused', /S3/);
    expect(await databaseExists('short_drama_prod')).toBe(true);
  });

  /** A "backup" of the test's own under its prefix, and the drill on it. */
  async function drillOn(name: string, body: string, deps: Partial<PostgresDeps> = {}) {
    const key = `${testPrefix}${name}`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const scratchName = `dr_drill_${name.replace(/\W/g, '_')}_${suffix}`;
    return { scratchName, result: harness({ s3: { client: s3, bucket, backupPrefix: testPrefix }, ...deps }).run('restoreDumpIntoScratchDatabase', { key, scratchName }) };
  }
  const inProduction = (table: string) => scalar<string | null>(env.DATABASE_URL!, 'SELECT to_regclass($1)::text', [`public.${table}`]);

  test('attack: a tampered dump with \\! (shell) and \\c short_drama_prod is refused; no file on the worker, nothing in production', async () => {
    const marker = `/tmp/dr-drill-pwned-${suffix}`;
    const pwned = `pwned_${suffix}`;
    const { scratchName, result } = await drillOn('tampered.sql', `CREATE TABLE innocent (id int);\n\\! touch ${marker}\n\\c short_drama_prod\nCREATE TABLE ${pwned} (id int);\n`);
    await expectFailure(result, 'Refused', /line 2: psql meta-command \\! refused/);
    expect(existsSync(marker)).toBe(false);
    expect(await inProduction(pwned)).toBeNull();
    expect(await databaseExists(scratchName)).toBe(false);
  });

  test.each([
    ['mid-line after a statement', `SELECT 1; \\! touch FILE`, /line 1: psql meta-command \\!/],
    ['\\c alone', `\\c short_drama_prod\nCREATE TABLE PWNED (id int);`, /meta-command \\c/],
    ['output to a pipe', `\\o |touch FILE\nSELECT 1;`, /meta-command \\o/],
    ['\\g to a pipe', `SELECT 1 \\g |touch FILE`, /meta-command \\g/],
    ['\\copy from a program', `CREATE TABLE t (a text);\n\\copy t from program 'touch FILE'`, /meta-command \\copy/],
    ['after a closed dollar quote', `DO $x$ BEGIN NULL; END $x$; \\! touch FILE`, /meta-command \\!/],
    ['a backslash-quote that psql could read as an escape', `SELECT 'a\\'; \\! touch FILE --'`, /backslash before a quote/],
    ['a NUL byte', `SELECT 1;\0\\! touch FILE`, /NUL byte/],
  ])('attack: psql meta-commands anywhere are refused (%s)', async (_name, template, message) => {
    const marker = `/tmp/dr-drill-pwned-${randomUUID()}`;
    const pwned = `pwned_${suffix}_b`;
    const { scratchName, result } = await drillOn(`meta-${randomUUID().slice(0, 8)}.sql`, template.replace('FILE', marker).replace('PWNED', pwned));
    await expectFailure(result, /NUL|backslash/.test(message.source) ? 'InvalidInput' : 'Refused', message);
    expect(existsSync(marker)).toBe(false);
    expect(await inProduction(pwned)).toBeNull();
    expect(await databaseExists(scratchName)).toBe(false);
  });

  test('attack: SQL that needs more than the drill role (COPY FROM PROGRAM, becoming superuser) fails; nothing ran', async () => {
    const marker = `/tmp/dr-drill-program-${suffix}`;
    const role = drillRoleOf(env.RESTORE_DRILL_DATABASE_URL!);
    const program = await drillOn('program.sql', `CREATE TABLE t (a text);\nCOPY t FROM PROGRAM 'touch ${marker}';\n`);
    await expectFailure(program.result, 'InvalidInput', /could not restore .*(permission denied|must be superuser)/);
    expect(existsSync(marker)).toBe(false);
    const escalate = await drillOn('escalate.sql', `ALTER ROLE ${role} SUPERUSER;\n`);
    await expectFailure(escalate.result, 'InvalidInput', /permission denied|must be superuser/);
    expect(await scalar<boolean>(env.DATABASE_URL!, 'SELECT rolsuper FROM pg_roles WHERE rolname = $1', [role])).toBe(false);
  });

  test('backslashes where SQL dumps have them are fine: COPY data (\\N, escapes), E-strings, dollar-quoted bodies, comments', async () => {
    const dump = [
      '-- a comment with \\! in it',
      '/* and \\c here */ CREATE TABLE notes (id int, body text);',
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $fn$ SELECT E'\\\\x' $fn$;",
      "INSERT INTO notes VALUES (0, E'it\\'s \\\\ fine');",
      'COPY public.notes (id, body) FROM stdin;',
      '1\t\\N',
      '2\ta\\\\b\\tc',
      '\\N\tno id',
      '\\.',
      'CREATE TABLE users (id int);',
    ].join('\n');
    const { result } = await drillOn('backslashes.sql', `${dump}\n`);
    const drill = await result;
    expect(drill).toMatchObject({ verified: true, dropped: true, skipped: [] });
    expect(counts(drill.tables)).toEqual({ notes: 4, users: 0 });
  });

  test.each([
    ['superuser', () => env.TESTBED_POSTGRES_ADMIN_URL!, /is refused: it is a superuser, it has CREATEROLE/],
    ['the worker’s own URL', () => env.DATABASE_URL!, /restore-drill role runbook_worker is refused: it is the worker's own role/],
    ['CREATEROLE', () => roleUrl(`dr_createrole_${suffix}`), /is refused: it has CREATEROLE/],
    ['may log in to production', () => roleUrl(`dr_login_${suffix}`), /can connect to production database short_drama_prod/],
    ['wrong password', () => roleUrl(drillRoleOf(env.RESTORE_DRILL_DATABASE_URL!), 'wrong-password'), /password is rejected/],
    ['none configured', () => undefined, /restoreDrillUrl \(RESTORE_DRILL_DATABASE_URL\)/],
  ])('attack: a drill role that is not restricted is refused; no scratch database is left (%s)', async (_name, url, message) => {
    await withAdmin(async (admin) => {
      await admin.query(
        `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dr_createrole_${suffix}') THEN CREATE ROLE dr_createrole_${suffix} LOGIN CREATEROLE PASSWORD 'x'; END IF; END $$`,
      );
      await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dr_login_${suffix}') THEN CREATE ROLE dr_login_${suffix} LOGIN PASSWORD 'x'; END IF; END $$`);
    });
    const scratchName = `dr_drill_role_${suffix}`;
    await expectFailure(harness({ restoreDrillUrl: url() }).run('restoreDumpIntoScratchDatabase', { key: 'database/latest.sql', scratchName }), 'Refused', message);
    expect(await databaseExists(scratchName)).toBe(false);
  });

  test('failure: the drill’s connection is killed in the middle of the restore; the scratch database is still dropped and the error says why', async () => {
    const { scratchName, result } = await drillOn('slow.sql', `CREATE TABLE users (id int);\nSELECT pg_sleep(60);\nCREATE TABLE sessions (id int);\n`);
    const outcome = result.then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitUntil('the drill inside pg_sleep', async () =>
      withAdmin(async (admin) => (await admin.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep%' AND state = 'active'`, [scratchName])).rowCount === 1),
    );
    await withAdmin((admin) => admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'runbook-restore-drill'`, [scratchName]));
    expect(await outcome).toMatchObject({ type: 'Transient', message: expect.stringMatching(/could not restore .*terminating connection/) });
    expect(await databaseExists(scratchName)).toBe(false);
  });

  test('failure: COPY data breaks halfway; nothing is kept and the error names the row', async () => {
    const { scratchName, result } = await drillOn('copy-broken.sql', `CREATE TABLE users (id int);\nCOPY users (id) FROM stdin;\n1\n2\nnot-a-number\n4\n\\.\n`);
    await expectFailure(result, 'InvalidInput', /could not restore .*invalid input syntax for type integer/);
    expect(await databaseExists(scratchName)).toBe(false);
  });
});
