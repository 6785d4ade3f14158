import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { preflight } from '../workflows';
import type { PreflightResult } from '../common/preflight';
import { closedPort, testbedConfig, testbedEnv, testbedS3 } from './helpers/testbed';
import { recordHistory } from './helpers/histories';
import { withWorker } from './helpers/worker';
import { randomBytes } from 'node:crypto';
import { describePermission, permissionsGrantedBy, requiredPermissions, workerRbacRules } from '../activities/kubernetes-permissions';
import { createKubernetesActivities } from '../activities/kubernetes';
import { adminKubeConfig } from './helpers/kube-cluster';
import { grantServiceAccount } from './helpers/kube-rbac';
import { Pool } from 'pg';
import { createPostgresActivities } from '../activities/postgres';
import { withAdmin } from './helpers/postgres-scratch';
import { workerRole } from '../scripts/testbed/seed-postgres';

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function rowsOf(result: PreflightResult, target: string) {
  return result.rows.filter((row) => row.target === target);
}

describe('preflight', () => {
  const env = testbedEnv();

  test('against the real test bed every target passes, Kubernetes included (SelfSubjectAccessReviews as the worker account of deploy/kubernetes, with no excess)', async () => {
    const config = testbedConfig();
    const result = await withWorker(config, async ({ client, taskQueue }) => {
      const handle = await client.workflow.start<typeof preflight>('preflight', { taskQueue, workflowId: `preflight-real-${taskQueue}`, args: [{}] });
      const finished = await handle.result();
      await recordHistory(handle, 'all-targets');
      return finished;
    });
    const failures = result.rows.filter((row) => row.status === 'FAIL');
    expect(failures).toEqual([]);
    expect(result.ok).toBe(true);
    const kubeRows = rowsOf(result, 'kubernetes');
    expect(kubeRows[0]).toEqual(expect.objectContaining({ check: 'API reachable', status: 'PASS', detail: expect.stringMatching(/^Kubernetes v1\.37\.2 at https:\/\/127\.0\.0\.1:/) }));
    expect(kubeRows.map((r) => r.check)).toEqual([
      'API reachable',
      ...requiredPermissions.map((p) => `can ${describePermission(p, p.clusterScoped ? undefined : 'short-drama-prod')}`),
      'no excess privileges',
    ]);
    expect(kubeRows.every((r) => r.status === 'PASS')).toBe(true);
    expect(kubeRows.at(-1)!.detail).toBe('none in short-drama-prod, kube-system: no wildcard, escalate, bind or impersonate, nothing in kube-system');
    expect(rowsOf(result, 'postgres').map((r) => r.check)).toEqual([
      'connect',
      'server version',
      'pg_stat_statements',
      'allowlisted databases exist',
      'privilege: terminate backends',
      'privilege: read all statistics',
      'privilege: ALTER SYSTEM max_connections',
      'privilege: create scratch database',
      'privilege: reload configuration',
      'privilege: set role passwords',
      'privilege: maintain tables',
      'privilege: delete expired sessions',
      'no excess privileges',
    ]);
    // Least privilege beyond Kubernetes: the worker's own PostgreSQL role, Redis ACL user and S3 identity (deploy/postgres, deploy/redis, deploy/s3).
    expect(rowsOf(result, 'postgres')[0]!.detail).toBe('connected to short_drama_prod as runbook_worker');
    expect(rowsOf(result, 'postgres')[1]!.detail).toMatch(/^PostgreSQL 15\./);
    expect(rowsOf(result, 'redis').map((r) => r.check)).toEqual(['PING', 'INFO', 'CONFIG GET allowed', 'SCAN allowlisted patterns', 'no excess privileges']);
    expect(rowsOf(result, 's3').map((r) => r.check)).toEqual(['bucket reachable', 'list backups', 'put, read back, delete a probe', 'no excess privileges']);
    for (const target of ['postgres', 'redis', 's3']) expect(rowsOf(result, target).at(-1)!.detail).toMatch(/^none beyond the /);
    expect(rowsOf(result, 'prometheus').map((r) => r.check)).toEqual(['build info', 'query up']);
    expect(result.passed).toBe(result.rows.length);

    // The probe object is gone again: preflight changes nothing.
    const s3 = testbedS3();
    const listing = await s3.send(new ListObjectsV2Command({ Bucket: env.S3_BUCKET, Prefix: 'runbooks/preflight/' }));
    s3.destroy();
    expect(listing.KeyCount ?? 0).toBe(0);
  });

  test('Kubernetes with the read-only ServiceAccount kubeconfig: reads PASS, every patch row FAILs as denied', async () => {
    const config = testbedConfig({ KUBECONFIG: env.TESTBED_KUBECONFIG_READONLY });
    const result = await withWorker(config, ({ client, taskQueue }) =>
      client.workflow.execute('preflight', { taskQueue, workflowId: `preflight-readonly-${taskQueue}`, args: [{ targets: ['kubernetes'] }] }),
    );
    const kubeRows = rowsOf(result, 'kubernetes');
    expect(result.ok).toBe(false);
    expect(kubeRows[0]).toEqual(expect.objectContaining({ check: 'API reachable', status: 'PASS' }));
    const patchRows = kubeRows.filter((r) => r.check.startsWith('can patch '));
    expect(patchRows.length).toBeGreaterThan(0);
    for (const row of patchRows) expect(row).toEqual(expect.objectContaining({ status: 'FAIL', detail: expect.stringMatching(/^denied/) }));
    expect(kubeRows.find((r) => r.check === 'can list pods in short-drama-prod')?.status).toBe('PASS');
    expect(kubeRows.find((r) => r.check === 'can get pods/log in short-drama-prod')?.status).toBe('PASS');
  });

  test('the admin kubeconfig passes every permission but WARNs about its excess (wildcards: cluster-admin); a WARN does not fail preflight', async () => {
    const config = testbedConfig({ KUBECONFIG: env.TESTBED_KUBECONFIG_ADMIN });
    const result = await withWorker(config, ({ client, taskQueue }) =>
      client.workflow.execute('preflight', { taskQueue, workflowId: `preflight-admin-${taskQueue}`, args: [{ targets: ['kubernetes'] }] }),
    );
    const kubeRows = rowsOf(result, 'kubernetes');
    expect(kubeRows.filter((r) => r.status !== 'PASS')).toEqual([
      {
        target: 'kubernetes',
        check: 'no excess privileges',
        status: 'WARN',
        detail: 'the account may do more than the runbooks need: wildcard in short-drama-prod: * *.* (cluster-admin or the like); wildcard in kube-system: * *.* (cluster-admin or the like)',
      },
    ]);
    expect(result).toEqual(expect.objectContaining({ ok: true, warned: 1, failed: 0 }));
  });

  test('as the PostgreSQL superuser, the default Redis user and the test bed’s S3 identity: each system WARNs about its excess; a WARN does not fail preflight', async () => {
    const config = testbedConfig({
      DATABASE_URL: env.TESTBED_DATABASE_ADMIN_URL,
      REDIS_URL: env.TESTBED_REDIS_ADMIN_URL,
      S3_ACCESS_KEY_ID: env.TESTBED_S3_ADMIN_ACCESS_KEY_ID,
      S3_SECRET_ACCESS_KEY: env.TESTBED_S3_ADMIN_SECRET_ACCESS_KEY,
    });
    const result: PreflightResult = await withWorker(config, ({ client, taskQueue }) =>
      client.workflow.execute('preflight', { taskQueue, workflowId: `preflight-admins-${taskQueue}`, args: [{ targets: ['postgres', 'redis', 's3'] }] }),
    );
    const excess = 'the account may do more than the runbooks need: ';
    expect(result.rows.filter((r) => r.status !== 'PASS')).toEqual([
      { target: 'postgres', check: 'no excess privileges', status: 'WARN', detail: `${excess}postgres is a superuser` },
      {
        target: 'redis',
        check: 'no excess privileges',
        status: 'WARN',
        detail: `${excess}SLOWLOG LEN is allowed: the user may run commands no runbook runs (allcommands or +@admin); a GET outside the allowlisted key patterns is allowed (allkeys or a wider ~pattern)`,
      },
      { target: 's3', check: 'no excess privileges', status: 'WARN', detail: `${excess}a DELETE outside database/, runbooks/ is allowed (bucket-wide write)` },
    ]);
    expect(result).toEqual(expect.objectContaining({ ok: true, warned: 3, failed: 0 }));
  });

  test('a PostgreSQL role that is no superuser but may create roles, replicate or read server files is WARNed about, each named', async () => {
    const role = `pf_excess_${randomBytes(3).toString('hex')}`;
    await withAdmin(async (admin) => {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'x' CREATEDB CREATEROLE REPLICATION IN ROLE pg_read_server_files, ${workerRole}`);
    });
    const url = new URL(env.DATABASE_URL!);
    url.username = role;
    url.password = 'x';
    const pool = new Pool({ connectionString: url.toString(), max: 1 });
    try {
      const rows = await createPostgresActivities({ pool, allowedDatabases: ['short_drama_prod'] }).preflightPostgres();
      expect(rows.filter((r) => r.status !== 'PASS')).toEqual([
        {
          target: 'postgres',
          check: 'no excess privileges',
          status: 'WARN',
          detail: `the account may do more than the runbooks need: ${role} has CREATEROLE (may change any non-superuser's password; runbook.set_role_password is narrower); ${role} has REPLICATION; ${role} is a member of pg_read_server_files`,
        },
      ]);
    } finally {
      await pool.end();
      await withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS ${role}`));
    }
  });

  test('an account that may escalate, bind, impersonate or read in kube-system is WARNed about, each named', async () => {
    const admin = adminKubeConfig();
    const account = `preflight-excess-${randomBytes(3).toString('hex')}`;
    const grants = await grantServiceAccount(admin, account, {
      namespaced: [...workerRbacRules().namespaced, { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], verbs: ['escalate', 'bind'] }],
      clusterScoped: [...workerRbacRules().clusterScoped, { apiGroups: [''], resources: ['users'], verbs: ['impersonate'] }],
      kubeSystem: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    });
    try {
      const rows = await createKubernetesActivities({ kube: grants.kubeConfig, allowedNamespaces: ['short-drama-prod'] }).preflightKubernetes();
      expect(rows.filter((r) => r.status !== 'PASS')).toEqual([
        {
          target: 'kubernetes',
          check: 'no excess privileges',
          status: 'WARN',
          detail:
            'the account may do more than the runbooks need: impersonate in short-drama-prod: impersonate users; escalate/bind in short-drama-prod: escalate,bind roles.rbac.authorization.k8s.io; impersonate in kube-system: impersonate users; access in kube-system, which no runbook touches: get configmaps',
        },
      ]);
    } finally {
      await grants.remove();
    }
  });

  test('least privilege, proven rule by rule: without any one rule of the worker RBAC, preflight FAILs exactly the permissions that rule grants, naming the runbooks that need them', async () => {
    const admin = adminKubeConfig();
    const account = `preflight-mutant-${randomBytes(3).toString('hex')}`;
    const { namespaced, clusterScoped } = workerRbacRules();
    const grants = await grantServiceAccount(admin, account, { namespaced, clusterScoped });
    try {
      const mutants = [...namespaced.map((rule) => ({ rule, scope: 'namespaced' as const })), ...clusterScoped.map((rule) => ({ rule, scope: 'clusterScoped' as const }))];
      for (const { rule, scope } of mutants) {
        const missing = permissionsGrantedBy(rule);
        expect(missing.length).toBeGreaterThan(0);
        await grants.setRules({ namespaced, clusterScoped, [scope]: (scope === 'namespaced' ? namespaced : clusterScoped).filter((r) => r !== rule) });
        await grants.waitUntilDenied(missing[0]!);
        const rows = await createKubernetesActivities({ kube: grants.kubeConfig, allowedNamespaces: ['short-drama-prod'] }).preflightKubernetes();
        const failed = rows.filter((r) => r.status !== 'PASS');
        expect({ rule, failed: failed.map((r) => r.check) }).toEqual({ rule, failed: missing.map((p) => `can ${describePermission(p, p.clusterScoped ? undefined : 'short-drama-prod')}`) });
        for (const [index, row] of failed.entries()) expect(row.detail).toMatch(new RegExp(`^denied.*; needed by ${escapeRegExp(missing[index]!.usedBy)}$`));
      }
    } finally {
      await grants.remove();
    }
  });

  test('down targets are FAIL rows with their error, and the run still completes', async () => {
    const kubeDir = mkdtempSync(join(tmpdir(), 'preflight-kube-'));
    const kubeconfig = join(kubeDir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'down', cluster: { server: `https://127.0.0.1:${closedPort}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'nobody', user: { token: 'not-a-real-token' } }],
        contexts: [{ name: 'down', context: { cluster: 'down', user: 'nobody' } }],
        'current-context': 'down',
      }),
    );
    const password = 'pw-that-must-not-leak';
    const config = testbedConfig({
      KUBECONFIG: kubeconfig,
      DATABASE_URL: `postgres://postgres:${password}@127.0.0.1:${closedPort}/short_drama_prod`,
      REDIS_URL: `redis://:${password}@127.0.0.1:${closedPort}/0`,
      S3_ENDPOINT: `http://127.0.0.1:${closedPort}`,
      PROMETHEUS_URL: `http://127.0.0.1:${closedPort}`,
    });
    const result = await withWorker(config, async ({ client, taskQueue }) => {
      const handle = await client.workflow.start<typeof preflight>('preflight', { taskQueue, workflowId: `preflight-down-${taskQueue}`, args: [{}] });
      const finished = await handle.result();
      await recordHistory(handle, 'targets-down');
      return finished;
    });
    expect(result.ok).toBe(false);
    const firstRows = Object.fromEntries(['kubernetes', 'postgres', 'redis', 's3', 'prometheus'].map((t) => [t, rowsOf(result, t)]));
    expect(firstRows.kubernetes).toEqual([expect.objectContaining({ check: 'API reachable', status: 'FAIL', detail: expect.stringMatching(/ECONNREFUSED/) })]);
    expect(firstRows.postgres).toEqual([expect.objectContaining({ check: 'connect', status: 'FAIL', detail: expect.stringMatching(/ECONNREFUSED/) })]);
    expect(firstRows.redis).toEqual([expect.objectContaining({ check: 'PING', status: 'FAIL' })]);
    expect(firstRows.s3).toEqual([expect.objectContaining({ check: 'bucket reachable', status: 'FAIL' })]);
    expect(firstRows.prometheus).toEqual([expect.objectContaining({ check: 'build info', status: 'FAIL' })]);
    expect(JSON.stringify(result)).not.toContain(password);
  });

  test('a wrong password is a FAIL row that names the problem but not the password', async () => {
    const config = testbedConfig({ DATABASE_URL: env.DATABASE_URL!.replace(/:[^:@/]+@/, ':wrong-password@') });
    const result = await withWorker(config, ({ client, taskQueue }) =>
      client.workflow.execute('preflight', { taskQueue, workflowId: `preflight-auth-${taskQueue}`, args: [{ targets: ['postgres'] }] }),
    );
    expect(result.rows).toEqual([expect.objectContaining({ target: 'postgres', check: 'connect', status: 'FAIL', detail: expect.stringMatching(/password authentication failed/) })]);
    expect(JSON.stringify(result)).not.toContain('wrong-password');
  });

  test('bad input fails at once, non-retryable, naming the field, before any activity runs', async () => {
    const config = testbedConfig();
    await withWorker(config, async ({ client, taskQueue }) => {
      const handle = await client.workflow.start<typeof preflight>('preflight', { taskQueue, workflowId: `preflight-bad-${taskQueue}`, args: [{ targets: ['mongodb'] } as never] });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const cause = (error as WorkflowFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe('InvalidInput');
      expect((cause as ApplicationFailure).nonRetryable).toBe(true);
      expect(cause!.message).toBe('invalid input for preflight: targets.0: expected one of kubernetes, postgres, redis, s3, prometheus');
      await recordHistory(handle, 'bad-input');
      const history = await handle.fetchHistory();
      const scheduled = history.events?.filter((e) => e.activityTaskScheduledEventAttributes) ?? [];
      expect(scheduled).toHaveLength(0);
    });
  });
});
