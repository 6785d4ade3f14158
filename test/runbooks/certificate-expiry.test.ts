import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { X509Certificate } from 'node:crypto';
import { CoreV1Api, KubernetesObjectApi, NetworkingV1Api, PatchUtils } from '@kubernetes/client-node';
import { waitUntil } from '../../scripts/testbed/processes';
import type { CertificateExpiryResult } from '../../workflows/certificate-expiry';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { certManager, daysLeft, isReady } from '../helpers/cert-manager';
import { testbedConfig } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { approveEach, expectIncidentReport, lockTimeline, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { lockStateQuery, lockWorkflowId } from '../../common/target-lock-messages';
import { previousAnnotationsAnnotation, rateLimitAnnotation } from '../../common/inputs/traffic-control';
import type { TrafficControlResult } from '../../workflows/traffic-control';
import { appTlsCertificate } from '../../scripts/testbed/kubernetes-seed';

const ns = 'short-drama-prod';
const certName = appTlsCertificate;

/**
 * 场景5 against the test bed's real cert-manager: ingress-shim makes app-tls-cert for app-ingress and
 * a CA ClusterIssuer signs it. The tests start from what production's clock would have made (a
 * certificate that ran out while renewal failed, see certManager().expire) and let cert-manager do
 * the rest.
 */
describe('certificateExpiry', () => {
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify([
      { id: 'bob', roles: ['l2'] },
      { id: 'carol', roles: ['manager'] },
    ]),
  });
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const cm = certManager(kc);

  const getCert = () => cm.read(ns, certName);
  const readIngress = async () => (await networking.readNamespacedIngress('app-ingress', ns)).body;
  /** The certificate in the Ingress's TLS Secret: what the ingress controller serves. */
  const servedCertificate = async () => new X509Certificate(Buffer.from((await core.readNamespacedSecret(certName, ns)).body.data!['tls.crt']!, 'base64'));
  const managers = async () => ((await readIngress()).metadata?.managedFields ?? []).map((f) => f.manager);
  const setIngressAnnotations = (annotations: Record<string, string>) =>
    objects.patch({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'app-ingress', namespace: ns, annotations } }, undefined, undefined, undefined, undefined, {
      headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH },
    });

  /** The seed again: the issuer repaired, app-tls-cert issued for ~90 days, app-ingress without the runbooks' field manager. */
  async function restoreSeed(): Promise<void> {
    await cm.repairIssuer();
    if ((await managers()).includes('runbook-automation')) {
      // An empty apply by the same manager gives its fields up; the seed's manager still owns the same values.
      await objects.patch({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'app-ingress', namespace: ns } }, undefined, undefined, 'runbook-automation', true, {
        headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_APPLY_YAML },
      });
    }
    const cert = await getCert();
    if (!isReady(cert) || (daysLeft(cert) ?? 0) < 89) await cm.renew(ns, certName, { dropSecret: true, minDays: 89 });
  }

  async function terminateLeftover(): Promise<void> {
    const ingress = `${ns}/app-ingress`;
    await terminateRuns(config.temporal, [`certificateExpiry/${ns}/${certName}`, lockWorkflowId(`${ns}/${certName}`), `trafficControl/${ingress}`, lockWorkflowId(ingress)]);
  }

  async function reportOf(result: CertificateExpiryResult): Promise<string> {
    return await readBucketText(result.report!.markdownKey);
  }

  const expire = () => cm.expire(ns, certName);

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
        'server-side apply of ingresses/app-ingress in short-drama-prod (field manager runbook-automation; tls app-tls-cert, 6 annotations as read), then wait up to 300s for certificates.cert-manager.io/app-tls-cert to be Ready',
      ],
    ]);
    expect((await getCert())!.metadata.uid).toBe(uid);
    expect((await readIngress()).metadata?.resourceVersion).toBe(ingressBefore);
    expect(await managers()).not.toContain('runbook-automation');
    expect(result.report?.markdownKey).toMatch(/^runbooks\/reports\/certificateExpiry\//);
  });

  /** A run approved step by step; cert-manager makes and issues the Certificate again. */
  async function reissued(scenario?: string): Promise<CertificateExpiryResult> {
    const oldUid = (await getCert())!.metadata.uid;
    return withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', severity: 'P1', readyTimeoutSeconds: 60 }, { startedBy: 'erin' });
      const first = await pendingOf(runbooks, workflowId, 'delete-certificate');
      await runbooks.approve(workflowId, { stepId: 'delete-certificate', planHash: first.planHash, approver: 'bob', reason: 'expired' });
      const second = await pendingOf(runbooks, workflowId, 'reapply-ingress');
      // The expired one is gone; ingress-shim may already have made the next.
      expect((await getCert())?.metadata.uid).not.toBe(oldUid);
      await runbooks.approve(workflowId, { stepId: 'reapply-ingress', planHash: second.planHash, approver: 'bob', reason: 're-issue' });
      const finished = await runbooks.waitForResult<CertificateExpiryResult>(workflowId);
      if (scenario) await recordHistory(client.workflow.getHandle(workflowId), scenario);
      return finished;
    });
  }

  test('execute + approve: deleted once, ingress re-applied, issued again by cert-manager, verified, report written', async () => {
    const expired = await expire();
    const oldUid = expired.metadata.uid;
    expect(expired.status?.conditions?.find((c) => c.type === 'Issuing')?.message).toContain("x509: provided PrivateKey doesn't match parent's PublicKey");
    const result = await reissued('approved');
    expect(result.outcome).toBe('completed');
    expect(result.state).toBe('expired');
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
    expect(now.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`)).toEqual(['Ingress/app-ingress']);
    expect(isReady(now)).toBe(true);
    expect(result.after?.ready).toBe(true);
    expect(result.after?.daysUntilExpiry).toBeGreaterThanOrEqual(89);
    // What HTTPS would serve: a certificate the issuer signed just now, for the Ingress's host.
    const served = await servedCertificate();
    expect(served.subjectAltName).toBe('DNS:app.short-drama.example');
    expect(Date.parse(served.validTo)).toBe(Date.parse(now.status!.notAfter!));
    const ingress = await readIngress();
    expect(ingress.metadata?.managedFields?.find((f) => f.manager === 'runbook-automation')?.operation).toBe('Apply');
    expect(ingress.spec?.rules?.[0]?.host).toBe('app.short-drama.example'); // the rules kept
    expect(ingress.metadata?.annotations?.['cert-manager.io/cluster-issuer']).toBe('letsencrypt-prod');
    const markdown = await reportOf(result);
    expectIncidentReport(markdown);
  });

  test('the Ingress asks for 3-day certificates: re-issued and Ready, but due for renewal again, so the run ends failed saying so', async () => {
    // A misconfiguration: ingress-shim gives a Certificate it makes the Ingress's duration (existing ones keep theirs).
    await setIngressAnnotations({ 'cert-manager.io/duration': '72h', 'cert-manager.io/renew-before': '1h' });
    try {
      const short = await cm.renew(ns, certName, { dropSecret: true });
      expect(Math.floor(daysLeft(short)!)).toBe(2);
      const result = await reissued();
      const sentence = 'certificateExpiry promised certificate app-tls-cert Ready with more than 7 days left, but it is Ready True';
      expect(result.state).toBe('expiring');
      expect(result.outcome).toBe('failed');
      expect(result.summary.startsWith(sentence)).toBe(true);
      expect(result.summary).toMatch(/notAfter \S+ \(2 days left\)/);
      expect(result.timeline.find((e) => e.event === 'failed' && e.stepId === 'verify')?.detail).toContain(sentence);
      expect(result.timeline.at(-1)?.detail).toContain(`failed: ${sentence}`);
      expect(await reportOf(result)).toContain(sentence);
    } finally {
      await setIngressAnnotations({ 'cert-manager.io/duration': '2160h', 'cert-manager.io/renew-before': '360h' });
    }
  });

  test('a worker lost between the two steps: another worker resumes; the Certificate is deleted once', async () => {
    const oldUid = (await expire()).metadata.uid;
    const creations = await cm.watchCreations(ns, certName);
    let workflowId = '';
    try {
      await withRunbooks(config, async ({ runbooks }) => {
        ({ workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', readyTimeoutSeconds: 60 }, { startedBy: 'erin' }));
        const first = await pendingOf(runbooks, workflowId, 'delete-certificate');
        await runbooks.approve(workflowId, { stepId: 'delete-certificate', planHash: first.planHash, approver: 'bob', reason: 'expired' });
        await pendingOf(runbooks, workflowId, 'reapply-ingress');
      });
      expect((await getCert())?.metadata.uid).not.toBe(oldUid);
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const second = await pendingOf(runbooks, workflowId, 'reapply-ingress');
        await runbooks.approve(workflowId, { stepId: 'reapply-ingress', planHash: second.planHash, approver: 'bob', reason: 're-issue' });
        return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
      });
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['delete-certificate', 'reapply-ingress']);
      const now = (await getCert())!;
      expect(now.metadata.uid).not.toBe(oldUid);
      expect(isReady(now)).toBe(true);
      // ingress-shim made it once: a second delete would have made it make another.
      expect(creations.created()).toBe(1);
    } finally {
      creations.stop();
    }
  });

  test('Ready never comes (the issuer cannot sign): the run fails after the deadline with the conditions and events in the report', async () => {
    await expire();
    await cm.breakIssuer();
    const started = Date.now();
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('certificateExpiry', { mode: 'execute', readyTimeoutSeconds: 5 }, { startedBy: 'erin' });
      await approveEach(runbooks, workflowId, ['delete-certificate', 'reapply-ingress']);
      return runbooks.waitForResult<CertificateExpiryResult>(workflowId);
    });
    expect(result.outcome).toBe('failed');
    expect(Date.now() - started).toBeLessThan(60_000);
    const failed = result.timeline.find((e) => e.event === 'failed' && e.stepId === 'reapply-ingress');
    expect(failed?.detail).toMatch(/app-tls-cert in namespace short-drama-prod not Ready after \d+s/);
    const markdown = await reportOf(result);
    expectIncidentReport(markdown);
    expect(markdown).toContain('Not Ready within 5s');
    // cert-manager's own words: the Secret still holds the expired certificate, and signing failed.
    expect(markdown).toContain('Ready=False reason Expired');
    expect(markdown).toContain("x509: provided PrivateKey doesn't match parent's PublicKey");
  });

  test('certificateExpiry and trafficControl on app-ingress never apply at once: both queue on its one lock', async () => {
    await expire();
    const annotationsBefore = (await readIngress()).metadata?.annotations ?? {};
    try {
      // Requests wait while the issuer is not Ready: the run stays inside its wait, holding the Ingress's lock.
      await cm.pauseIssuer();
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
        expect(isReady(await getCert())).toBe(false);
        await cm.repairIssuer();
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
