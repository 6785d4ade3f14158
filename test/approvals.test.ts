import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { createRunbookClient, RunbookClientError, type RunbookClient } from '../client';
import { keyringSigner, type Signer } from '../client/signing';
import { statementText, type DecisionStatement } from '../common/approval-statements';
import type { Decision, RunbookResultBase } from '../common/runbook';
import { waitUntil } from '../scripts/testbed/processes';
import { approveSignal, approveUpdate } from '../common/messages';
import { keyedApprovers, newKey } from './helpers/approver-keys';
import { TestTargets } from './helpers/test-target';
import { testbedConfig } from './helpers/testbed';
import { withWorker } from './helpers/worker';
import { startAlertBridge } from '../client/alert-bridge';
import type { AlertRoute } from '../config/alerting';
import { alertNotification, postToBridge } from './helpers/alert-notifications';
import { startBySchedule } from './helpers/schedule-runs';
import { canceledRun, pendingOf } from './helpers/runbook-runs';
import type { kernelTestRunbook } from './workflows/kernel-test-runbook';
import { extraCatalog } from './workflows/test-catalog';

/**
 * Approvals nobody can forge (real Temporal dev server, kernel test runbook): decisions are SSH
 * signatures over statements bound to the run, step, plan and a short expiry, verified in
 * workflow code against the keys of configuration; unproven initiators need two approvers;
 * quorum rules with a veto.
 */
