import { randomUUID } from 'node:crypto';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { createRunbookClient, RunbookClientError, type RunbookClient } from '../client';
import type { RunbookResultBase } from '../common/runbook';
import { waitUntil } from '../scripts/testbed/processes';
import { approveSignal } from '../common/messages';
import { lockStateQuery, lockWorkflowId } from '../common/target-lock-messages';
import { runbookRunsQuery } from '../common/search-attributes';
import { recordHistory } from './helpers/histories';
import { TestTargets } from './helpers/test-target';
import { testbedConfig, testbedEnv, testbedS3 } from './helpers/testbed';
import { withWorker } from './helpers/worker';
import type { kernelTestRunbook } from './workflows/kernel-test-runbook';
import { extraCatalog } from './workflows/test-catalog';
import { canceledRun, expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes } from './helpers/runbook-runs';

const approvers = [
  { id: 'alice', roles: ['l1'] },
  { id: 'bob', roles: ['l2'] },
  { id: 'carol', roles: ['manager'] },
  { id: 'dave', roles: ['cto'] },
  { id: 'erin', roles: ['l1', 'l2'] },
];

const testCatalog = extraCatalog;

type Input = Parameters<typeof kernelTestRunbook>[0];

describe('runbook kernel (real Temporal dev server, test target)', () => {
  const targets = new TestTargets();
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify(approvers),
    ESCALATION_P2: '1h',
    ESCALATION_P3: '1s',
    APPROVAL_POLICIES: JSON.stringify([{ name: 'routine-test', runbooks: ['kernelTestRunbook'], steps: ['routine'], onlyScheduled: false }]),
  });

  async function withKernel<T>(body: (runbooks: RunbookClient, client: Client) => Promise<T>): Promise<T> {
    return withWorker(config, ({ client, taskQueue }) => body(createRunbookClient({ client, taskQueue, catalog: testCatalog }), client), {
      workflowsPath: require.resolve('./workflows'),
      activities: targets.activities(),
    });
  }

  const newTarget = () => `test/${randomUUID()}`;
  const start = (runbooks: RunbookClient, input: Omit<Input, 'startedBy'>, startedBy = 'erin') => runbooks.startRunbook('kernelTestRunbook', input as Record<string, unknown>, { startedBy });

  test('plan mode runs read steps, returns the exact plan, and changes nothing', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, {
        mode: 'plan',
        target,
        steps: [
          { id: 'raise-limit', title: 'Raise the limit' },
          { id: 'restart', title: 'Restart' },
        ],
      });
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.summary, p.planHash.length])).toEqual([
      ['raise-limit', `raise-limit on ${target} at version 1`, 64],
      ['restart', `restart on ${target} at version 1`, 64],
    ]);
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
    expect(result.timeline.map((e) => e.event)).toEqual(['started', 'read', 'planned', 'planned', 'finished']);
  });

  test('execute + approve applies exactly once, records who decided, and writes the report', async () => {
    const target = newTarget();
    const { result, status } = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, { mode: 'execute', target, report: true, steps: [{ id: 'raise-limit', title: 'Raise the limit' }] });
      const pending = await pendingOf(runbooks, workflowId, 'raise-limit');
      expect(pending).toMatchObject({ tier: 'l1', allowedRoles: ['l1', 'l2', 'manager', 'cto'], approvers: ['alice', 'bob', 'carol', 'dave'] });
      const pendingRuns = await runbooks.listRuns({ runbook: 'kernelTestRunbook', approvalState: 'pending', target });
      const receipt = await runbooks.approve(workflowId, { stepId: 'raise-limit', planHash: pending.planHash, approver: 'bob', reason: 'limit is too low' });
      expect(receipt).toEqual({ stepId: 'raise-limit', verdict: 'approve', approver: 'bob', role: 'l2', verified: false, approvals: 1, required: 1 });
      const finished = await runbooks.waitForResult<RunbookResultBase>(workflowId);
      return { result: finished, status: pendingRuns };
    });
    expect(status.map((r) => r.approvalState)).toEqual(['pending']);
    expect(result.outcome).toBe('completed');
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'raise-limit' }]);
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({ by: 'bob', role: 'l2', channel: 'update', reason: 'limit is too low', verified: false });
    // No approver has a key here: every request says its decisions are unverified.
    expect(result.timeline.find((e) => e.event === 'requested')?.detail).toMatch(/, UNVERIFIED \(no approver keys configured\)$/);
    const env = testbedEnv();
    const s3 = testbedS3();
    try {
      const markdown = await (await s3.send(new GetObjectCommand({ Bucket: env.S3_BUCKET, Key: result.report!.markdownKey }))).Body!.transformToString();
      expectIncidentReport(markdown);
      expect(markdown).toContain('| decided | Raise the limit | bob, l2, update, unverified |');
      const json = JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: env.S3_BUCKET, Key: result.report!.jsonKey }))).Body!.transformToString());
      expect(json).toMatchObject({ outcome: 'completed', rootCause: 'test root cause', target });
    } finally {
      s3.destroy();
    }
  });

  test('reject skips the step and what depends on it; nothing changes', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, {
        mode: 'execute',
        target,
        steps: [
          { id: 'raise-limit', title: 'Raise the limit' },
          { id: 'restart', title: 'Restart', dependsOn: ['raise-limit'] },
        ],
      });
      const pending = await pendingOf(runbooks, workflowId, 'raise-limit');
      await runbooks.reject(workflowId, { stepId: 'raise-limit', planHash: pending.planHash, approver: 'alice', reason: 'not during peak hours' });
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual([
      ['raise-limit', 'rejected'],
      ['restart', 'depends on "raise-limit", which was not applied'],
    ]);
  });

  test('the approve update refuses wrong role, the initiator, a stale plan, no reason and an unknown step', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, { mode: 'execute', target, steps: [{ id: 'rollback', title: 'Roll back', allowedRoles: ['l2', 'manager', 'cto'] }] }, 'erin');
      const pending = await pendingOf(runbooks, workflowId, 'rollback');
      const ask = (over: Partial<{ stepId: string; planHash: string; approver: string; reason: string }>) =>
        runbooks.approve(workflowId, { stepId: 'rollback', planHash: pending.planHash, approver: 'bob', reason: 'ok', ...over }).then(
          () => 'accepted',
          (err: unknown) => (err instanceof RunbookClientError ? err.message : `unexpected ${String(err)}`),
        );
      expect(await ask({ approver: 'alice' })).toBe('approve refused: alice (l1) may not decide "rollback": needs one of l2, manager, cto');
      expect(await ask({ approver: 'erin' })).toBe('approve refused: four-eyes rule: erin started this run and cannot approve its steps');
      expect(await ask({ planHash: 'f'.repeat(64) })).toMatch(/^approve refused: the decision names plan f{64}, but the pending plan is [0-9a-f]{64}: /);
      expect(await ask({ reason: '  ' })).toBe('approve refused: a reason is required');
      expect(await ask({ stepId: 'drop-database' })).toBe('approve refused: step "drop-database" is not waiting for approval (pending: "rollback")');
      expect(await ask({ approver: 'mallory' })).toBe('approve refused: mallory is not a configured approver');
      expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
      expect(await ask({ approver: 'carol', reason: 'rollback is safe' })).toBe('accepted');
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'refused')).toEqual([]); // update refusals never reach the history
  });

  test('a UI-style signal with a bad decision is refused and recorded, never applied; a good one is', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks, client) => {
      const { workflowId } = await start(runbooks, { mode: 'execute', target, steps: [{ id: 'restart', title: 'Restart' }] });
      const pending = await pendingOf(runbooks, workflowId, 'restart');
      const handle = client.workflow.getHandle(workflowId);
      await handle.signal(approveSignal, { stepId: 'restart', planHash: pending.planHash, approver: 'erin', reason: 'self-approval' });
      await waitUntil('the refusal in the timeline', async () => (await runbooks.getStatus(workflowId)).timeline.some((e) => e.event === 'refused'));
      expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
      const waiting = await runbooks.getStatus(workflowId);
      expect(waiting.pending?.stepId).toBe('restart');
      // Progress against the steps the runbook declared, in order (no hand-counted total).
      expect(waiting).toMatchObject({ steps: ['inspect', 'restart'], stepsDone: 1, stepsDeclared: 2, currentStep: 'restart' });
      await handle.signal(approveSignal, { stepId: 'restart', planHash: pending.planHash, approver: 'alice', reason: 'looks right' });
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.find((e) => e.event === 'refused')).toMatchObject({ by: 'erin', channel: 'signal', detail: 'four-eyes rule: erin started this run and cannot approve its steps' });
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({ by: 'alice', role: 'l1', channel: 'signal' });
    expect(targets.applies.filter((a) => a.target === target)).toHaveLength(1);
  });

  test('no decision: escalates L1 → L2 → manager → CTO with a notification each, then expires and changes nothing', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, { mode: 'execute', severity: 'P3', target, steps: [{ id: 'scale', title: 'Scale up' }] });
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('expired');
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
    expect(result.timeline.filter((e) => e.event === 'requested' || e.event === 'escalated').map((e) => e.detail?.split(',')[0])).toEqual(['tier l1', 'tier l2', 'tier manager', 'tier cto']);
    expect(result.timeline.find((e) => e.event === 'skipped')?.detail).toBe('approval expired after the last escalation tier');
    const messages = (await (await fetch(`${testbedEnv().TESTBED_WEBHOOK_URL}/messages`)).json()) as Array<{ body: { text: string; metadata: { event_payload: { dedupeKey: string } } } }>;
    const ours = messages.filter((m) => m.body.metadata?.event_payload?.dedupeKey?.startsWith(`kernelTestRunbook/${target}/scale/`));
    expect(ours.map((m) => m.body.metadata.event_payload.dedupeKey.split('/').pop())).toEqual(['l1', 'l2', 'manager', 'cto']);
    expect(ours[0]!.body.text).toBe('[P3] kernelTestRunbook: approval needed for "Scale up" (l1)');
  });

  test('the target changes between approval and apply: the new plan is put to people again', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, { mode: 'execute', target, steps: [{ id: 'raise-limit', title: 'Raise the limit' }] });
      const first = await pendingOf(runbooks, workflowId, 'raise-limit');
      targets.bump(target); // someone changed the target after the plan was shown
      await runbooks.approve(workflowId, { stepId: 'raise-limit', planHash: first.planHash, approver: 'bob', reason: 'approved v1' });
      let second = first;
      await waitUntil('a new plan waiting for approval', async () => {
        second = (await runbooks.getStatus(workflowId)).pending ?? first;
        return second.planHash !== first.planHash;
      });
      expect(second.change.summary).toBe(`raise-limit on ${target} at version 2`);
      expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
      await runbooks.approve(workflowId, { stepId: 'raise-limit', planHash: second.planHash, approver: 'bob', reason: 'approved v2' });
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => e.reason)).toEqual(['approved v1', 'approved v2']);
    expect(result.timeline.some((e) => e.event === 'replanned')).toBe(true);
    expect(targets.applies.filter((a) => a.target === target)).toHaveLength(1);
  });

  /** Two steps (restart, then scale) with a report: what the cancel tests stop part way. */
  const startRestartAndScale = (runbooks: RunbookClient, target: string) =>
    start(runbooks, {
      mode: 'execute',
      target,
      report: true,
      steps: [
        { id: 'restart', title: 'Restart' },
        { id: 'scale', title: 'Scale' },
      ],
    });

  test('cancel while waiting for approval: nothing changes, the report is written, the run ends Canceled (searchable)', async () => {
    const target = newTarget();
    const { status, report } = await withKernel(async (runbooks, client) => {
      const { workflowId, runId } = await startRestartAndScale(runbooks, target);
      await pendingOf(runbooks, workflowId, 'restart');
      await runbooks.cancel(workflowId, { by: 'alice', reason: 'false alarm' });
      const status = await canceledRun(runbooks, client, workflowId);
      const listed: string[] = [];
      await waitUntil('the run is listed as Canceled', async () => {
        listed.length = 0;
        for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}' AND ExecutionStatus = 'Canceled'` })) listed.push(run.runId);
        return listed.length > 0;
      });
      expect(listed).toEqual([runId]);
      return { status, report: await readBucketText(status.report!.markdownKey) };
    });
    expect(status.outcome).toBe('cancelled');
    expect(targets.applies.filter((a) => a.target === target)).toEqual([]);
    expect(status.timeline.filter((e) => e.event === 'skipped').map((e) => e.stepId)).toEqual(['restart', 'scale']);
    expect(status.timeline.find((e) => e.event === 'cancelled')).toMatchObject({ by: 'alice', reason: 'false alarm' });
    expect(status.timeline.filter((e) => e.event === 'locked')).toEqual([]);
    expect(status.timeline.at(-1)).toMatchObject({ event: 'finished', detail: 'cancelled: 2 steps' });
    expectIncidentReport(report);
    expect(report).toContain('**cancelled**');
  });

  test('cancel during an apply: the apply finishes, the lock is given back, later steps are skipped, the run ends Canceled', async () => {
    const target = newTarget();
    const openGate = targets.holdApplies();
    try {
      const status = await withKernel(async (runbooks, client) => {
        const { workflowId } = await startRestartAndScale(runbooks, target);
        const pending = await pendingOf(runbooks, workflowId, 'restart');
        await runbooks.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: 'go' });
        await waitUntil('the apply started', async () => targets.started.some((a) => a.target === target));
        await runbooks.cancel(workflowId, { by: 'carol', reason: 'stop after this' });
        await waitUntil('the cancel is recorded', async () => (await runbooks.getStatus(workflowId)).timeline.some((e) => e.event === 'cancelled'));
        openGate();
        const status = await canceledRun(runbooks, client, workflowId);
        const lock = await client.workflow.getHandle(lockWorkflowId(target)).query(lockStateQuery);
        expect(lock.holder).toBeUndefined();
        return status;
      });
      expect(targets.applies.filter((a) => a.target === target).map((a) => a.stepId)).toEqual(['restart']);
      expect(status.timeline.filter((e) => ['applied', 'skipped', 'locked', 'unlocked', 'finished'].includes(e.event)).map((e) => [e.event, e.stepId ?? e.detail])).toEqual([
        ['locked', `lock on ${target}`],
        ['applied', 'restart'],
        ['unlocked', `lock on ${target}`],
        ['skipped', 'scale'],
        ['finished', 'cancelled: 2 steps'],
      ]);
      expect(status.outcome).toBe('cancelled');
      expect(status.report?.markdownKey).toBeDefined();
    } finally {
      openGate();
    }
  });

  test('RUNBOOK_LANGUAGE=zh-CN: the client fixes the language in the input; Current Details, the finished run and its report are in Chinese', async () => {
    const target = newTarget();
    const { details, finishedDetails, report, input } = await withKernel(async (_runbooks, client) => {
      const chinese = createRunbookClient({ client, taskQueue: config.temporal.taskQueue, catalog: testCatalog, language: 'zh-CN' });
      const { workflowId } = await start(chinese, { mode: 'execute', target, report: true, steps: [{ id: 'restart', title: '重启' }] });
      const handle = client.workflow.getHandle(workflowId);
      const pending = await pendingOf(chinese, workflowId, 'restart');
      const details = (await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata')).currentDetails;
      await chinese.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: '连接数过高' });
      const result = await chinese.waitForResult<RunbookResultBase>(workflowId);
      const finishedDetails = (await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata')).currentDetails;
      const started = (await handle.fetchHistory()).events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
      return { details, finishedDetails, report: await readBucketText(result.report!.markdownKey), input: JSON.parse(Buffer.from(started.data!).toString('utf8')) as { language?: string } };
    });
    expect(input.language).toBe('zh-CN');
    expect(details).toContain(`## kernelTestRunbook：${target}`);
    expect(details).toContain('**等待审批**："restart"；已完成 1/2 步。');
    expect(details).toContain('审批层级 一线运维');
    expect(details).toContain('### 最近事件');
    expect(finishedDetails).toContain('**已结束：已完成**');
    expect(finishedDetails).toContain('**事故报告：**');
    expect(report).toContain(`# 事故报告：kernelTestRunbook：${target}`);
    for (const part of ['- 结果：**已完成**', '## 事件时间线', '## 影响范围', '## 根本原因', '## 解决方案', '## 预防措施', '| 时间 | 事件 | 步骤 | 执行人 | 详情 |']) expect(report).toContain(part);
    expect(report).toMatch(/\| 决定 \| 重启 \| bob, l2, update, 未验证 \| 连接数过高 — approved \|/);
  });

  test('a second start on the same target joins the running run', async () => {
    const target = newTarget();
    await withKernel(async (runbooks, client) => {
      const first = await start(runbooks, { mode: 'execute', target, steps: [{ id: 'restart', title: 'Restart' }] });
      const second = await start(runbooks, { mode: 'execute', target, steps: [{ id: 'restart', title: 'Restart' }] }, 'alice');
      expect(second).toEqual(first);
      await runbooks.cancel(first.workflowId, { by: 'test' });
      await canceledRun(runbooks, client, first.workflowId);
    });
  });

  test('a step a policy approves is planned once, under its lock: locked, planned, decided by the policy, applied, unlocked', async () => {
    const target = newTarget();
    const { result, activities } = await withKernel(async (runbooks, client) => {
      const { workflowId } = await start(runbooks, { mode: 'execute', target, steps: [{ id: 'routine', title: 'Routine change' }] });
      const finished = await runbooks.waitForResult<RunbookResultBase>(workflowId);
      const types = await scheduledActivityTypes(client.workflow.getHandle(workflowId));
      await client.workflow.getHandle(lockWorkflowId(target)).terminate('test over');
      return { result: finished, activities: types };
    });
    expect(result.outcome).toBe('completed');
    const steps = ['locked', 'planned', 'decided', 'applied', 'unlocked'];
    expect(result.timeline.filter((e) => steps.includes(e.event)).map((e) => [e.event, e.by ?? e.detail])).toEqual([
      ['locked', `lock on ${target}`],
      ['planned', expect.stringMatching(new RegExp(`^routine on ${target} at version 1 \\(plan [0-9a-f]{12}\\)$`))],
      ['decided', 'policy routine-test'],
      ['applied', 'routine applied'],
      ['unlocked', `lock on ${target}`],
    ]);
    // The read step, then one dry run (under the lock) and one apply: no second plan to compare.
    expect(activities.filter((a) => a === 'readTestTarget')).toHaveLength(2);
    expect(activities.filter((a) => a === 'requestTargetLock')).toHaveLength(1);
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'routine' }]);
  });

  test('two runbooks changing one target are serialised by its lock', async () => {
    const target = newTarget();
    targets.applyMs = 300;
    try {
      await withKernel(async (runbooks, client) => {
        const runs = await Promise.all(
          ['a', 'b'].map((suffix) =>
            client.workflow.start('kernelTestRunbook', {
              taskQueue: config.temporal.taskQueue,
              workflowId: `kernelTestRunbook/${target}/${suffix}`,
              args: [{ mode: 'execute', target, startedBy: 'erin', steps: [{ id: 'routine', title: 'Routine change' }] }],
            }),
          ),
        );
        // Both apply the same step: the second finds it done already when its turn comes.
        const results = await Promise.all(runs.map((run) => run.result()));
        expect(results.map((r) => r.outcome).sort()).toEqual(['completed', 'nothing-to-do']);
        const lock = client.workflow.getHandle(lockWorkflowId(target));
        expect(await lock.query(lockStateQuery)).toEqual({ holder: undefined, waiting: [], lease: undefined });
        await lock.terminate('test over');
        await recordHistory(lock, 'two-requesters');
      });
      expect(targets.maxConcurrentApplies).toBe(1);
      expect(targets.applies.filter((a) => a.target === target)).toHaveLength(1);
    } finally {
      targets.applyMs = 0;
    }
  });

  describe('target locks', () => {
    const routine = [{ id: 'routine', title: 'Routine change' }];
    const lockOf = (client: Client, name: string) => client.workflow.getHandle(lockWorkflowId(name));
    const requesters = async (client: Client, name: string) => {
      const state = await lockOf(client, name).query(lockStateQuery);
      return { holder: state.holder?.requester, waiting: state.waiting.map((w) => w.requester) };
    };
    const runOn = (client: Client, workflowId: string, input: Partial<Input> & { target: string }) =>
      client.workflow.start<typeof kernelTestRunbook>('kernelTestRunbook', {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [{ mode: 'execute', startedBy: 'erin', steps: routine, ...input }],
      });
    const applying = (target: string) => waitUntil(`an apply on ${target}`, () => targets.started.some((a) => a.target === target));
    const lockEvents = (result: Pick<RunbookResultBase, 'timeline'>) => result.timeline.filter((e) => e.event === 'locked' || e.event === 'unlocked').map((e) => [e.event, e.detail]);
    const terminateLocks = (client: Client, names: string[]) => Promise.all(names.map((name) => lockOf(client, name).terminate('test over')));

    test('a holder whose apply outlasts the lease keeps the lock while its run is open; the next run waits', async () => {
      const target = newTarget();
      const leaseMs = 1_000;
      const openGate = targets.holdApplies();
      try {
        await withKernel(async (_runbooks, client) => {
          const lock = await client.workflow.start('targetLock', { taskQueue: config.temporal.taskQueue, workflowId: lockWorkflowId(target), args: [{ target, leaseMs, holderCheckMs: 250 }] });
          const holder = await runOn(client, `kernelTestRunbook/${target}/holder`, { target });
          await applying(target);
          const next = await runOn(client, `kernelTestRunbook/${target}/next`, { target });
          await waitUntil('the next run queued', async () => (await requesters(client, target)).waiting.length === 1);
          await waitUntil('the lease renewed past three terms', async () => {
            const { lease } = await lock.query(lockStateQuery);
            return lease !== undefined && Date.parse(lease.renewedAt) > Date.parse(lease.grantedAt) + 3 * leaseMs;
          });
          expect(await requesters(client, target)).toEqual({ holder: holder.workflowId, waiting: [next.workflowId] });
          expect(targets.started.filter((a) => a.target === target)).toHaveLength(1);

          // The view the UI opens on (npm start's link) lists the two runs, never their lock.
          const listed = async (query: string) => {
            const ids: string[] = [];
            for await (const run of client.workflow.list({ query })) ids.push(run.workflowId);
            return ids.sort();
          };
          const these = `WorkflowId IN ('${lock.workflowId}', '${holder.workflowId}', '${next.workflowId}') AND ExecutionStatus = 'Running'`;
          await waitUntil('the lock and both runs listed', async () => (await listed(these)).length === 3);
          await waitUntil('both runs in the runbook view', async () => (await listed(`${these} AND ${runbookRunsQuery}`)).length >= 2);
          expect(await listed(`${these} AND ${runbookRunsQuery}`)).toEqual([holder.workflowId, next.workflowId].sort());
          openGate();
          const results = await Promise.all([holder.result(), next.result()]);
          // The next run got the lock only after the apply: it found the change made.
          expect(results.map((r) => r.outcome)).toEqual(['completed', 'nothing-to-do']);
          expect(lockEvents(results[1])).toEqual([
            ['locked', `lock on ${target}`],
            ['unlocked', `lock on ${target}`],
          ]);
          await lock.terminate('test over');
          await recordHistory(lock, 'lease-renewed');
        });
      } finally {
        openGate();
      }
      expect(targets.applies.filter((a) => a.target === target)).toHaveLength(1);
    });

    test('a terminated queued requester does not block the next run on its workflow id', async () => {
      const target = newTarget();
      const openGate = targets.holdApplies();
      try {
        await withKernel(async (_runbooks, client) => {
          const holder = await runOn(client, `kernelTestRunbook/${target}/holder`, { target });
          await applying(target);
          const queuedId = `kernelTestRunbook/${target}/queued`;
          const terminated = await runOn(client, queuedId, { target });
          await waitUntil('the run queued', async () => (await requesters(client, target)).waiting.length === 1);
          await terminated.terminate('given up while queued');
          const successor = await runOn(client, queuedId, { target });
          await waitUntil('its successor queued', async () => (await requesters(client, target)).waiting.length === 2);
          const { waiting } = await lockOf(client, target).query(lockStateQuery);
          expect(waiting.map((w) => [w.requester, w.runId])).toEqual([
            [queuedId, terminated.firstExecutionRunId],
            [queuedId, successor.firstExecutionRunId],
          ]);
          openGate();
          expect((await holder.result()).outcome).toBe('completed');
          // The default lease is 30 minutes: a grant handed to the successor as if it were the ended run would hold it that long.
          const result = await successor.result();
          expect(lockEvents(result)).toEqual([
            ['locked', `lock on ${target}`],
            ['unlocked', `lock on ${target}`],
          ]);
          const history = await lockOf(client, target).fetchHistory();
          expect(history.events?.filter((e) => e.signalExternalWorkflowExecutionFailedEventAttributes)).toHaveLength(1);
          await terminateLocks(client, [target]);
        });
      } finally {
        openGate();
      }
    });

    test('a terminated holder loses the lock at the next holder check, though a new run on its workflow id is open', async () => {
      const target = newTarget();
      const openGate = targets.holdApplies();
      try {
        await withKernel(async (runbooks, client) => {
          // Checks far apart: the new run queues before the lock looks at its holder again.
          const lock = await client.workflow.start('targetLock', {
            taskQueue: config.temporal.taskQueue,
            workflowId: lockWorkflowId(target),
            args: [{ target, holderCheckMs: 20_000, endedHolderGraceMs: 1_000 }],
          });
          const workflowId = `kernelTestRunbook/${target}/restarted`;
          const terminated = await runOn(client, workflowId, { target });
          await applying(target);
          await terminated.terminate('an operator restarts the run');
          openGate(); // the terminated run's apply ends; its result is dropped
          // Another step (the routine one is done): approved by a person, then it queues.
          const successor = await runOn(client, workflowId, { target, steps: [{ id: 'restart', title: 'Restart' }] });
          const pending = await pendingOf(runbooks, workflowId, 'restart');
          await runbooks.approve(workflowId, { stepId: 'restart', planHash: pending.planHash, approver: 'bob', reason: 'restart after the routine change' });
          await waitUntil('the new run queued', async () => (await lock.query(lockStateQuery)).waiting.length === 1);
          const state = await lock.query(lockStateQuery);
          expect([state.holder?.runId, state.waiting.map((w) => w.runId)]).toEqual([terminated.firstExecutionRunId, [successor.firstExecutionRunId]]);
          // The default lease is 30 minutes: a check by workflow id would find the new run open and keep the lock for it.
          const result = await successor.result();
          expect(result.outcome).toBe('completed');
          expect(lockEvents(result)).toEqual([
            ['locked', `lock on ${target}`],
            ['unlocked', `lock on ${target}`],
          ]);
          await lock.terminate('test over');
        });
      } finally {
        openGate();
      }
    });

    test('a run cancelled while it waits for a lock leaves the queue, gives back the lock it got, ends cancelled, nothing applied', async () => {
      const base = newTarget();
      const [other, busy] = [`${base}/a-other`, `${base}/z-busy`];
      const openGate = targets.holdApplies();
      try {
        await withKernel(async (runbooks, client) => {
          const holder = await runOn(client, `kernelTestRunbook/${busy}/holder`, { target: busy });
          await applying(busy);
          const waiter = await runOn(client, `kernelTestRunbook/${other}/waiter`, { target: other, locks: [busy] });
          await waitUntil('the waiter queued at its second lock', async () => (await requesters(client, busy)).waiting.includes(waiter.workflowId));
          expect(await requesters(client, other)).toEqual({ holder: waiter.workflowId, waiting: [] });
          await runbooks.cancel(waiter.workflowId, { by: 'erin', reason: 'no longer needed' });
          const result = await canceledRun(runbooks, client, waiter.workflowId);
          expect(result.outcome).toBe('cancelled');
          expect(result.timeline.find((e) => e.stepId === 'routine' && e.event === 'skipped')?.detail).toBe('run cancelled while waiting for the lock');
          expect(lockEvents(result)).toEqual([
            ['locked', `lock on ${other}`],
            ['unlocked', `left the queue of the lock on ${busy}`],
            ['unlocked', `lock on ${other}`],
          ]);
          await waitUntil('both locks given back', async () => {
            const [atBusy, atOther] = await Promise.all([requesters(client, busy), requesters(client, other)]);
            return atBusy.waiting.length === 0 && atOther.holder === undefined;
          });
          // Still applying: the waiter left before the holder let go.
          expect(await requesters(client, busy)).toEqual({ holder: holder.workflowId, waiting: [] });
          openGate();
          expect((await holder.result()).outcome).toBe('completed');
          await terminateLocks(client, [busy, other]);
        });
      } finally {
        openGate();
      }
      expect(targets.started.filter((a) => a.target === other)).toEqual([]);
    });

    test('bad lock input is refused at once, non-retryable, saying what was wrong; the next request gets a sound lock', async () => {
      const target = newTarget();
      await withKernel(async (_runbooks, client) => {
        const refused: Array<[Record<string, unknown>, string]> = [
          [{ target, holderCheckMs: 0 }, 'invalid input for targetLock: holderCheckMs: at least 100 ms'],
          [{ target, leaseMs: 1_000, holderCheckMs: 5_000 }, 'invalid input for targetLock: holderCheckMs: holderCheckMs must be shorter than leaseMs'],
          [{ target, leaseMs: 1 }, 'invalid input for targetLock: leaseMs: at least 1000 ms'],
        ];
        for (const [input, message] of refused) {
          const lock = await client.workflow.start('targetLock', { taskQueue: config.temporal.taskQueue, workflowId: lockWorkflowId(target), args: [input] });
          const error = await lock.result().then(
            () => undefined,
            (err: unknown) => err,
          );
          expect(error).toBeInstanceOf(WorkflowFailedError);
          expect((error as WorkflowFailedError).cause).toMatchObject({ message, type: 'InvalidInput', nonRetryable: true });
          expect(await scheduledActivityTypes(lock)).toEqual([]);
        }
        const run = await runOn(client, `kernelTestRunbook/${target}/after`, { target });
        expect((await run.result()).outcome).toBe('completed');
        await terminateLocks(client, [target]);
      });
    });

    test('runs that share objects take their locks in one sorted order, so they queue instead of deadlocking', async () => {
      const base = newTarget();
      const [first, second] = [`${base}/a`, `${base}/b`];
      const openGate = targets.holdApplies();
      try {
        await withKernel(async (_runbooks, client) => {
          // Declared in the other order: it still takes the first lock first.
          const reversed = await runOn(client, `kernelTestRunbook/${second}/reversed`, { target: second, locks: [first] });
          await applying(second);
          const inOrder = await runOn(client, `kernelTestRunbook/${first}/in-order`, { target: first, locks: [second] });
          await waitUntil('the second run queued at the first lock', async () => (await requesters(client, first)).waiting.includes(inOrder.workflowId));
          expect(await requesters(client, first)).toEqual({ holder: reversed.workflowId, waiting: [inOrder.workflowId] });
          expect(await requesters(client, second)).toEqual({ holder: reversed.workflowId, waiting: [] });
          openGate();
          const results = await Promise.all([reversed.result(), inOrder.result()]);
          expect(results.map((r) => r.outcome)).toEqual(['completed', 'completed']);
          for (const result of results) {
            expect(lockEvents(result)).toEqual([
              ['locked', `lock on ${first}`],
              ['locked', `lock on ${second}`],
              ['unlocked', `lock on ${second}`],
              ['unlocked', `lock on ${first}`],
            ]);
          }
          await terminateLocks(client, [first, second]);
        });
      } finally {
        openGate();
      }
      expect(targets.maxConcurrentApplies).toBe(1);
    });
  });

  test('a failing apply ends the run failed, and later steps are not attempted', async () => {
    const target = newTarget();
    const result = await withKernel(async (runbooks) => {
      const { workflowId } = await start(runbooks, {
        mode: 'execute',
        target,
        steps: [
          { id: 'routine', title: 'Routine', failOnApply: true },
          { id: 'restart', title: 'Restart' },
        ],
      });
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('failed');
    expect(result.timeline.find((e) => e.event === 'failed')).toMatchObject({ stepId: 'routine', detail: expect.stringContaining('routine cannot be applied') });
    expect(result.timeline.find((e) => e.stepId === 'restart' && e.event === 'skipped')?.detail).toBe('an earlier step failed');
  });
});
