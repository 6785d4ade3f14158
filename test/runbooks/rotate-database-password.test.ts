import { randomUUID } from 'node:crypto';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Client } from 'pg';
import { type RunbookClient } from '../../client';
import type { RotateDatabasePasswordResult } from '../../workflows/rotate-database-password';
import { activityHarness } from '../helpers/activity-context';
import { recordHistory } from '../helpers/histories';
import { stopApiserver, type ApiserverOutage } from '../helpers/kube-outage';
import { waitUntil } from '../../scripts/testbed/processes';
import { deleteDeployment, restartableScript, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as namespace, statusOf } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { rotatableLoginRole, uniqueSuffix, withAdmin } from '../helpers/postgres-scratch';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import type { SetRolePasswordResult } from '../../activities/password-rotation';
import { logsIn } from '../helpers/postgres-login';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

const key = 'DATABASE_PASSWORD';
const step = 'rotate-password';
const restartedAtAnnotation = 'kubectl.kubernetes.io/restartedAt';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/**
 * 定期轮换密钥 against the test bed's real PostgreSQL, Kubernetes API and Temporal server. Each
 * test rotates a LOGIN role, Secret and app Deployment of its own (never app-secrets or postgres).
 */
describe('rotateDatabasePassword', () => {
  const env = testbedEnv();
  /** The worker's configuration with these roles (only) in the rotation allowlist. */
  const configFor = (...roles: string[]) =>
    testbedConfig({
      RUNBOOK_APPROVERS: JSON.stringify([
        { id: 'bob', roles: ['l2'] },
        { id: 'dave', roles: ['l1'] },
        { id: 'erin', roles: ['l2'] },
      ]),
      ALLOWED_ROTATION_ROLES: roles.join(','),
    });
  const config = configFor('short_drama_app');
  /** An apiserver a test stopped: started again after each test whatever happened. */
  let outage: ApiserverOutage | undefined;
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const cleanups: Array<() => Promise<unknown>> = [];
  const workflowIds: string[] = [];

  interface Fixture {
    role: string;
    old: string;
    secret: string;
    app: string;
    workflowId: string;
  }

  /** A LOGIN role with a known password, a Secret holding it, and an app Deployment (a real pod on the node). */
  async function fixture(): Promise<Fixture> {
    const { role, password: old, drop } = await rotatableLoginRole('rot');
    cleanups.push(drop);
    const secret = unique('rot-secret');
    await core.createNamespacedSecret(namespace, { metadata: { name: secret, labels: { 'runbook-test/scratch': 'true' } }, type: 'Opaque', data: { [key]: b64(old), OTHER: b64('kept') } });
    cleanups.push(() => core.deleteNamespacedSecret(secret, namespace).catch((err: unknown) => (statusOf(err) === 404 ? undefined : Promise.reject(err))));
    const app = unique('rot-app');
    cleanups.push(() => deleteDeployment(kc, app));
    await scratchApp(kc, app, { script: restartableScript() });
    const workflowId = `rotateDatabasePassword/${namespace}/${secret}`;
    workflowIds.push(workflowId, `lock/${namespace}/${secret}`);
    return { role, old, secret, app, workflowId };
  }

  async function secretData(secret: string): Promise<{ data: Record<string, string>; annotations: Record<string, string> }> {
    const { body } = await core.readNamespacedSecret(secret, namespace);
    return { data: Object.fromEntries(Object.entries(body.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])), annotations: body.metadata?.annotations ?? {} };
  }

  async function restartedAt(app: string): Promise<string | undefined> {
    return (await apps.readNamespacedDeployment(app, namespace)).body.spec?.template.metadata?.annotations?.[restartedAtAnnotation];
  }

  /**
   * The whole history as text: its proto JSON plus every payload decoded (payloads are base64 in
   * it, so a password inside one would not show in the JSON itself).
   */
  async function historyText(handle: WorkflowHandle): Promise<string> {
    const json = historyToJSON(await handle.fetchHistory());
    const payloads = [...json.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'));
    return [json, ...payloads].join('\n');
  }

  function expectNoPassword(text: string, passwords: string[]): void {
    for (const password of passwords) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(b64(password));
    }
  }

  /** The one approval the rotation asks for: its whole plan. */
  async function approveOnce(runbooks: RunbookClient, workflowId: string): Promise<void> {
    const pending = await pendingOf(runbooks, workflowId, step);
    await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: 'rotation, as planned' });
  }

  /** The real setRolePasswordFromSecret, and `afterAlterRole` run right after it changed the role to the staged password. */
  function onAlterRole(roles: string[], afterAlterRole: () => Promise<void>) {
    const real = activityHarness({ ALLOWED_ROTATION_ROLES: roles.join(',') });
    cleanups.push(() => real.close());
    return {
      setRolePasswordFromSecret: async (input: Parameters<typeof real.activities.setRolePasswordFromSecret>[0]): Promise<SetRolePasswordResult> => {
        const result = await real.activities.setRolePasswordFromSecret(input);
        if (!input.dryRun && input.key === `${key}_NEXT`) await afterAlterRole();
        return result;
      },
    };
  }

  afterEach(async () => {
    await outage?.restore();
    outage = undefined;
    await terminateRuns(config.temporal, workflowIds.splice(0));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  test('plan: one plan of the four parts, nothing generated or changed', async () => {
    const f = await fixture();
    const before = await secretData(f.secret);
    const restartBefore = await restartedAt(f.app);
    const result = await withRunbooks(configFor(f.role), async ({ runbooks }) => {
      const started = await runbooks.startRunbook('rotateDatabasePassword', { secret: f.secret, role: f.role, appDeployment: f.app }, { startedBy: 'erin' });
      expect(started.workflowId).toBe(f.workflowId);
      return runbooks.waitForResult<RotateDatabasePasswordResult>(started.workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed])).toEqual([[step, true]]);
    const summary = result.plan[0]!.change.summary;
    expect(summary).toMatch(
      new RegExp(
        `^\\(1\\) generate a new password .*; \\(2\\) ALTER ROLE ${f.role} PASSWORD to ${key}_NEXT \\(a SCRAM-SHA-256 verifier.*; \\(3\\) ${key} <- ${key}_NEXT.*; \\(4\\) rolling restart of ${namespace}/${f.app}`,
      ),
    );
    expect(summary).toContain('the old password is put back in PostgreSQL and the Secret');
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(result.roleBefore).toMatchObject({ role: f.role, sessions: 0 });
    expect(result.secretBefore).toMatchObject({ keys: [key, 'OTHER'], hasKey: true, hasNext: false });
    expect(await secretData(f.secret)).toEqual(before);
    expect(await restartedAt(f.app)).toBe(restartBefore);
    expect(await logsIn(f.role, f.old)).toBe(true);
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain('None (plan mode)');
    expect(markdown).toContain('approved once, as one plan');
  });

  test('execute, approved once: the role logs in with the new Secret value, the old one is kept as _PREVIOUS, the app restarted; no password in the history or the report', async () => {
    const f = await fixture();
    // A session open before the rotation stays open through it (PostgreSQL checks passwords at login only).
    const url = new URL(env.DATABASE_URL!);
    url.username = f.role;
    url.password = encodeURIComponent(f.old);
    const session = new Client({ connectionString: url.toString() });
    session.on('error', () => undefined);
    await session.connect();
    try {
      const { result, history } = await withRunbooks(configFor(f.role), async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', secret: f.secret, role: f.role, appDeployment: f.app }, { startedBy: 'erin' });
        // The initiator may not approve their own run.
        const pending = await pendingOf(runbooks, workflowId, step);
        expect(Object.keys((await secretData(f.secret)).data).sort()).toEqual([key, 'OTHER']); // nothing staged before the approval
        await expect(runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'erin', reason: 'mine' })).rejects.toThrow(/four-eyes/);
        await approveOnce(runbooks, workflowId);
        const finished = await runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
        const handle = client.workflow.getHandle(workflowId);
        await recordHistory(handle, 'single-plan');
        return { result: finished, history: await historyText(handle) };
      });
      expect(result.outcome).toBe('completed');
      expect(result.rotated).toBe(true);
      expect(result.timeline.filter((e) => e.event === 'requested').map((e) => e.stepId)).toEqual([step]);
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual([step]);
      expect(result.timeline.filter((e) => e.event === 'decided').map((e) => e.by)).toEqual(['bob']);
      expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
        stepId: 'verify',
        detail: expect.stringMatching(/^verified: role \S+ logging in to \S+ with \S+ of secrets\/\S+ \(a fresh login works\); every pod of \S+ Ready on it \((\d+) of \1 pods are Ready\)$/),
      });

      const after = await secretData(f.secret);
      const next = after.data[key]!;
      expect(next).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(after.data).toEqual({ [key]: next, [`${key}_PREVIOUS`]: f.old, OTHER: 'kept' });
      expect(after.annotations['runbooks.example/password-version']).toBe(result.version);
      expect(await logsIn(f.role, next)).toBe(true);
      expect(await logsIn(f.role, f.old)).toBe(false);
      expect((await session.query<{ ok: number }>('SELECT 1 AS ok')).rows[0]?.ok).toBe(1);
      expect(await restartedAt(f.app)).toBe(result.restartedAt);
      expect(result.appAfter).toMatchObject({ pods: 1, readyPods: 1 });

      // Decoding found the payloads (the input holds the role), and neither password is anywhere.
      expect(history).toContain(`"role":"${f.role}"`);
      expectNoPassword(history, [f.old, next]);
      expectNoPassword(JSON.stringify(result), [f.old, next]);
      const markdown = await readBucketText(result.report!.markdownKey);
      const json = await readBucketText(result.report!.jsonKey);
      expect(markdown).toContain('new login needed the new password');
      expectNoPassword(markdown, [f.old, next]);
      expectNoPassword(json, [f.old, next]);
    } finally {
      await session.end().catch(() => undefined);
    }
  });

  test('a rollout that never becomes ready: the old password is restored in PostgreSQL and the Secret, the app restarted again, the run fails with its report', async () => {
    const f = await fixture();
    // Pods pinned to a node that does not exist are never scheduled: no restart of this app completes.
    await patchDeployment(kc, namespace, f.app, { spec: { template: { spec: { nodeSelector: { 'kubernetes.io/hostname': `no-such-node-${randomUUID().slice(0, 8)}` } } } } });
    let next = '';
    const { result, history } = await withRunbooks(configFor(f.role), async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook(
        'rotateDatabasePassword',
        { mode: 'execute', secret: f.secret, role: f.role, appDeployment: f.app, waitTimeoutSeconds: 15 },
        { startedBy: 'erin' },
      );
      await approveOnce(runbooks, workflowId);
      // While the restart waits, the new password is in <key>.
      await waitUntil('the new password promoted', async () => {
        const value = (await secretData(f.secret)).data[key]!;
        if (value !== f.old) next = value;
        return next !== '';
      });
      const finished = await runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
      return { result: finished, history: await historyText(client.workflow.getHandle(workflowId)) };
    });
    expect(next).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(result.outcome).toBe('failed');
    expect(result.rotated).toBe(false);
    expect(result.restored).toEqual({ role: true, secret: true, appRestarted: true });
    expect(result.timeline.filter((e) => e.event === 'failed').map((e) => [e.stepId, e.detail])).toEqual([
      [step, expect.stringMatching(/the restart of .* failed \(after ALTER ROLE.*rollout did not complete within 15s/)],
    ]);
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['restore-role', 'restore-secret', 'restart-app-again']);

    expect(await logsIn(f.role, f.old)).toBe(true);
    expect(await logsIn(f.role, next)).toBe(false);
    const secret = await secretData(f.secret);
    expect(secret.data).toEqual({ [key]: f.old, OTHER: 'kept' });
    expect(secret.annotations['runbooks.example/password-version']).toBeUndefined();
    expect(secret.annotations['runbooks.example/password-next-version']).toBeUndefined();
    // Restarted again after the restore, so no pod keeps the new password in its environment.
    expect(await restartedAt(f.app)).not.toBe(result.restartedAt);

    expectNoPassword(history, [f.old, next]);
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain('| applied | Restore the old password of role');
    expect(markdown).toContain('until the old password was restored');
    expect(markdown).toMatch(/role restored, Secret restored/);
    expectNoPassword(markdown, [f.old, next]);
    expectNoPassword(await readBucketText(result.report!.jsonKey), [f.old, next]);
  });

  test('the Kubernetes API down right after ALTER ROLE: the promote fails after its retries, the restore retries until the API is back; the old password works again, <key>_NEXT is gone', async () => {
    const f = await fixture();
    const activities = onAlterRole([f.role], async () => {
      outage = await stopApiserver();
    });
    const result = await withRunbooks(
      configFor(f.role),
      async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', secret: f.secret, role: f.role, appDeployment: f.app }, { startedBy: 'erin' });
        await approveOnce(runbooks, workflowId);
        await waitUntil('the rotation failed after ALTER ROLE', async () => (await runbooks.getStatus(workflowId)).timeline.some((e) => e.event === 'failed' && e.stepId === step), 120_000);
        // The old password is only in the Secret: no restore can happen while the apiserver is down.
        // Kept down until the restore has failed twice and waits to retry: longer than the promote's retry budget, and no longer.
        await waitUntil(
          'the restore retrying through the outage',
          async () => ((await client.workflow.getHandle(workflowId).describe()).raw.pendingActivities ?? []).some((a) => (a.attempt ?? 0) >= 3),
          60_000,
        );
        expect(await logsIn(f.role, f.old)).toBe(false);
        expect((await runbooks.getStatus(workflowId)).timeline.filter((e) => e.stepId === 'restore-role').map((e) => e.event)).toEqual([]);
        await outage!.restore();
        return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
      },
      { activities },
    );
    expect(result.outcome).toBe('failed');
    expect(result.restored).toEqual({ role: true, secret: true });
    expect(result.timeline.find((e) => e.event === 'failed' && e.stepId === step)?.detail).toMatch(/^promoting DATABASE_PASSWORD_NEXT into DATABASE_PASSWORD failed \(after ALTER ROLE/);
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['restore-role', 'restore-secret']);
    expect(await logsIn(f.role, f.old)).toBe(true);
    const secret = await secretData(f.secret);
    expect(secret.data).toEqual({ [key]: f.old, OTHER: 'kept' });
    expect(secret.annotations['runbooks.example/password-next-version']).toBeUndefined();
  }, 400_000);

  test('cancelled from Temporal right after ALTER ROLE: the restore still runs (not cancellable), the run ends cancelled; the old password works, <key>_NEXT is gone', async () => {
    const f = await fixture();
    let altered!: () => void;
    let cancelSent!: () => void;
    const alteredRole = new Promise<void>((resolve) => (altered = resolve));
    const cancelled = new Promise<void>((resolve) => (cancelSent = resolve));
    cleanups.push(async () => cancelSent());
    // ALTER ROLE is done, and its activity returns only once the cancellation was sent: the worst moment.
    const activities = onAlterRole([f.role], async () => {
      altered();
      await cancelled;
    });
    const { error, status } = await withRunbooks(
      configFor(f.role),
      async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', secret: f.secret, role: f.role, appDeployment: f.app }, { startedBy: 'erin' });
        await approveOnce(runbooks, workflowId);
        await alteredRole;
        const handle = client.workflow.getHandle(workflowId);
        await handle.cancel();
        cancelSent();
        const failed = await handle.result().then(
          () => undefined,
          (err: unknown) => err,
        );
        return { error: failed, status: await runbooks.getStatus(workflowId) };
      },
      { activities },
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(status.timeline.find((e) => e.event === 'failed' && e.stepId === step)?.detail).toMatch(/^run cancelled (during ALTER ROLE|before promoting)/);
    expect(status.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['restore-role', 'restore-secret']);
    // Temporal's cancel ends it: the status says so, as the UI does (Canceled).
    expect(status.outcome).toBe('cancelled');
    expect(status.timeline.at(-1)).toMatchObject({ event: 'finished', detail: expect.stringMatching(/^cancelled: /) });
    expect(await logsIn(f.role, f.old)).toBe(true);
    expect((await secretData(f.secret)).data).toEqual({ [key]: f.old, OTHER: 'kept' });
  });

  test('a restore that cannot finish (the Secret made immutable right after ALTER ROLE): the role is restored, the initiator and approver are told by name the commands that restore the Secret, the report holds them', async () => {
    const f = await fixture();
    const activities = onAlterRole([f.role], async () => {
      await core.patchNamespacedSecret(f.secret, namespace, { immutable: true }, undefined, undefined, undefined, undefined, undefined, {
        headers: { 'Content-Type': 'application/merge-patch+json' },
      });
    });
    const result = await withRunbooks(
      configFor(f.role),
      async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', secret: f.secret, role: f.role, appDeployment: f.app }, { startedBy: 'erin' });
        await approveOnce(runbooks, workflowId);
        return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
      },
      { activities },
    );
    expect(result.outcome).toBe('failed');
    expect(result.restored).toMatchObject({ role: true, secret: false });
    expect(await logsIn(f.role, f.old)).toBe(true);
    const secret = await secretData(f.secret);
    const next = secret.data[`${key}_NEXT`]!;
    expect(next).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const manual = result.restored!.manual!;
    expect(manual).toEqual([
      `read the old password (the role has it again): kubectl -n ${namespace} get secret ${f.secret} -o jsonpath='{.data.${key}}' | base64 -d`,
      `kubectl -n ${namespace} patch secret ${f.secret} --type=json -p '[{"op":"remove","path":"/data/${key}_NEXT"}]' (fails harmlessly when it is gone)`,
      `kubectl -n ${namespace} annotate secret ${f.secret} runbooks.example/password-next-version-`,
      `check: log in as ${f.role} to short_drama_prod with the value of ${key} of secrets/${f.secret}`,
    ]);
    // Tried window after window; told after the first, and again when it gave up.
    expect(result.timeline.filter((e) => e.stepId === 'restore-secret').map((e) => e.event)).toEqual(['failed', 'failed', 'failed']);
    const messages = (await (await fetch(`${env.TESTBED_WEBHOOK_URL}/messages`)).json()) as Array<{ body: { text: string; metadata?: { event_payload?: { dedupeKey?: string } } } }>;
    const told = messages.filter((m) => m.body.metadata?.event_payload?.dedupeKey?.startsWith(`${f.workflowId}/restore/`));
    expect(told.map((m) => m.body.metadata!.event_payload!.dedupeKey)).toEqual([`${f.workflowId}/restore/retrying`, `${f.workflowId}/restore/gave-up`]);
    expect(told[1]!.body.text).toMatch(new RegExp(`^\\[P1\\] rotateDatabasePassword: erin, bob: role ${f.role} and ${namespace}/${f.secret} are NOT consistent; the automatic restore gave up`));
    expect(JSON.stringify(told)).toContain(`patch secret ${f.secret} --type=json`);
    expectNoPassword(JSON.stringify(told), [f.old, next]);
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain('NOT consistent yet: restore it by hand, in this order: (1) read the old password (the role has it again)');
    expectNoPassword(markdown, [f.old, next]);
  });

  test('the plan rejected: nothing is staged, the role and the app are untouched', async () => {
    const f = await fixture();
    const restartBefore = await restartedAt(f.app);
    const result = await withRunbooks(configFor(f.role), async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', secret: f.secret, role: f.role, appDeployment: f.app }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, step);
      // Security changes need l2 or above.
      await expect(runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'dave', reason: 'go' })).rejects.toThrow(/dave \(l1\) may not decide "rotate-password"/);
      await runbooks.reject(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: 'not during the sale' });
      return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.rotated).toBe(false);
    expect(result.restored).toBeUndefined();
    expect((await secretData(f.secret)).data).toEqual({ [key]: f.old, OTHER: 'kept' });
    expect(await logsIn(f.role, f.old)).toBe(true);
    expect(await restartedAt(f.app)).toBe(restartBefore);
    expect(result.summary).toMatch(/not rotated \(stage-password rejected, alter-role rejected, update-secret rejected, restart-app rejected\)/);
  });

  test('bad input fails non-retryable before any activity; superuser, REPLICATION and BYPASSRLS roles and roles outside the allowlist are refused before anything changes', async () => {
    const replication = `rot_repl_${uniqueSuffix()}`;
    const bypass = `rot_bypass_${uniqueSuffix()}`;
    const outside = `rot_out_${uniqueSuffix()}`;
    await withAdmin(async (admin) => {
      await admin.query(`CREATE ROLE "${replication}" LOGIN REPLICATION`);
      await admin.query(`CREATE ROLE "${bypass}" LOGIN BYPASSRLS`);
      await admin.query(`CREATE ROLE "${outside}" LOGIN`);
    });
    cleanups.push(() => withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS "${replication}", "${bypass}", "${outside}"`)));
    await withRunbooks(configFor('postgres', replication, bypass), async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('rotateDatabasePassword', {} as never /* what a tired SRE sends; the type would refuse it */, { startedBy: 'erin' })).rejects.toThrow(
        "invalid input for rotateDatabasePassword: role: the app's PostgreSQL login role is required",
      );

      const bad = await client.workflow.start('rotateDatabasePassword', { taskQueue, workflowId: `rdp-bad-${randomUUID()}`, args: [{ role: 'app; DROP ROLE x', key: 'bad key', mode: 'execute' }] });
      workflowIds.push(bad.workflowId);
      const error = await bad.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const cause = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(cause).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
      expect(cause.message).toMatch(/^invalid input for rotateDatabasePassword: key: expected a Secret key .*; role: expected a PostgreSQL role name/);
      expect(await scheduledActivityTypes(bad)).toEqual([]);

      for (const [role, why] of [
        ['postgres', /role postgres is a superuser/],
        [replication, new RegExp(`role ${replication} has REPLICATION`)],
        [bypass, new RegExp(`role ${bypass} has BYPASSRLS`)],
        [outside, new RegExp(`role ${outside} is not in the rotation allowlist \\(allowlists.rotationRoles, env ALLOWED_ROTATION_ROLES: postgres, ${replication}, ${bypass}\\)`)],
      ] as const) {
        const run = await client.workflow.start('rotateDatabasePassword', {
          taskQueue,
          workflowId: `rdp-refused-${randomUUID()}`,
          args: [{ role, mode: 'execute', secret: `rot-none-${uniqueSuffix()}` }],
        });
        workflowIds.push(run.workflowId);
        const refused = await run.result().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(refused).toBeInstanceOf(WorkflowFailedError);
        const refusal = (refused as WorkflowFailedError).cause?.cause as (Error & { type?: string; nonRetryable?: boolean }) | undefined;
        expect(refusal).toMatchObject({ type: 'Refused', nonRetryable: true });
        expect(refusal?.message).toMatch(why);
        // Refused by the first look at the role: no Secret read, nothing staged or changed.
        expect(await scheduledActivityTypes(run)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed', 'describeRotatableRole']);
      }
    });
  });
});