describe('signed approvals', () => {
  const targets = new TestTargets();
  const team = keyedApprovers({ alice: ['l1'], bob: ['l2'], carol: ['manager'], dave: ['cto'], erin: ['l1', 'l2'] });
  const bridgeKey = newKey('alert-bridge');
  const mallory = newKey('mallory');
  const zed = newKey('zed');
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify([...team.approvers, { id: 'alert-bridge', kind: 'service', publicKey: bridgeKey.publicKey }]),
    ESCALATION_P2: '1h',
    // P3 runs escalate fast here: the quorum test watches every tier pass.
    ESCALATION_P3: '3s',
    APPROVAL_QUORUM: JSON.stringify([{ steps: ['two-person-step'], approvals: 2 }]),
    APPROVAL_POLICIES: JSON.stringify([{ name: 'routine-when-scheduled', runbooks: ['kernelTestRunbook'], steps: ['routine'], onlyScheduled: true }]),
    // The test runbook's target lives in this process; no cluster needed.
    KUBECONFIG: undefined,
    KUBERNETES_AUDIT_LOG: undefined,
  });

  interface Clients {
    signed: RunbookClient;
    unsigned: RunbookClient;
    as: (signer: Signer) => RunbookClient;
    client: Client;
  }

  function withRunbooks<T>(body: (clients: Clients) => Promise<T>): Promise<T> {
    return withWorker(
      config,
      ({ client, taskQueue }) => {
        const as = (signer: Signer) => createRunbookClient({ client, taskQueue, catalog: extraCatalog, signer });
        return body({ signed: as(team.signer), unsigned: createRunbookClient({ client, taskQueue, catalog: extraCatalog }), as, client });
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
  }

  const steps = (...ids: string[]) => ids.map((id) => ({ id, title: `Step ${id}` }));
  const start = (runbooks: RunbookClient, target: string, stepIds: string[], startedBy = 'erin') =>
    runbooks.startRunbook('kernelTestRunbook', { mode: 'execute', target, steps: steps(...stepIds) }, { startedBy });

  /** A statement as `signer` signs it, with fields overridden (another run, step, plan, time). */
  async function statement(client: Client, workflowId: string, fields: Partial<DecisionStatement>, signer: Signer = team.signer): Promise<Decision> {
    const { runId } = await client.workflow.getHandle(workflowId).describe();
    const now = Date.now();
    const s: DecisionStatement = {
      type: 'runbook-decision/v1',
      temporalNamespace: 'default',
      workflowId,
      runId,
      stepId: 'restart',
      planHash: '0'.repeat(64),
      verdict: 'approve',
      approver: 'bob',
      reason: 'looks right',
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 5 * 60_000).toISOString(),
      ...fields,
    };
    const text = statementText(s);
    return { statement: text, signature: await signer(text, s.signer ?? s.approver) };
  }

  async function updateRefusal(client: Client, workflowId: string, decision: Decision): Promise<string> {
    try {
      await client.workflow.getHandle(workflowId).executeUpdate(approveUpdate, { args: [decision] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) return err.cause?.message ?? err.message;
      throw err;
    }
    throw new Error('the update was accepted');
  }

  test('a signed start proves its initiator; one signed approval by someone else applies, recorded with its key', async () => {
    const target = `signed/${randomUUID()}`;
    const result = await withRunbooks(async ({ signed }) => {
      const { workflowId } = await start(signed, target, ['restart']);
      const pending = await pendingOf(signed, workflowId, 'restart');
      expect(pending).toMatchObject({ required: 1, verification: 'signed', provenInitiator: 'erin', approvers: ['alice', 'bob', 'carol', 'dave'] });
      const receipt = await signed.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: 'app is stuck' });
      expect(receipt).toEqual({ stepId: 'restart', verdict: 'approve', approver: 'bob', role: 'l2', verified: true, keyFingerprint: team.keys.bob!.fingerprint, approvals: 1, required: 1 });
      return signed.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'restart' }]);
    expect(result.timeline[0]!.detail).toContain(`initiator erin proven by key ${team.keys.erin!.fingerprint}`);
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({
      by: 'bob',
      role: 'l2',
      channel: 'update',
      verified: true,
      keyFingerprint: team.keys.bob!.fingerprint,
      detail: 'approved',
    });
  });

  test('forged, unsigned, unknown, tampered and malformed decisions are refused by Update and by Signal; nothing applied until a real one', async () => {
    const target = `forged/${randomUUID()}`;
    const result = await withRunbooks(async ({ signed, unsigned, as, client }) => {
      const { workflowId } = await start(signed, target, ['restart']);
      const { planHash } = await pendingOf(signed, workflowId, 'restart');
      // mallory signs "bob approves" with her own key.
      const forged = await statement(client, workflowId, { planHash }, mallory.signer);
      expect(await updateRefusal(client, workflowId, forged)).toBe(`not signed by bob: signed by key ${mallory.fingerprint}, not by the configured key ${team.keys.bob!.fingerprint}`);
      await expect(as(keyringSigner({ bob: mallory.signer })).approve(workflowId, { stepId: 'restart', planHash, approver: 'bob', reason: 'x' })).rejects.toThrow(/approve refused: not signed by bob/);
      await expect(unsigned.approve(workflowId, { stepId: 'restart', planHash, approver: 'bob', reason: 'x' })).rejects.toThrow(/approve refused: an unsigned decision is refused/);
      expect(await updateRefusal(client, workflowId, await statement(client, workflowId, { planHash, approver: 'zed' }, zed.signer))).toBe('zed is not a configured approver');
      const genuine = await statement(client, workflowId, { planHash });
      const tampered = { ...genuine, statement: genuine.statement!.replace('looks right', 'looks fine') };
      expect(await updateRefusal(client, workflowId, tampered)).toBe(`not signed by bob: the signature does not verify with key ${team.keys.bob!.fingerprint}`);
      expect(await updateRefusal(client, workflowId, { statement: '{"approver":"bob"', signature: genuine.signature })).toBe('malformed statement: not JSON');
      expect(await updateRefusal(client, workflowId, { statement: genuine.statement, signature: 'AAAA' })).toMatch(/^not signed by bob: malformed signature/);
      expect(await updateRefusal(client, workflowId, { ...genuine, reason: 'something else' })).toBe("the decision's reason differs from its signed statement");
      // The same forgery as a Signal (the Temporal UI's path): refused and recorded in the timeline.
      await client.workflow.getHandle(workflowId).signal(approveSignal, forged);
      await waitUntil('the forged signal recorded', async () => (await signed.getStatus(workflowId)).timeline.some((e) => e.event === 'refused'));
      expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
      await client.workflow.getHandle(workflowId).signal(approveSignal, genuine);
      return signed.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'refused').map((e) => e.detail)).toEqual([
      `not signed by bob: signed by key ${mallory.fingerprint}, not by the configured key ${team.keys.bob!.fingerprint}`,
    ]);
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({ by: 'bob', channel: 'signal', verified: true });
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'restart' }]);
  });

  test('a valid statement does not travel: not to another step, run or plan hash, not twice, not after it expired', async () => {
    const targetA = `travel-a/${randomUUID()}`;
    const targetB = `travel-b/${randomUUID()}`;
    await withRunbooks(async ({ signed, client }) => {
      const a = await start(signed, targetA, ['restart', 'scale']);
      const b = await start(signed, targetB, ['restart']);
      const pendingA = await pendingOf(signed, a.workflowId, 'restart');
      const pendingB = await pendingOf(signed, b.workflowId, 'restart');
      // Another plan hash: bob signed a plan that is not the pending one.
      expect(await updateRefusal(client, a.workflowId, await statement(client, a.workflowId, {}))).toBe(
        `the decision names plan ${'0'.repeat(64)}, but the pending plan is ${pendingA.planHash}: review the current plan and decide again`,
      );
      // Expired, and valid for longer than configuration allows.
      const hourAgo = Date.now() - 60 * 60_000;
      expect(
        await updateRefusal(
          client,
          a.workflowId,
          await statement(client, a.workflowId, { planHash: pendingA.planHash, issuedAt: new Date(hourAgo).toISOString(), expiresAt: new Date(hourAgo + 60_000).toISOString() }),
        ),
      ).toMatch(/^the statement expired at .*: sign a new one$/);
      expect(await updateRefusal(client, a.workflowId, await statement(client, a.workflowId, { planHash: pendingA.planHash, expiresAt: new Date(Date.now() + 86_400_000).toISOString() }))).toMatch(
        /longer than the 600 s allowed/,
      );
      // A genuine approval of A's restart...
      const forA = await statement(client, a.workflowId, { planHash: pendingA.planHash });
      await client.workflow.getHandle(a.workflowId).executeUpdate(approveUpdate, { args: [forA] });
      // ...is worth nothing on run B (same step id and same plan text), and nothing a second time.
      expect(await updateRefusal(client, b.workflowId, { ...forA })).toMatch(new RegExp(`^the statement is for run ${a.workflowId} \\(.+\\) in namespace default, not for this run ${b.workflowId}`));
      const pendingScale = await pendingOf(signed, a.workflowId, 'scale');
      expect(await updateRefusal(client, a.workflowId, forA)).toBe('this statement was already used; sign a new one for each decision');
      // Re-signed for step scale with restart's plan hash: the plan is scale's own.
      expect(await updateRefusal(client, a.workflowId, await statement(client, a.workflowId, { stepId: 'scale', planHash: pendingA.planHash }))).toMatch(/^the decision names plan/);
      expect(await updateRefusal(client, a.workflowId, await statement(client, a.workflowId, { stepId: 'restart', planHash: pendingScale.planHash }))).toBe(
        'step "restart" is not waiting for approval (pending: "scale")',
      );
      expect(pendingB.planHash).not.toBe(pendingScale.planHash);
      await signed.cancel(a.workflowId, { by: 'test' });
      await signed.cancel(b.workflowId, { by: 'test' });
      await canceledRun(signed, client, a.workflowId);
      await canceledRun(signed, client, b.workflowId);
    });
    expect(targets.applies.filter((x) => x.target === targetB)).toEqual([]);
    expect(targets.applies.filter((x) => x.target === targetA)).toEqual([{ target: targetA, stepId: 'restart' }]);
  });

  test('a run reset after a signed approval replays it and takes the next one (statements bind the run id kept across resets)', async () => {
    const target = `reset/${randomUUID()}`;
    const result = await withRunbooks(async ({ signed, client }) => {
      const { workflowId } = await start(signed, target, ['restart', 'scale']);
      const restart = await pendingOf(signed, workflowId, 'restart');
      await signed.approve(workflowId, { stepId: 'restart', planHash: restart.planHash, approver: 'bob', reason: 'first' });
      await pendingOf(signed, workflowId, 'scale');
      const handle = client.workflow.getHandle(workflowId);
      const { runId } = await handle.describe();
      const events = (await handle.fetchHistory()).events ?? [];
      const lastTask = [...events].reverse().find((e) => e.workflowTaskCompletedEventAttributes)!;
      const reset = await client.workflowService.resetWorkflowExecution({
        namespace: 'default',
        workflowExecution: { workflowId, runId },
        workflowTaskFinishEventId: lastTask.eventId,
        reason: 'test: reset after a signed approval',
        requestId: randomUUID(),
      });
      expect(reset.runId).not.toBe(runId);
      const scale = await pendingOf(signed, workflowId, 'scale');
      expect((await signed.getStatus(workflowId)).runId).toBe(runId);
      await signed.approve(workflowId, { stepId: 'scale', planHash: scale.planHash, approver: 'carol', reason: 'second' });
      return client.workflow.getHandle<typeof kernelTestRunbook>(workflowId, reset.runId!).result();
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => e.by)).toEqual(['bob', 'carol']);
  });

  test('a proven initiator cannot approve, neither as themself nor under another name', async () => {
    const target = `self/${randomUUID()}`;
    await withRunbooks(async ({ signed, client }) => {
      const { workflowId } = await start(signed, target, ['restart'], 'erin');
      const { planHash } = await pendingOf(signed, workflowId, 'restart');
      expect(await updateRefusal(client, workflowId, await statement(client, workflowId, { planHash, approver: 'erin' }))).toBe('four-eyes rule: erin started this run and cannot approve its steps');
      // erin signs "bob approves" with her own key.
      expect(await updateRefusal(client, workflowId, await statement(client, workflowId, { planHash, approver: 'bob' }, team.keys.erin!.signer))).toMatch(/^not signed by bob: signed by key/);
      // A start signed for another person is refused before anything runs.
      const forged = as(client, keyringSigner({ alice: team.keys.erin!.signer }));
      const other = `self-forged/${randomUUID()}`;
      const started = await forged.startRunbook('kernelTestRunbook', { mode: 'execute', target: other, steps: steps('restart') }, { startedBy: 'alice' });
      await expect(forged.waitForResult(started.workflowId)).rejects.toMatchObject({ cause: { message: expect.stringMatching(/^the signed start is refused: not signed by alice: signed by key/) } });
      await signed.cancel(workflowId, { by: 'test' });
      await canceledRun(signed, client, workflowId);
    });
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);

    function as(client: Client, signer: Signer) {
      return createRunbookClient({ client, taskQueue: config.temporal.taskQueue, catalog: extraCatalog, signer });
    }
  });

  test('an unproven initiator (unsigned start) needs two distinct verified approvers', async () => {
    const target = `unproven/${randomUUID()}`;
    const result = await withRunbooks(async ({ signed, unsigned }) => {
      const { workflowId } = await start(unsigned, target, ['restart'], 'erin');
      const pending = await pendingOf(signed, workflowId, 'restart');
      expect(pending).toMatchObject({ required: 2, verification: 'signed' });
      expect(pending.provenInitiator).toBeUndefined();
      const first = await signed.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: 'first' });
      expect(first).toMatchObject({ approvals: 1, required: 2 });
      await expect(signed.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: 'again' })).rejects.toThrow(
        'approve refused: bob already approved "restart": the quorum needs distinct approvers',
      );
      expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
      expect((await pendingOf(signed, workflowId, 'restart', 1)).approvals).toEqual([{ approver: 'bob', role: 'l2', verified: true, keyFingerprint: team.keys.bob!.fingerprint }]);
      await signed.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'carol', reason: 'second' });
      return signed.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.find((e) => e.event === 'requested')?.detail).toMatch(/needs 2 distinct approvals \(the initiator is not proven\)$/);
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => [e.by, e.detail])).toEqual([
      ['bob', 'approved (1 of 2)'],
      ['carol', 'approved (2 of 2)'],
    ]);
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'restart' }]);
  });

  test('a quorum of two: one rejection vetoes, nothing applied', async () => {
    const target = `quorum/${randomUUID()}`;
    const result = await withRunbooks(async ({ signed }) => {
      const { workflowId } = await start(signed, target, ['two-person-step']);
      const pending = await pendingOf(signed, workflowId, 'two-person-step');
      expect(pending).toMatchObject({ required: 2, provenInitiator: 'erin' });
      await signed.approve(workflowId, { stepId: 'two-person-step', planHash: pending.planHash, approver: 'bob', reason: 'fine by me' });
      await signed.reject(workflowId, { stepId: 'two-person-step', planHash: pending.planHash, approver: 'carol', reason: 'not during the sale' });
      return signed.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => [e.by, e.detail])).toEqual([
      ['bob', 'approved (1 of 2)'],
      ['carol', 'rejected (veto)'],
    ]);
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
  });

  test('a run a Schedule started is proven by the server and auto-approved by policy; a client claiming TemporalScheduledById is not', async () => {
    const target = `scheduled/${randomUUID()}`;
    const claimed = `claimed/${randomUUID()}`;
    await withRunbooks(async ({ signed, client }) => {
      const taskQueue = config.temporal.taskQueue;
      const input = (t: string) => ({ mode: 'execute', target: t, steps: steps('routine'), startedBy: `schedule:${taskQueue}:kernelTestRunbook` });
      const scheduled = await startBySchedule(client, { taskQueue, workflowType: 'kernelTestRunbook', workflowId: `kernelTestRunbook/${target}`, args: [input(target)] });
      try {
        const result = await client.workflow.getHandle<typeof kernelTestRunbook>(scheduled.workflowId, scheduled.runId).result();
        expect(result.outcome).toBe('completed');
        expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({
          by: 'policy routine-when-scheduled',
          channel: 'policy',
          reason: `approved by policy routine-when-scheduled (schedule ${scheduled.scheduleId} lists this run (asked the server))`,
        });
        // Any client may set the attribute a schedule sets; the schedule does not list that run.
        const handle = await client.workflow.start('kernelTestRunbook', {
          taskQueue,
          workflowId: `kernelTestRunbook/${claimed}`,
          args: [input(claimed)],
          searchAttributes: { TemporalScheduledById: [scheduled.scheduleId] },
        });
        await pendingOf(signed, handle.workflowId, 'routine');
        const { timeline } = await signed.getStatus(handle.workflowId);
        expect(timeline.find((e) => e.event === 'refused')?.detail).toBe(`policy routine-when-scheduled does not apply: schedule ${scheduled.scheduleId} does not list this run among its actions`);
        await handle.cancel();
      } finally {
        await scheduled.remove();
      }
    });
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'routine' }]);
    expect(targets.applies.filter((a) => a.target === claimed)).toEqual([]);
  });

  test('the alert bridge signs its starts as its service identity: one approval suffices, and the service itself cannot approve', async () => {
    const target = `alerted/${randomUUID()}`;
    await withRunbooks(async ({ signed, client }) => {
      const route: AlertRoute = {
        alertname: 'TestAlert',
        match: {},
        runbook: 'kernelTestRunbook',
        severity: 'P1',
        mode: 'execute',
        inputFromLabels: { target: 'target' },
        input: { steps: steps('restart') },
      };
      const bridge = await startAlertBridge({
        client,
        taskQueue: config.temporal.taskQueue,
        alerting: { ...config.alerting, routes: [route] },
        catalog: extraCatalog,
        listen: '127.0.0.1:0',
        log: () => undefined,
        signer: bridgeKey.signer,
      });
      try {
        const answer = await postToBridge(bridge.url, alertNotification([{ status: 'firing', labels: { alertname: 'TestAlert', target } }]), config.alerting.token!);
        expect(answer.status).toBe(200);
        const workflowId = `kernelTestRunbook/${target}`;
        const pending = await pendingOf(signed, workflowId, 'restart');
        expect(pending).toMatchObject({ required: 1, provenInitiator: 'alert-bridge' });
        expect((await signed.getStatus(workflowId)).timeline.find((e) => e.event === 'started')?.detail).toContain(`initiator alert-bridge proven by key ${bridgeKey.fingerprint}`);
        const asService = await statement(client, workflowId, { planHash: pending.planHash, approver: 'alert-bridge' }, bridgeKey.signer);
        expect(await updateRefusal(client, workflowId, asService)).toBe('four-eyes rule: alert-bridge started this run and cannot approve its steps');
        await signed.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: 'alert is real' });
        expect((await signed.waitForResult<RunbookResultBase>(workflowId)).outcome).toBe('completed');
      } finally {
        await bridge.close();
      }
    });
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'restart' }]);
  });

  test('escalation goes on while the quorum is not met, and the step expires with one approval of two: nothing applied', async () => {
    const target = `quorum-expiry/${randomUUID()}`;
    const result = await withRunbooks(async ({ signed }) => {
      const { workflowId } = await signed.startRunbook('kernelTestRunbook', { mode: 'execute', severity: 'P3', target, steps: steps('two-person-step') }, { startedBy: 'erin' });
      const pending = await pendingOf(signed, workflowId, 'two-person-step');
      await signed.approve(workflowId, { stepId: 'two-person-step', planHash: pending.planHash, approver: 'bob', reason: 'one of two' });
      return signed.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('expired');
    expect(result.timeline.filter((e) => e.event === 'requested' || e.event === 'escalated').map((e) => e.detail?.split(',')[0])).toEqual(['tier l1', 'tier l2', 'tier manager', 'tier cto']);
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => e.detail)).toEqual(['approved (1 of 2)']);
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
  });

  test('the client refuses `scheduled` and a hand-made startProof as inputs', async () => {
    await withRunbooks(async ({ signed }) => {
      await expect(signed.startRunbook('kernelTestRunbook', { mode: 'execute', target: 'x', steps: steps('a'), scheduled: true }, { startedBy: 'erin' })).rejects.toThrow(
        new RunbookClientError('invalid input for kernelTestRunbook: scheduled is not an input; whether a schedule started a run is asked of the Temporal server'),
      );
      await expect(signed.startRunbook('kernelTestRunbook', { target: 'x', steps: steps('a'), startProof: { statement: '{}', signature: 'x' } }, { startedBy: 'erin' })).rejects.toThrow(
        /startProof is made by the client's signer/,
      );
    });
  });
});
