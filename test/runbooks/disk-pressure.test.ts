import { randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { CoreV1Api } from '@kubernetes/client-node';
import type { DiskPressureResult } from '../../workflows/disk-pressure';
import { recordHistory } from '../helpers/histories';
import { deleteBoundClaim, scratchBoundClaim } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { filesInPostgres, inPostgres, writeAgedFiles } from '../helpers/postgres-container';
import { approveEach, expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv, testbedS3 } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

const namespace = 'short-drama-prod';
const steps = ['delete-old-logs', 'expand-pvc', 'delete-old-backups'];
const day = 86_400_000;
const ymd = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);

/**
 * 场景4 against the real test bed: the runbook's `find`/`df`/`du` run in the real postgres
 * container, on its volume, where each test makes a unique folder of logs and data; the PVCs are
 * scratch PV+PVC pairs on the StorageClasses `expandable` and `fixed`; the backups are real
 * objects in the test bed's S3 under a unique prefix below database/. Everything made here is
 * removed afterwards.
 */
describe('diskPressure', () => {
  const env = testbedEnv();
  const config = testbedConfig({
    // The fixture has two recent backups besides latest.sql: a floor of 2 keeps exactly those (s3.test covers the default 7).
    S3_BACKUP_KEEP_NEWEST: '2',
    RUNBOOK_APPROVERS: JSON.stringify([
      { id: 'bob', roles: ['l2'] },
      { id: 'carol', roles: ['manager'] },
    ]),
  });
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const s3 = testbedS3();
  const bucket = env.S3_BUCKET!;
  const cleanups: Array<() => Promise<void>> = [];

  interface Fixture {
    id: string;
    pvc: string;
    dir: string;
    input: { pvc: string; dataDir: string; logDir: string; backupPrefix: string };
    oldLogs: string[];
    keptFiles: string[];
    prefix: string;
    oldBackups: string[];
    keptBackups: string[];
  }

  async function listKeys(prefix: string): Promise<string[]> {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (out.Contents ?? []).map((o) => o.Key!).sort();
  }

  /** A folder on the postgres volume (old and new logs, a large directory), a bound scratch claim, and dated backups. */
  async function fixture(storageClass: 'expandable' | 'fixed'): Promise<Fixture> {
    const id = randomUUID().slice(0, 8);
    const dir = `var/lib/postgresql/data/disk-pressure-${id}`;
    const pvc = `dp-${storageClass}-${id}`;
    cleanups.push(async () => void inPostgres(`rm -rf /${dir}`));
    const oldLogs = ['log/app-old1.log', 'log/app-old2.log', 'log/nested/worker-old.log'].map((f) => `${dir}/${f}`);
    const keptFiles = ['log/app-new.log', 'log/app-old.txt', 'log/app-8days.log.gz'].map((f) => `${dir}/${f}`);
    writeAgedFiles(
      [...[...oldLogs, `${dir}/log/app-old.txt`, `${dir}/log/app-8days.log.gz`].map((path) => ({ path, age: '10 days ago' })), { path: `${dir}/log/app-new.log`, age: '6 days ago' }],
      [{ path: `${dir}/data/big/blob`, bytes: 4 * 1024 * 1024 }],
    );

    cleanups.push(() => deleteBoundClaim(kc, pvc));
    await scratchBoundClaim(kc, pvc, storageClass, '1Gi');

    const prefix = `database/test-${randomUUID()}/`;
    cleanups.push(async () => {
      const keys = await listKeys(prefix);
      if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    });
    const oldBackups = [`${prefix}short_drama-${ymd(45 * day)}.sql`, `${prefix}short_drama-${ymd(90 * day)}.sql`];
    const keptBackups = [`${prefix}short_drama-${ymd(3 * day)}.sql`, `${prefix}short_drama-${ymd(20 * day)}.sql`, `${prefix}latest.sql`].sort();
    for (const Key of [...oldBackups, ...keptBackups]) await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: '-- PostgreSQL database dump\n' }));
    oldBackups.sort();
    return { id, pvc, dir, input: { pvc, dataDir: dir, logDir: `${dir}/log`, backupPrefix: prefix }, oldLogs, keptFiles, prefix, oldBackups, keptBackups };
  }

  const requested = async (pvc: string) => (await core.readNamespacedPersistentVolumeClaim(pvc, namespace)).body.spec?.resources?.requests?.storage;

  async function untouched(f: Fixture): Promise<void> {
    expect(filesInPostgres(f.dir)).toEqual([...f.oldLogs, ...f.keptFiles, `${f.dir}/data/big/blob`].sort());
    expect(await requested(f.pvc)).toBe('1Gi');
    expect(await listKeys(f.prefix)).toEqual([...f.oldBackups, ...f.keptBackups].sort());
  }

  async function fixed(f: Fixture): Promise<void> {
    expect(filesInPostgres(f.dir)).toEqual([...f.keptFiles, `${f.dir}/data/big/blob`].sort());
    expect(await listKeys(f.prefix)).toEqual(f.keptBackups);
  }

  const terminateLeftover = (pvc: string) => terminateRuns(config.temporal, [`diskPressure/${namespace}/${pvc}`, `lock/${namespace}/${pvc}`]);

  afterEach(async () => {
    for (const undo of cleanups.splice(0).reverse()) await undo().catch(() => undefined);
  });

  afterAll(() => s3.destroy());

  test('plan: names the exact changes and changes nothing', async () => {
    const f = await fixture('expandable');
    await terminateLeftover(f.pvc);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('diskPressure', f.input, { startedBy: 'erin' });
      return runbooks.waitForResult<DiskPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      ['delete-old-logs', `delete 3 *.log files under ${f.input.logDir} older than 7 days (find -mtime +7), at most 10000`],
      ['expand-pvc', `expand persistentvolumeclaims/${f.pvc} in namespace ${namespace} 1Gi -> 1536Mi (StorageClass expandable)`],
      ['delete-old-backups', expect.stringMatching(new RegExp(`^delete 2 objects under s3 ${f.prefix} older than 30 days \\(before .+\\), at most 1000; latest.sql and newer backups kept$`))],
    ]);
    expect([...(result.plan[0]!.change.details as { files: string[] }).files].sort()).toEqual([...f.oldLogs].sort());
    expect((result.plan[2]!.change.details as { keys: string[] }).keys).toEqual([f.oldBackups[0], f.oldBackups[1]].sort((a, b) => (a < b ? -1 : 1)));
    expect(result.before).toMatchObject({ oldLogs: 3, oldBackups: 2, pvc: { requested: '1Gi', storageClass: 'expandable', allowsExpansion: true } });
    expect(result.before.disk.df).toMatch(/%/);
    expect(result.before.disk.largest[0]!.path).toBe(f.input.dataDir); // the total first
    expect(result.before.disk.largest[1]!.path).toBe(`${f.input.dataDir}/data`);
    expect(result.targetSize).toBe('1536Mi');
    expect(result.after).toBeUndefined();
    await untouched(f);
  });

  test('execute + approve: only logs older than 7 days go, the PVC is expanded once, only backups older than 30 days go, report written', async () => {
    const f = await fixture('expandable');
    await terminateLeftover(f.pvc);
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('diskPressure', { ...f.input, mode: 'execute', severity: 'P2' }, { startedBy: 'erin' });
      await approveEach(runbooks, workflowId, steps);
      const finished = await runbooks.waitForResult<DiskPressureResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
      ['delete-old-logs', `deleted 3 *.log files under ${f.input.logDir} older than 7 days`],
      ['expand-pvc', `changed persistentvolumeclaims/${f.pvc} request 1Gi -> 1536Mi`],
      ['delete-old-backups', `deleted 2 backups under ${f.prefix} older than 30 days`],
    ]);
    await fixed(f);
    expect(await requested(f.pvc)).toBe('1536Mi');
    expect(result.after).toMatchObject({ oldLogs: 0, oldBackups: 0, pvc: { requested: '1536Mi' } });
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify',
      detail: expect.stringMatching(
        new RegExp(
          `^verified: no \\*\\.log files under \\S+ older than 7 days \\(0 are left\\); PVC short-drama-prod/${f.pvc} requesting 1536Mi \\(it requests 1536Mi \\(capacity \\S+\\)\\); no backups under \\S+ older than 30 days \\(0 are left\\)$`,
        ),
      ),
    });
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain('3 *.log files');
  });

  test('a StorageClass without expansion: the PVC step is not needed and the report gives the reason; logs and backups still cleaned', async () => {
    const f = await fixture('fixed');
    await terminateLeftover(f.pvc);
    const reason = `persistentvolumeclaims/${f.pvc} in namespace ${namespace} cannot be expanded: its StorageClass fixed does not allow volume expansion (allowVolumeExpansion is not true)`;
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('diskPressure', { ...f.input, mode: 'execute' }, { startedBy: 'erin' });
      await approveEach(runbooks, workflowId, ['delete-old-logs', 'delete-old-backups']);
      return runbooks.waitForResult<DiskPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.plan.find((p) => p.stepId === 'expand-pvc')!.change.summary).toBe(reason);
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['delete-old-logs', 'delete-old-backups']);
    expect(result.expansionRefused).toBe(reason);
    expect(result.targetSize).toBeUndefined();
    await fixed(f);
    expect(await requested(f.pvc)).toBe('1Gi');
    expect(await readBucketText(result.report!.markdownKey)).toContain(reason);
  });

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    const f = await fixture('expandable');
    await terminateLeftover(f.pvc);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('diskPressure', { ...f.input, mode: 'execute' }, { startedBy: 'erin' });
      for (const step of steps) {
        const pending = await pendingOf(runbooks, workflowId, step);
        await runbooks.reject(workflowId, { stepId: step, planHash: pending.planHash, approver: 'carol', reason: 'not now' });
      }
      return runbooks.waitForResult<DiskPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual(steps.map((s) => [s, 'rejected']));
    expect(result.timeline.filter((e) => e.event === 'applied')).toEqual([]);
    await untouched(f);
  });

  test('a worker lost between two steps: another worker resumes with the same end state, the PVC expanded once', async () => {
    const f = await fixture('expandable');
    await terminateLeftover(f.pvc);
    let workflowId = '';
    await withRunbooks(config, async ({ runbooks }) => {
      ({ workflowId } = await runbooks.startRunbook('diskPressure', { ...f.input, mode: 'execute' }, { startedBy: 'erin' }));
      await approveEach(runbooks, workflowId, ['delete-old-logs', 'expand-pvc']);
      await pendingOf(runbooks, workflowId, 'delete-old-backups');
    });
    expect(await requested(f.pvc)).toBe('1536Mi');
    expect(filesInPostgres(`${f.dir}/log`)).toEqual([...f.keptFiles].sort());
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const pending = await pendingOf(runbooks, workflowId, 'delete-old-backups');
      await runbooks.approve(workflowId, { stepId: 'delete-old-backups', planHash: pending.planHash, approver: 'bob', reason: 'delete the old backups' });
      return runbooks.waitForResult<DiskPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(steps);
    expect(result.targetSize).toBe('1536Mi');
    expect(await requested(f.pvc)).toBe('1536Mi'); // not 2304Mi
    await fixed(f);
  });

  test('bad input: a clear non-retryable error before anything is touched', async () => {
    const f = await fixture('expandable');
    await terminateLeftover(f.pvc);
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('diskPressure', { ...f.input, logDir: `${f.input.dataDir}/../../etc` }, { startedBy: 'erin' })).rejects.toThrow(
        "invalid input for diskPressure: logDir: must not contain '..'",
      );
      const scheduled = scheduledActivityTypes;
      // Past the client's check, the workflow refuses the same input itself, before any activity.
      const nonsense = await client.workflow.start('diskPressure', {
        taskQueue,
        workflowId: `dp-bad-${randomUUID()}`,
        args: [{ ...f.input, mode: 'execute', logDir: '/var/log', logsOlderThanDays: -3, backupsOlderThanDays: 0 }],
      });
      const invalid = await nonsense.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(invalid).toBeInstanceOf(WorkflowFailedError);
      const failure = (invalid as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(
        'invalid input for diskPressure: logDir: expected a path relative to the work dir, not an absolute path; logsOlderThanDays: at least 1 day; backupsOlderThanDays: at least 1 day',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduled(nonsense)).toEqual([]);

      const handle = await client.workflow.start('diskPressure', { taskQueue, workflowId: `dp-bad-${randomUUID()}`, args: [{ ...f.input, namespace: 'kube-system', mode: 'execute' }] });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(String(((error as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduled(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);

      // Reports and evidence are not backups, and the floor is not an input: refused before anything is read.
      for (const [input, message] of [
        [{ backupPrefix: 'runbooks/' }, 'S3 prefix "runbooks/" holds runbook reports and evidence (runbooks/); backups are deleted only under database/'],
        [{ backupsOlderThanDays: 2 }, 'backups younger than 7 days are never deleted (configuration s3.backupMinAgeDays); asked for older than 2 days'],
      ] as const) {
        const refused = await client.workflow.start('diskPressure', { taskQueue, workflowId: `dp-bad-${randomUUID()}`, args: [{ ...f.input, ...input, mode: 'execute' }] });
        const err = await refused.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(String(((err as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe(message);
        expect(await scheduled(refused)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
      }
    });
    await untouched(f);
  });
});
