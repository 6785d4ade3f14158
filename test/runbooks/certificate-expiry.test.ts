import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { CoreV1Api, CustomObjectsApi, KubernetesObjectApi, NetworkingV1Api, PatchUtils } from '@kubernetes/client-node';
import { waitUntil } from '../../scripts/testbed/processes';
import type { CertificateExpiryResult } from '../../workflows/certificate-expiry';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig, statusOf } from '../helpers/kube-cluster';
import { setCertificateStatus } from '../helpers/kube-objects';
import { testbedConfig } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { approveEach, expectIncidentReport, lockTimeline, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { lockStateQuery, lockWorkflowId } from '../../common/target-lock-messages';
import { previousAnnotationsAnnotation, rateLimitAnnotation } from '../../common/inputs/traffic-control';
import type { TrafficControlResult } from '../../workflows/traffic-control';
import { appTlsCertificate } from '../../scripts/testbed/kubernetes-seed';

const ns = 'short-drama-prod';
const certName = 'app-tls-cert';
const day = 86_400_000;

interface Cert {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: Record<string, unknown>;
  status?: { conditions?: Array<{ type: string; status: string; reason?: string }>; notAfter?: string };
}

/** 场景5 against the real Kubernetes API of the test bed; the test plays cert-manager. */
describe('certificateExpiry', () => {
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify([
      { id: 'bob', roles: ['l2'] },
      { id: 'carol', roles: ['manager'] },
    ]),
  });
  const kc = adminKubeConfig();
  const custom = kc.makeApiClient(CustomObjectsApi);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(kc);

  const getCert = async (): Promise<Cert | undefined> => {
    try {
      return (await custom.getNamespacedCustomObject('cert-manager.io', 'v1', ns, 'certificates', certName)).body as Cert;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  };
  const readIngress = async () => (await networking.readNamespacedIngress('app-ingress', ns)).body;
  const managers = async () => ((await readIngress()).metadata?.managedFields ?? []).map((f) => f.manager);

  /** As cert-manager would: the Certificate (re)created from its spec. */
  async function createCert(): Promise<void> {
    await custom.createNamespacedCustomObject('cert-manager.io', 'v1', ns, 'certificates', appTlsCertificate(ns));
  }

  /** The seed again: app-tls-cert exists and is Ready for ~90 days; app-ingress without the runbooks' field manager. */
  async function restoreSeed(): Promise<void> {
    await waitUntil('no certificate being deleted', async () => !(await getCert())?.metadata.deletionTimestamp);
    if (!(await getCert())) await createCert();
    await setCertificateStatus(kc, ns, certName, { ready: true, notAfter: new Date(Date.now() + 90 * day), notBefore: new Date() });
    if ((await managers()).includes('runbook-automation')) {
      // An empty apply by the same manager gives its fields up; the seed's manager still owns the same values.
      await objects.patch({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'app-ingress', namespace: ns } }, undefined, undefined, 'runbook-automation', true, {
        headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_APPLY_YAML },
      });
    }
  }

  async function terminateLeftover(): Promise<void> {
    const ingress = `${ns}/app-ingress`;
    await terminateRuns(config.temporal, [`certificateExpiry/${ns}/${certName}`, lockWorkflowId(`${ns}/${certName}`), `trafficControl/${ingress}`, lockWorkflowId(ingress)]);
  }

  async function reportOf(result: CertificateExpiryResult): Promise<string> {
    return await readBucketText(result.report!.markdownKey);
  }

  const expire = () => setCertificateStatus(kc, ns, certName, { ready: false, notAfter: new Date(Date.now() - 2 * day) });

  beforeAll(async () => {
    await terminateLeftover();
    await restoreSeed();
  });

  beforeEach(restoreSeed);

  afterEach(async () => {
    await terminateLeftover();
    await restoreSeed();
  });

  test('plan: a Certificate past notAfter; names the exact changes and changes nothing', async () => {
    await expire();
    const ingressBefore = (await readIngress()).metadata?.resourceVersion;
    const uid = (await getCert())!.metadata.uid;
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('certificateExpiry', {}, { startedBy: 'erin' });
      return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.state).toBe('expired');
    expect(result.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      ['delete-certificate', expect.stringMatching(/^delete certificates\.cert-manager\.io\/app-tls-cert in short-drama-prod \(expired: notAfter \S+, Ready False\)$/)],
      [
        'reapply-ingress',
        'server-side apply of ingresses/app-ingress in short-drama-prod (field manager runbook-automation; tls app-tls, 4 annotations as read), then wait up to 300s for certificates.cert-manager.io/app-tls-cert to be Ready',
      ],
    ]);
    expect((await getCert())!.metadata.uid).toBe(uid);
    expect((await readIngress()).metadata?.resourceVersion).toBe(ingressBefore);
    expect(await managers()).not.toContain('runbook-automation');
    expect(result.report?.markdownKey).toMatch(/^runbooks\/reports\/certificateExpiry\//);
  });

  /** An expired Certificate, a run approved step by step, and cert-manager (played by the test) issuing a new one valid for `days`. */
  async function reissued(days: number, scenario?: string): Promise<CertificateExpiryResult> {
    await expire();
    return withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', severity: 'P1', readyTimeoutSeconds: 60 }, { startedBy: 'erin' });
      const first = await pendingOf(runbooks, workflowId, 'delete-certificate');
      await runbooks.approve(workflowId, { stepId: 'delete-certificate', planHash: first.planHash, approver: 'bob', reason: 'expired' });
      const second = await pendingOf(runbooks, workflowId, 'reapply-ingress');
      expect(await getCert()).toBeUndefined();
      await runbooks.approve(workflowId, { stepId: 'reapply-ingress', planHash: second.planHash, approver: 'bob', reason: 're-issue' });
      // cert-manager: the ingress-shim sees the re-applied Ingress and issues the Certificate again.
      await waitUntil('ingress re-applied', async () => (await managers()).includes('runbook-automation'));
      await createCert();
      await setCertificateStatus(kc, ns, certName, { ready: true, notAfter: new Date(Date.now() + days * day), notBefore: new Date() });
      const finished = await runbooks.waitForResult<CertificateExpiryResult>(workflowId);
      if (scenario) await recordHistory(client.workflow.getHandle(workflowId), scenario);
      return finished;
    });
  }

  test('execute + approve: deleted once, ingress re-applied, Ready again (cert-manager played by the test), verified, report written', async () => {
    const oldUid = (await getCert())!.metadata.uid;
    const result = await reissued(90, 'approved');
    expect(result.outcome).toBe('completed');
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify',
      detail: expect.stringMatching(/^verified: certificate app-tls-cert Ready with more than 7 days left \(it is Ready True .*; notAfter \S+ \(\d+ days left\)/),
    });
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
      ['delete-certificate', 'deleted certificates.cert-manager.io/app-tls-cert'],
      ['reapply-ingress', expect.stringMatching(/^ingresses\/app-ingress \w+ \(server-side apply\); app-tls-cert Ready after \d+s, notAfter /)],
    ]);
    const now = (await getCert())!;
    expect(now.metadata.uid).not.toBe(oldUid);
    expect(now.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(result.after?.ready).toBe(true);
    expect(result.after?.daysUntilExpiry).toBeGreaterThanOrEqual(89);
    const ingress = await readIngress();
    expect(ingress.metadata?.managedFields?.find((f) => f.manager === 'runbook-automation')?.operation).toBe('Apply');
    expect(ingress.spec?.rules?.[0]?.host).toBe('app.short-drama.example'); // the rules kept
    expect(ingress.metadata?.annotations?.['cert-manager.io/cluster-issuer']).toBe('letsencrypt-prod');
    const markdown = await reportOf(result);
    expectIncidentReport(markdown);
  });

  test('the issuer gives a 3-day certificate: Ready, but due for renewal again, so the run ends failed saying so', async () => {
    const result = await reissued(3);
    const sentence = 'certificateExpiry promised certificate app-tls-cert Ready with more than 7 days left, but it is Ready True';
    expect(result.outcome).toBe('failed');
    expect(result.summary.startsWith(sentence)).toBe(true);
    expect(result.summary).toMatch(/notAfter \S+ \([23] days left\)/);
    expect(result.timeline.find((e) => e.event === 'failed' && e.stepId === 'verify')?.detail).toContain(sentence);
    expect(result.timeline.at(-1)?.detail).toContain(`failed: ${sentence}`);
    expect(await reportOf(result)).toContain(sentence);
  });

  test('a worker lost between the two steps: another worker resumes; the Certificate is deleted once', async () => {
    await expire();
    const oldUid = (await getCert())!.metadata.uid;
    let workflowId = '';
    await withRunbooks(config, async ({ runbooks }) => {
      ({ workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', readyTimeoutSeconds: 60 }, { startedBy: 'erin' }));
      const first = await pendingOf(runbooks, workflowId, 'delete-certificate');
      await runbooks.approve(workflowId, { stepId: 'delete-certificate', planHash: first.planHash, approver: 'bob', reason: 'expired' });
      await pendingOf(runbooks, workflowId, 'reapply-ingress');
    });
    expect(await getCert()).toBeUndefined();
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const second = await pendingOf(runbooks, workflowId, 'reapply-ingress');
      await runbooks.approve(workflowId, { stepId: 'reapply-ingress', planHash: second.planHash, approver: 'bob', reason: 're-issue' });
      await waitUntil('ingress re-applied', async () => (await managers()).includes('runbook-automation'));
      await createCert();
      await setCertificateStatus(kc, ns, certName, { ready: true, notAfter: new Date(Date.now() + 90 * day), notBefore: new Date() });
      return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['delete-certificate', 'reapply-ingress']);
    const now = (await getCert())!;
    expect(now.metadata.uid).not.toBe(oldUid);
    expect(now.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  test('Ready never comes: the run fails after the deadline with the conditions and events in the report', async () => {
    await expire();
    const started = Date.now();
    const eventName = `${certName}.${randomUUID().slice(0, 8)}`;
    try {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', readyTimeoutSeconds: 5 }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['delete-certificate', 'reapply-ingress']);
        // cert-manager re-creates the Certificate but cannot issue it: Ready stays False, with an event saying why.
        await waitUntil('ingress re-applied', async () => (await managers()).includes('runbook-automation'));
        await createCert();
        await setCertificateStatus(kc, ns, certName, { ready: false, notAfter: new Date(Date.now() - 2 * day) });
        const uid = (await getCert())!.metadata.uid;
        const at = new Date();
        await core.createNamespacedEvent(ns, {
          metadata: { name: eventName, namespace: ns },
          involvedObject: { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', name: certName, namespace: ns, uid },
          type: 'Warning',
          reason: 'Failed',
          message: 'The certificate request has failed to complete and will be retried: ACME challenge failed',
          source: { component: 'cert-manager-certificates-issuing' },
          firstTimestamp: at,
          lastTimestamp: at,
          count: 1,
        });
        return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
      });
      expect(result.outcome).toBe('failed');
      expect(Date.now() - started).toBeLessThan(60_000);
      const failed = result.timeline.find((e) => e.event === 'failed' && e.stepId === 'reapply-ingress');
      expect(failed?.detail).toMatch(/app-tls-cert in namespace short-drama-prod not Ready after \d+s/);
      const markdown = await reportOf(result);
      expectIncidentReport(markdown);
      expect(markdown).toContain('Not Ready within 5s');
      expect(markdown).toContain('Ready=False reason Expired');
      expect(markdown).toContain('ACME challenge failed');
    } finally {
      await core.deleteNamespacedEvent(eventName, ns).catch(() => undefined); // not created when the run failed early
    }
  });

  test('certificateExpiry and trafficControl on app-ingress never apply at once: both queue on its one lock', async () => {
    await expire();
    const annotationsBefore = (await readIngress()).metadata?.annotations ?? {};
    try {
      const { certificate, traffic, seen } = await withRunbooks(config, async ({ runbooks, client }) => {
        const cert = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', readyTimeoutSeconds: 120 }, { startedBy: 'erin' });
        await approveEach(runbooks, cert.workflowId, ['delete-certificate', 'reapply-ingress']);
        // Inside its apply: the Ingress re-applied, waiting for cert-manager, with the Ingress locked.
        await waitUntil('ingress re-applied', async () => (await managers()).includes('runbook-automation'));
        const rateLimit = await runbooks.startRunbook('trafficControl', { mode: 'execute', action: 'rate-limit', rps: 25 }, { startedBy: 'erin' });
        await approveEach(runbooks, rateLimit.workflowId, ['rate-limit']);
        await waitUntil('trafficControl waiting for the lock', async () => (await runbooks.getStatus(rateLimit.workflowId)).state === 'waiting-for-lock');
        // The run says it waits before its request reaches the lock (an activity signals it): wait for the lock's own queue.
        const lock = client.workflow.getHandle(lockWorkflowId(`${ns}/app-ingress`));
        await waitUntil('trafficControl queued on the lock', async () => (await lock.query(lockStateQuery)).waiting.length > 0);
        const state = await lock.query(lockStateQuery);
        expect([state.holder?.requester, state.waiting.map((w) => w.requester)]).toEqual([cert.workflowId, [rateLimit.workflowId]]);
        expect((await readIngress()).metadata?.annotations?.[rateLimitAnnotation]).toBe(annotationsBefore[rateLimitAnnotation]);
        await createCert();
        await setCertificateStatus(kc, ns, certName, { ready: true, notAfter: new Date(Date.now() + 90 * day), notBefore: new Date() });
        const [certificate, traffic] = await Promise.all([runbooks.waitForResult<CertificateExpiryResult>(cert.workflowId), runbooks.waitForResult<TrafficControlResult>(rateLimit.workflowId)]);
        await recordHistory(client.workflow.getHandle(cert.workflowId), 'shared-ingress-lock');
        await recordHistory(client.workflow.getHandle(rateLimit.workflowId), 'waited-for-lock');
        return { certificate, traffic, seen: { lock: await lockTimeline(lock), cert: cert.workflowId, rateLimit: rateLimit.workflowId } };
      });
      expect([certificate.outcome, traffic.outcome]).toEqual(['completed', 'completed']);
      expect((await readIngress()).metadata?.annotations?.[rateLimitAnnotation]).toBe('25');
      // The lock's own order: trafficControl asked while certificateExpiry held it and got it only after its release.
      expect(seen.lock).toEqual([
        ['request', seen.cert],
        ['grant', seen.cert],
        ['release', seen.cert],
        ['request', seen.cert],
        ['grant', seen.cert],
        ['request', seen.rateLimit],
        ['release', seen.cert],
        ['grant', seen.rateLimit],
        ['release', seen.rateLimit],
      ]);
      const locks = certificate.timeline.filter((e) => e.event === 'locked' || e.event === 'unlocked').map((e) => `${e.event} ${e.detail}`);
      expect(locks.slice(0, 4)).toEqual([`locked lock on ${ns}/app-ingress`, `locked lock on ${ns}/app-tls-cert`, `unlocked lock on ${ns}/app-tls-cert`, `unlocked lock on ${ns}/app-ingress`]);
    } finally {
      // trafficControl's change undone: the annotations as they were, its record removed.
      const undo = { [rateLimitAnnotation]: annotationsBefore[rateLimitAnnotation] ?? null, [previousAnnotationsAnnotation]: annotationsBefore[previousAnnotationsAnnotation] ?? null };
      await objects.patch({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'app-ingress', namespace: ns, annotations: undo } }, undefined, undefined, undefined, undefined, {
        headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH },
      });
    }
  });

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    await expire();
    const uid = (await getCert())!.metadata.uid;
    const ingressBefore = (await readIngress()).metadata?.resourceVersion;
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'delete-certificate');
      await runbooks.reject(workflowId, { stepId: 'delete-certificate', planHash: pending.planHash, approver: 'carol', reason: 'not now' });
      return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual([
      ['delete-certificate', 'rejected'],
      ['reapply-ingress', 'depends on "delete-certificate", which was not applied'],
    ]);
    expect((await getCert())!.metadata.uid).toBe(uid);
    expect((await readIngress()).metadata?.resourceVersion).toBe(ingressBefore);
  });

  test('healthy certificate: nothing to do', async () => {
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
    });
    expect(result.state).toBe('healthy');
    expect(result.outcome).toBe('nothing-to-do');
  });

  test('bad input: a clear non-retryable error before anything is touched', async () => {
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('certificateExpiry', { renewWhenDaysLeft: -3 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for certificateExpiry: renewWhenDaysLeft: at least 0 days',
      );
      const handle = await client.workflow.start('certificateExpiry', { taskQueue, workflowId: `cert-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(String(((error as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
  });
});
