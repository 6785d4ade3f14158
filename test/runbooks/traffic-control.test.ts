import { randomUUID } from 'node:crypto';
import { CoreV1Api, NetworkingV1Api } from '@kubernetes/client-node';
import { createRunbookClient, type RunbookClient } from '../../client';
import { defaultBackendAnnotation, previousAnnotationsAnnotation, rateLimitAnnotation } from '../../common/inputs/traffic-control';
import type { TrafficControlResult } from '../../workflows/traffic-control';
import { keyedApprovers } from '../helpers/approver-keys';
import { recordHistory } from '../helpers/histories';
import { unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, unsignedTeam } from '../helpers/testbed';
import { runFailureOf } from '../helpers/failures';
import { withRunbooks, withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';
const recordKey = previousAnnotationsAnnotation;
const bodySize = 'nginx.ingress.kubernetes.io/proxy-body-size';

/**
 * 流量控制 against the real Kubernetes API of the test bed. Changes run on a scratch Ingress of
 * this file's own (limit-rps 100, proxy-body-size 50m, like the seeded app-ingress) and a scratch
 * maintenance Service, both deleted at the end; the seeded app-ingress is only planned against.
 * The tests of the second describe run in order on the one Ingress: rate-limit, again (nothing
 * to do), maintenance on, maintenance off, restore, restore again.
 */
describe('trafficControl', () => {
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam),
  });
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const ingresses: string[] = [];
  const services: string[] = [];

  async function scratchIngress(prefix: string): Promise<string> {
    const name = unique(prefix);
    ingresses.push(name);
    await networking.createNamespacedIngress(namespace, {
      metadata: { name, labels: { 'runbook-test/scratch': 'true' }, annotations: { [rateLimitAnnotation]: '100', [bodySize]: '50m' } },
      spec: {
        ingressClassName: 'nginx',
        rules: [{ host: `${name}.example`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'short-drama-app', port: { number: 80 } } } }] } }],
      },
    });
    return name;
  }

  async function scratchService(prefix: string): Promise<string> {
    const name = unique(prefix);
    services.push(name);
    await core.createNamespacedService(namespace, { metadata: { name, labels: { 'runbook-test/scratch': 'true' } }, spec: { selector: { app: name }, ports: [{ port: 80 }] } });
    return name;
  }

  const annotationsOf = async (name: string) => (await networking.readNamespacedIngress(name, namespace)).body.metadata?.annotations ?? {};
  const runIds = (names: string[]) => names.flatMap((n) => [`trafficControl/${namespace}/${n}`, `lock/${namespace}/${n}`]);

  /** Starts a run on the scratch Ingress, approves its one step after checking the plan, returns the result. */
  async function approved(runbooks: RunbookClient, input: Record<string, unknown>, stepId: string, summary: string): Promise<{ workflowId: string; result: TrafficControlResult }> {
    const { workflowId } = await runbooks.startRunbook('trafficControl', { ...input, mode: 'execute' }, { startedBy: 'erin' });
    const pending = await pendingOf(runbooks, workflowId, stepId);
    expect(pending.change.summary).toBe(summary);
    await runbooks.approve(workflowId, { stepId, planHash: pending.planHash, approver: 'bob', reason: 'incident drill' });
    return { workflowId, result: await runbooks.waitForResult<TrafficControlResult>(workflowId) };
  }

  afterEach(async () => {
    await terminateRuns(config.temporal, runIds(ingresses));
  });

  afterAll(async () => {
    for (const name of ingresses) await networking.deleteNamespacedIngress(name, namespace).catch(() => undefined); // already gone
    for (const name of services) await core.deleteNamespacedService(name, namespace).catch(() => undefined);
  });

  test("plan with the manual's defaults: app-ingress limited to 50 rps; nothing changes", async () => {
    const before = await annotationsOf('app-ingress');
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const started = await runbooks.startRunbook('trafficControl', {}, { startedBy: 'erin' });
      expect(started.workflowId).toBe(`trafficControl/${namespace}/app-ingress`);
      return runbooks.waitForResult<TrafficControlResult>(started.workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
      [
        'rate-limit',
        true,
        `${namespace}/app-ingress: ${rateLimitAnnotation} ${before[rateLimitAnnotation] ?? 'unset'} -> 50; previous values recorded in ${recordKey}: ${JSON.stringify({ [rateLimitAnnotation]: before[rateLimitAnnotation] ?? null })}`,
      ],
    ]);
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(await annotationsOf('app-ingress')).toEqual(before);
  });

  test('plan on a scratch ingress: the exact before -> after of each action; nothing changes', async () => {
    const name = await scratchIngress('tc-plan');
    const service = await scratchService('tc-maint');
    const before = await annotationsOf(name);
    const results = await withRunbooks(config, async ({ runbooks }) => {
      const out: TrafficControlResult[] = [];
      for (const input of [{ rps: 20 }, { action: 'maintenance-on' as const, maintenanceService: service }, { action: 'maintenance-off' as const }, { action: 'restore' as const }]) {
        const { workflowId } = await runbooks.startRunbook('trafficControl', { ingress: name, ...input }, { startedBy: 'erin' });
        out.push(await runbooks.waitForResult<TrafficControlResult>(workflowId));
      }
      return out;
    });
    // Plan mode ends `planned` whatever the plan holds; the last two need nothing.
    expect(results.map((r) => r.outcome)).toEqual(['planned', 'planned', 'planned', 'planned']);
    expect(results.map((r) => r.plan.map((p) => [p.stepId, p.change.needed, p.change.summary]))).toEqual([
      [['rate-limit', true, `${namespace}/${name}: ${rateLimitAnnotation} 100 -> 20; previous values recorded in ${recordKey}: {"${rateLimitAnnotation}":"100"}`]],
      [['maintenance-on', true, `${namespace}/${name}: ${defaultBackendAnnotation} unset -> ${service}; previous values recorded in ${recordKey}: {"${defaultBackendAnnotation}":null}`]],
      [
        [
          'maintenance-off',
          false,
          `no ${defaultBackendAnnotation} recorded in ${recordKey} of ${namespace}/${name}: maintenance mode was not switched on by trafficControl (${defaultBackendAnnotation} is unset)`,
        ],
      ],
      [['restore', false, `nothing recorded in ${recordKey} of ${namespace}/${name}: no trafficControl change to restore`]],
    ]);
    expect(results[0]!.before).toEqual({ limitRps: '100', recorded: {} });
    expect(results[0]!.hosts).toEqual([`${name}.example`]);
    expect(await annotationsOf(name)).toEqual(before);
    const markdown = await readBucketText(results[0]!.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain(`${rateLimitAnnotation} 100 -> 20`);
  });

  describe('on one scratch ingress, in order', () => {
    let name: string;
    let where: string;
    let service: string;
    let original: Record<string, string>;

    beforeAll(async () => {
      name = await scratchIngress('tc-run');
      where = `${namespace}/${name}`;
      service = await scratchService('tc-maint');
      original = await annotationsOf(name);
    });

    test('rate-limit, execute + approve: limit-rps 100 -> 50, the previous value recorded on the ingress', async () => {
      const result = await withRunbooks(config, async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('trafficControl', { ingress: name, mode: 'execute', severity: 'P1' }, { startedBy: 'erin' });
        const pending = await pendingOf(runbooks, workflowId, 'rate-limit');
        expect(pending.change.summary).toBe(`${where}: ${rateLimitAnnotation} 100 -> 50; previous values recorded in ${recordKey}: {"${rateLimitAnnotation}":"100"}`);
        expect(pending.allowedRoles).toEqual(['l2', 'manager', 'cto']);
        expect(pending.approvers.sort()).toEqual(['bob', 'carol']);
        const decision = { stepId: 'rate-limit', planHash: pending.planHash, reason: 'request flood' };
        await expect(runbooks.approve(workflowId, { ...decision, approver: 'erin' })).rejects.toThrow('four-eyes rule: erin started this run and cannot approve its steps');
        await expect(runbooks.approve(workflowId, { ...decision, approver: 'dave' })).rejects.toThrow('dave (l1) may not decide "rate-limit": needs one of l2, manager, cto');
        expect(await annotationsOf(name)).toEqual(original);
        await runbooks.approve(workflowId, { ...decision, approver: 'carol' });
        const finished = await runbooks.waitForResult<TrafficControlResult>(workflowId);
        await recordHistory(client.workflow.getHandle(workflowId), 'rate-limit-approved');
        return finished;
      });
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['rate-limit', `${rateLimitAnnotation} 100 -> 50; previous values recorded in ${recordKey}: {"${rateLimitAnnotation}":"100"}`],
      ]);
      expect(result.after).toEqual({ limitRps: '50', recorded: { [rateLimitAnnotation]: '100' }, ok: true });
      expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
        stepId: 'verify',
        detail: `verified: ${namespace}/${name} with ${rateLimitAnnotation} 50 (it has ${rateLimitAnnotation} 50)`,
      });
      expect(await annotationsOf(name)).toEqual({ ...original, [rateLimitAnnotation]: '50', [recordKey]: `{"${rateLimitAnnotation}":"100"}` });
      const markdown = await readBucketText(result.report!.markdownKey);
      expectIncidentReport(markdown);
      expect(markdown).toContain('limited to 50 per second per client IP');
    });

    test('the same run again: nothing to change, nobody is asked', async () => {
      const before = await annotationsOf(name);
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('trafficControl', { ingress: name, mode: 'execute' }, { startedBy: 'erin' });
        return runbooks.waitForResult<TrafficControlResult>(workflowId);
      });
      expect(result.outcome).toBe('nothing-to-do');
      expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([['rate-limit', false, `${rateLimitAnnotation} of ${where} is already 50`]]);
      expect(result.timeline.map((e) => e.event)).not.toContain('requested');
      expect(result.after).toBeUndefined();
      expect(await annotationsOf(name)).toEqual(before);
    });

    test('maintenance on, then off: default-backend set to the maintenance Service, then removed again', async () => {
      const { on, off } = await withRunbooks(config, async ({ runbooks }) => {
        const on = await approved(
          runbooks,
          { ingress: name, action: 'maintenance-on', maintenanceService: service },
          'maintenance-on',
          `${where}: ${defaultBackendAnnotation} unset -> ${service}; previous values recorded in ${recordKey}: {"${defaultBackendAnnotation}":null,"${rateLimitAnnotation}":"100"}`,
        );
        const during = await annotationsOf(name);
        expect(during).toEqual({ ...original, [rateLimitAnnotation]: '50', [defaultBackendAnnotation]: service, [recordKey]: `{"${defaultBackendAnnotation}":null,"${rateLimitAnnotation}":"100"}` });
        const off = await approved(
          runbooks,
          { ingress: name, action: 'maintenance-off' },
          'maintenance-off',
          `${where}: ${defaultBackendAnnotation} ${service} -> unset; previous values recorded in ${recordKey}: {"${rateLimitAnnotation}":"100"}`,
        );
        return { on: on.result, off: off.result };
      });
      expect([on.outcome, off.outcome]).toEqual(['completed', 'completed']);
      expect(on.after).toEqual({ limitRps: '50', defaultBackend: service, recorded: { [defaultBackendAnnotation]: null, [rateLimitAnnotation]: '100' }, ok: true });
      expect(off.after).toEqual({ limitRps: '50', recorded: { [rateLimitAnnotation]: '100' }, ok: true });
      expect(await annotationsOf(name)).toEqual({ ...original, [rateLimitAnnotation]: '50', [recordKey]: `{"${rateLimitAnnotation}":"100"}` });
    });

    test('restore + approve: exactly the annotations from before, the record removed; again: nobody is asked', async () => {
      const { result, again } = await withRunbooks(config, async ({ runbooks }) => {
        const { result } = await approved(runbooks, { ingress: name, action: 'restore' }, 'restore', `${where}: ${rateLimitAnnotation} 50 -> 100; ${recordKey} removed (nothing left to restore)`);
        const { workflowId } = await runbooks.startRunbook('trafficControl', { ingress: name, action: 'restore', mode: 'execute' }, { startedBy: 'erin' });
        return { result, again: await runbooks.waitForResult<TrafficControlResult>(workflowId) };
      });
      expect(result.outcome).toBe('completed');
      expect(result.after).toEqual({ limitRps: '100', recorded: {}, ok: true });
      expect(await annotationsOf(name)).toEqual(original);
      expect(again.outcome).toBe('nothing-to-do');
      expect(again.timeline.map((e) => e.event)).not.toContain('requested');
      expect(await annotationsOf(name)).toEqual(original);
    });
  });

  test('refused before anything is changed: a missing maintenance Service, a record not written by the runbook, kube-system, bad input', async () => {
    const name = await scratchIngress('tc-refuse');
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      const missing = await client.workflow.start('trafficControl', { taskQueue, workflowId: `tc-missing-${randomUUID()}`, args: [{ ingress: name, action: 'maintenance-on', mode: 'execute' }] });
      const failure = await runFailureOf(missing);
      expect(failure.message).toBe(`maintenance mode refused: Service maintenance-page does not exist in namespace ${namespace}; deploy the maintenance page first (or name it in maintenanceService)`);
      expect([failure.type, failure.nonRetryable]).toEqual(['Refused', true]);
      expect(await scheduledActivityTypes(missing)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed', 'listIngresses', 'listServices']);

      // A hand-written record naming another annotation is never "restored".
      await networking.patchNamespacedIngress(
        name,
        namespace,
        { metadata: { annotations: { [recordKey]: '{"nginx.ingress.kubernetes.io/whitelist-source-range":null}' } } },
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        {
          headers: { 'Content-Type': 'application/merge-patch+json' },
        },
      );
      const forged = await client.workflow.start('trafficControl', { taskQueue, workflowId: `tc-forged-${randomUUID()}`, args: [{ ingress: name, action: 'restore', mode: 'execute' }] });
      const invalid = await runFailureOf(forged);
      expect(invalid.message).toBe(
        `annotation ${recordKey} of ingresses/${name} in namespace ${namespace} is not a record trafficControl wrote ({"nginx.ingress.kubernetes.io/whitelist-source-range":null}); fix or remove it by hand`,
      );
      expect(await scheduledActivityTypes(forged)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed', 'listIngresses']);

      const system = await client.workflow.start('trafficControl', { taskQueue, workflowId: `tc-system-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      expect(String((await runFailureOf(system)).cause?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(system)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);

      await expect(runbooks.startRunbook('trafficControl', { action: 'panic' } as never /* an attacker's input; the type would refuse it */, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for trafficControl: action: expected one of rate-limit, maintenance-on, maintenance-off, restore',
      );
      const bad = await client.workflow.start('trafficControl', { taskQueue, workflowId: `tc-bad-${randomUUID()}`, args: [{ ingress: 'Bad_Name', action: 'panic', rps: 0 }] });
      const invalidInput = await runFailureOf(bad);
      expect(invalidInput.message).toBe(
        'invalid input for trafficControl: ingress: expected a Kubernetes name (lowercase letters, digits, -); action: expected one of rate-limit, maintenance-on, maintenance-off, restore; rps: at least 1 request per second',
      );
      expect([invalidInput.type, invalidInput.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduledActivityTypes(bad)).toEqual([]);
    });
    expect(await annotationsOf(name)).toEqual({ [rateLimitAnnotation]: '100', [bodySize]: '50m', [recordKey]: '{"nginx.ingress.kubernetes.io/whitelist-source-range":null}' });
  });

  test('signed approvals on a real runbook: an unsigned start needs two verified approvers, each recorded with its key', async () => {
    const name = await scratchIngress('traffic-signed');
    const team = keyedApprovers({ bob: ['l2'], carol: ['manager'], erin: ['l2'] });
    const signedConfig = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify(team.approvers) });
    const result = await withWorker(signedConfig, async ({ client, taskQueue }) => {
      const people = createRunbookClient({ client, taskQueue, signer: team.signer });
      const { workflowId } = await createRunbookClient({ client, taskQueue }).startRunbook('trafficControl', { ingress: name, rps: 30, mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(people, workflowId, 'rate-limit');
      expect(pending).toMatchObject({ required: 2, verification: 'signed' });
      await people.approve(workflowId, { stepId: 'rate-limit', planHash: pending.planHash, approver: 'bob', reason: 'scraper storm' });
      expect(await annotationsOf(name)).toMatchObject({ [rateLimitAnnotation]: '100' });
      await people.approve(workflowId, { stepId: 'rate-limit', planHash: pending.planHash, approver: 'carol', reason: 'agreed' });
      const finished = await people.waitForResult<TrafficControlResult>(workflowId);
      // Signed decisions bind the workflow id: the history replays under it ("__" for "/").
      await recordHistory(client.workflow.getHandle(workflowId), 'signed-decisions');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(await annotationsOf(name)).toMatchObject({ [rateLimitAnnotation]: '30' });
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => [e.by, e.verified, e.keyFingerprint])).toEqual([
      ['bob', true, team.keys.bob!.fingerprint],
      ['carol', true, team.keys.carol!.fingerprint],
    ]);
  });
});
