import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { AppsV1Api } from '@kubernetes/client-node';
import { Client as PgClient } from 'pg';
import { createRunbookClient } from '../../client';
import type { CheckRow, ChecklistResult } from '../../common/checklist';
import type { RunbookConfig } from '../../config/schema';
import { recordHistory } from '../helpers/histories';
import { deleteBoundClaim, deleteDeployment, restartableScript, scratchApp, scratchBoundClaim, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv, testbedS3 } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';
const workflowId = `monthlyReview/${namespace}`;
const day = 86_400_000;

/**
 * 每月检查清单 against the real sandbox: capacity forecasts from the 30 days of history the test
 * bed backfills into Prometheus (promtool), unused resources made for real in the cluster, old
 * backups and the disaster-recovery drill on a prefix of the test's own holding a real pg_dump,
 * and rollbackDeployment in plan mode as a child run.
 */
describe('monthlyReview', () => {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const s3 = testbedS3();
  const bucket = env.S3_BUCKET!;
  const backupPrefix = `database/test-monthly-${randomUUID().slice(0, 8)}/`;
  let dump: Buffer;

  const rowOf = (result: ChecklistResult, id: string): CheckRow => {
    const row = result.checks.find((r) => r.id === id);
    if (!row) throw new Error(`no row ${id}; rows: ${result.checks.map((r) => `${r.id} ${r.status} ${r.detail}`).join('\n')}`);
    return row;
  };
  const put = (key: string, body: Buffer | string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${backupPrefix}${key}`, Body: body }));
  const ymd = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);

  async function runMonthly(config: RunbookConfig, input: Record<string, unknown> = {}, record = false): Promise<ChecklistResult> {
    await terminateRuns(config.temporal, [workflowId, `${workflowId}/rollbackDeployment-plan`]);
    return withWorker(config, async ({ client }) => {
      const runbooks = createRunbookClient({ client, taskQueue: config.temporal.taskQueue });
      const { workflowId: id } = await runbooks.startRunbook('monthlyReview', { backupPrefix, ...input }, { startedBy: 'test' });
      const result = await runbooks.waitForResult<ChecklistResult>(id);
      // The child's id derives from this run's id: the file name keeps it for replay ("__" for "/").
      if (record) await recordHistory(client.workflow.getHandle(id), 'checklist');
      return result;
    });
  }

  async function scratchDatabases(): Promise<string[]> {
    const pg = new PgClient({ connectionString: env.DATABASE_URL });
    await pg.connect();
    try {
      return (await pg.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'dr_drill_%'")).rows.map((r) => r.datname);
    } finally {
      await pg.end();
    }
  }

  beforeAll(async () => {
    dump = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'database/latest.sql' }))).Body!.transformToByteArray());
    await put(`short_drama_prod_${ymd(0)}.sql`, dump);
  });

  afterAll(async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: backupPrefix }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    s3.destroy();
  });

  test('a healthy sandbox: forecasts from 30 days of history (the volume fills within 3 months), no unused resources, a real restore drill, a ready rollback plan', async () => {
    const config = testbedConfig();
    const scratchBefore = await scratchDatabases();
    const result = await runMonthly(config, {}, true);

    for (const id of ['capacity.cpu', 'capacity.memory', 'capacity.disk', 'capacity.database']) {
      const row = rowOf(result, id);
      // Fitted on the backfilled month, not on a few minutes of live scrapes.
      expect(Number(/over (\d+) days/.exec(row.detail)?.[1])).toBeGreaterThanOrEqual(29);
      expect(row.value).toMatch(/ now, .* in 90 days$/);
    }
    // The model's trends (scripts/testbed/capacity-model.js): CPU +0.004 cores/day against 2 cores of
    // limits, memory +2 MiB/day against 1 GiB, the database +32 MiB/day: all stay under their thresholds
    // in 3 months; the volume grows 40 MiB/day from 4 GiB and passes 80 % of its 10 GiB in about 72 days.
    expect(rowOf(result, 'capacity.cpu')).toMatchObject({ status: 'PASS', threshold: '<= 70% of 2.00 cores' });
    expect(rowOf(result, 'capacity.cpu').detail).toContain('+0.00 cores/day');
    expect(rowOf(result, 'capacity.memory')).toMatchObject({ status: 'PASS', threshold: '<= 80% of 1.0 GiB' });
    expect(rowOf(result, 'capacity.memory').detail).toMatch(/\+2\.0 MiB\/day/);
    expect(rowOf(result, 'capacity.database')).toMatchObject({ status: 'PASS' });
    expect(rowOf(result, 'capacity.database').detail).toMatch(/\+3[12]\.\d MiB\/day/);
    const disk = rowOf(result, 'capacity.disk');
    expect(disk).toMatchObject({ status: 'WARN', threshold: '<= 80% of 10.0 GiB' });
    expect(disk.detail).toMatch(/\+(39|40)\.\d MiB\/day/);
    const daysToThreshold = Number(/reaches 80% in about (\d+) days/.exec(disk.detail)?.[1]);
    expect(daysToThreshold).toBeGreaterThan(60);
    expect(daysToThreshold).toBeLessThan(85);
    for (const id of ['cost.unmounted-claims', 'cost.scaled-to-zero', 'cost.services-without-endpoints', 'cost.old-replicasets', 'cost.old-backups']) {
      expect(rowOf(result, id).status).toBe('PASS');
    }

    const drill = rowOf(result, 'dr.restore');
    expect(drill.status).toBe('PASS');
    expect(drill.detail).toContain(`${backupPrefix}short_drama_prod_${ymd(0)}.sql (plain`);
    expect(drill.detail).toMatch(/→ [1-9]\d* tables, \d+ rows in dr_drill_\w+, dropped/);
    expect(drill.value).toMatch(/^\d+\.\d s$/);
    expect(await scratchDatabases()).toEqual(scratchBefore);

    const plan = rowOf(result, 'emergency.rollback-plan');
    expect(plan.status).toBe('PASS');
    expect(plan.detail).toMatch(/revision/);
    expect(result.overall).toBe('WARN');
    expect(result.checks.filter((r) => r.status !== 'PASS').map((r) => r.id)).toEqual(['capacity.disk']);

    const json = JSON.parse(await readBucketText(result.checklistReport!.jsonKey)) as { checks: CheckRow[] };
    expect(json.checks.find((r) => r.id === 'dr.restore')?.status).toBe('PASS');
    expect(await readBucketText(result.checklistReport!.markdownKey)).toContain('## 容量规划');
  }, 300_000);

  test('unused resources, backups beyond retention and a backup that does not restore are reported', async () => {
    const idle = unique('monthly-idle');
    const orphanClaim = unique('monthly-orphan');
    const apps = kc.makeApiClient(AppsV1Api);
    try {
      await scratchApp(kc, idle, { script: restartableScript() });
      await apps.patchNamespacedDeploymentScale(idle, namespace, { spec: { replicas: 0 } }, undefined, undefined, undefined, undefined, undefined, {
        headers: { 'Content-Type': 'application/merge-patch+json' },
      });
      await scratchBoundClaim(kc, orphanClaim, 'fixed', '1Gi');
      await put(`short_drama_prod_${ymd(45 * day)}.sql`, dump);
      // The newest backup is not a dump at all: the drill must say so.
      await put(`short_drama_prod_${ymd(0)}_broken.sql`, 'this is not SQL;\nSELECT broken(;\n');

      // A floor of 1 keeps only the newest (broken) backup, so the 45-day-old one is beyond retention.
      const result = await runMonthly(testbedConfig({ CHECKLIST_THRESHOLDS: JSON.stringify({ oldReplicaSets: 0 }), S3_BACKUP_KEEP_NEWEST: '1' }));
      expect(rowOf(result, 'cost.scaled-to-zero')).toMatchObject({ status: 'WARN', value: '1' });
      expect(rowOf(result, 'cost.scaled-to-zero').detail).toContain(idle);
      expect(rowOf(result, 'cost.unmounted-claims').status).toBe('WARN');
      expect(rowOf(result, 'cost.unmounted-claims').detail).toContain(orphanClaim);
      expect(rowOf(result, 'cost.old-backups')).toMatchObject({ status: 'WARN', value: '1' });
      // short-drama-app keeps revision 1 for rollbacks: one old ReplicaSet, over a threshold of 0.
      expect(rowOf(result, 'cost.old-replicasets').status).toBe('WARN');
      expect(rowOf(result, 'dr.restore')).toMatchObject({ status: 'FAIL', value: 'failed' });
      expect(rowOf(result, 'dr.restore').detail).toContain('_broken.sql');
      expect(result.overall).toBe('FAIL');
    } finally {
      await deleteDeployment(kc, idle);
      await deleteBoundClaim(kc, orphanClaim);
      await s3.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: [{ Key: `${backupPrefix}short_drama_prod_${ymd(45 * day)}.sql` }, { Key: `${backupPrefix}short_drama_prod_${ymd(0)}_broken.sql` }] },
        }),
      );
    }
  }, 300_000);

  /** Runs the review with only the drill's outcome of interest: `newest` is the newest object under the prefix for that run. */
  async function drillRowWith(newest: string, body: string, config: RunbookConfig): Promise<CheckRow> {
    await put(newest, body);
    const scratchBefore = await scratchDatabases();
    try {
      const row = rowOf(await runMonthly(config), 'dr.restore');
      // The run leaves no scratch database behind, whatever its outcome.
      expect(await scratchDatabases()).toEqual(scratchBefore);
      return row;
    } finally {
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: `${backupPrefix}${newest}` }] } }));
    }
  }

  test('attack: a tampered newest backup (\\! shell, \\c short_drama_prod) fails the drill row naming the refusal; no file, nothing in production, no scratch left', async () => {
    const marker = `/tmp/monthly-pwned-${randomUUID()}`;
    const pwned = `pwned_${randomUUID().slice(0, 8)}`;
    const tampered = `CREATE TABLE users (id int);\n\\! touch ${marker}\n\\c short_drama_prod\nCREATE TABLE ${pwned} (id int);\n`;
    const row = await drillRowWith(`short_drama_prod_${ymd(0)}_z_tampered.sql`, tampered, testbedConfig());
    expect(row).toMatchObject({ status: 'FAIL', value: 'failed' });
    expect(row.detail).toMatch(/_z_tampered\.sql failed: .*line 2: psql meta-command \\! refused/);
    expect(existsSync(marker)).toBe(false);
    const pg = new PgClient({ connectionString: env.DATABASE_URL });
    await pg.connect();
    try {
      expect((await pg.query('SELECT to_regclass($1) AS t', [`public.${pwned}`])).rows[0].t).toBeNull();
    } finally {
      await pg.end();
    }
  }, 300_000);

  test('a drill role that is a superuser, or the worker’s own, is refused: the row FAILs saying why and nothing is restored', async () => {
    const row = await drillRowWith(`short_drama_prod_${ymd(0)}_z_good.sql`, dump.toString('utf8'), testbedConfig({ RESTORE_DRILL_DATABASE_URL: env.TESTBED_POSTGRES_ADMIN_URL }));
    expect(row).toMatchObject({ status: 'FAIL', value: 'failed' });
    expect(row.detail).toMatch(/restore-drill role postgres is refused: it is a superuser/);
    expect(row.detail).not.toContain(env.TESTBED_POSTGRES_PASSWORD!);
    const own = await drillRowWith(`short_drama_prod_${ymd(0)}_z_good.sql`, dump.toString('utf8'), testbedConfig({ RESTORE_DRILL_DATABASE_URL: env.DATABASE_URL }));
    expect(own).toMatchObject({ status: 'FAIL', value: 'failed' });
    expect(own.detail).toMatch(/restore-drill role runbook_worker is refused: it is the worker's own role/);
  }, 300_000);

  test('bad input fails the run at once, non-retryable, before any check', async () => {
    const config = testbedConfig();
    await withWorker(config, async ({ client }) => {
      const handle = await client.workflow.start('monthlyReview', {
        taskQueue: config.temporal.taskQueue,
        workflowId: `monthlyReview/bad-${randomUUID()}`,
        args: [{ horizonDays: 0, database: 'Robert"); DROP' }],
      });
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(((err as WorkflowFailedError).cause as Error).message).toMatch(/invalid input for monthlyReview: .*database: expected a PostgreSQL database name.*horizonDays/s);
      expect(await scheduledActivityTypes(handle)).toEqual([]);
    });
  }, 60_000);
});
