import {
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { ApprovalPolicy } from '../../activities/runbook-support';
import type { IncidentReport } from '../../activities/report-markdown';
import {
  roles,
  type ApproverRole,
  type CancelRequest,
  type Decision,
  type DecisionChannel,
  type DecisionVerdict,
  type IncidentFindings,
  type Mode,
  type PendingApproval,
  type PlannedChange,
  type PlannedStep,
  type RunbookOutcome,
  type RunbookResultBase,
  type RunbookStatus,
  type Severity,
  type TimelineEntry,
} from '../../common/runbook';
import { alertInitiator } from '../../common/alert-initiator';
import type { RunbookKind } from '../../common/catalog';
import { runbookApprovalState, runbookMode, runbookName, runbookSeverity, runbookTarget } from '../../common/search-attributes';
import { sha256Hex } from '../../common/sha256';
import { stableJson } from '../../common/stable-json';
import { quickRead } from '../activity-options';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  approveUpdate,
  cancelSignal,
  lockGrantedSignal,
  lockWorkflowId,
  rejectSignal,
  rejectUpdate,
  releaseLockSignal,
  statusQuery,
} from '../definitions';
import { checkDecision } from './decision-rules';

const support = proxyActivities<Activities>(quickRead);

export interface RunbookIdentity {
  name: string;
  kind: RunbookKind;
  /** What the run changes, e.g. "short-drama-prod/short-drama-app"; also the lock's name. */
  target: string;
  mode: Mode;
  severity: Severity;
  startedBy: string;
  scheduled: boolean;
}

export interface ChangeStep {
  stepId: string;
  title: string;
  /** Who may approve; every tier by default. */
  allowedRoles?: ApproverRole[];
  /** Steps whose skip (rejected, expired, failed) skips this one too. */
  dependsOn?: string[];
  /** A dry run: the exact change, or `needed: false`. Called again right before apply. */
  plan: () => Promise<PlannedChange>;
  /** Makes the change; returns a one-line result. Must be idempotent. */
  apply: (planned: PlannedChange) => Promise<string>;
}

export type ChangeOutcome = 'planned' | 'applied' | 'not-needed' | 'rejected' | 'expired' | 'cancelled' | 'failed' | 'dependency-skipped';

/** How many times a changed plan may be put to people again before the step is given up. */
const maxReapprovals = 3;

/**
 * The kernel every runbook runs on: read steps, destructive steps behind plan and approval
 * (with escalation), the timeline, the status query, search attributes, the target lock and the
 * incident report. Deterministic: all I/O goes through activities.
 */
export class RunbookRun {
  private readonly timeline: TimelineEntry[] = [];
  private readonly plan = new Map<string, PlannedStep>();
  private readonly stepOutcomes = new Map<string, ChangeOutcome>();
  private readonly evidence: IncidentReport['evidence'] = [];
  private pending: PendingApproval | undefined;
  private decision: { verdict: DecisionVerdict; decision: Decision; role: ApproverRole; channel: DecisionChannel } | undefined;
  private cancelRequest: CancelRequest | undefined;
  /** The alerts that want this run, by Alertmanager fingerprint (alertFiring adds, alertResolved removes). */
  private readonly alertsFiring = new Map<string, string>();
  private readonly grantedLocks = new Set<string>();
  private state: RunbookStatus['state'] = 'running';
  private currentStep: string | undefined;
  private stepsDone = 0;
  private outcome: RunbookOutcome | undefined;

  private constructor(
    readonly identity: RunbookIdentity,
    private readonly policy: ApprovalPolicy,
    private readonly stepsDeclared: number,
  ) {}

  /** Registers the run's handlers and search attributes and loads the approval policy. Call first. */
  static async begin(identity: RunbookIdentity, stepsDeclared: number): Promise<RunbookRun> {
    upsertSearchAttributes([
      { key: runbookName, value: identity.name },
      { key: runbookSeverity, value: identity.severity },
      { key: runbookTarget, value: identity.target },
      { key: runbookMode, value: identity.mode },
      { key: runbookApprovalState, value: 'none' },
    ]);
    const run = new RunbookRun(identity, { approvers: [], escalation: { P0: '15m', P1: '1h', P2: '4h', P3: '24h' }, autoApprove: [] }, stepsDeclared);
    run.registerHandlers();
    const policy = await support.loadApprovalPolicy({ runbook: identity.name });
    Object.assign(run.policy, policy);
    run.record({ event: 'started', by: identity.startedBy, detail: `${identity.mode} mode, ${identity.severity}, target ${identity.target}` });
    return run;
  }

  get cancelled(): boolean {
    return this.cancelRequest !== undefined;
  }

  /** A read-only step: runs in both modes and is recorded with a one-line result. */
  async read<T>(stepId: string, title: string, fn: () => Promise<T>, describe?: (result: T) => string): Promise<T> {
    this.currentStep = stepId;
    try {
      const result = await fn();
      this.record({ event: 'read', stepId, title, detail: describe?.(result) });
      return result;
    } catch (err) {
      this.record({ event: 'failed', stepId, title, detail: errorMessage(err) });
      throw err;
    } finally {
      this.stepsDone++;
      this.currentStep = undefined;
    }
  }

  /** Evidence written to S3 by an activity: only its key, size and digest enter the history. */
  addEvidence(item: IncidentReport['evidence'][number]): void {
    this.evidence.push(item);
  }

  /** A destructive step: planned by a dry run; in execute mode approved, re-planned, then applied. */
  async change(step: ChangeStep): Promise<ChangeOutcome> {
    this.currentStep = step.stepId;
    try {
      const outcome = await this.runChange(step);
      this.stepOutcomes.set(step.stepId, outcome);
      return outcome;
    } finally {
      this.stepsDone++;
      this.currentStep = undefined;
      this.pending = undefined;
      this.state = 'running';
    }
  }

  outcomeOf(stepId: string): ChangeOutcome | undefined {
    return this.stepOutcomes.get(stepId);
  }

  /** A step's last plan; undefined when it was never planned (skipped before, or not reached). */
  plannedStep(stepId: string): PlannedStep | undefined {
    return this.plan.get(stepId);
  }

  /** The timeline so far (a copy), or only the entries of one step. */
  timelineOf(stepId?: string): TimelineEntry[] {
    return stepId === undefined ? [...this.timeline] : this.timeline.filter((e) => e.stepId === stepId);
  }

  /**
   * Undoes part of an approved change after a later step of it failed or was not applied (e.g. the
   * old password back after a failed rollout). Approved with the change it undoes, so it runs at
   * once (under the target's lock, like any apply); recorded as applied or failed, and not
   * counted as a step outcome.
   */
  async compensate(stepId: string, title: string, fn: () => Promise<string>): Promise<boolean> {
    this.currentStep = stepId;
    const lock = await this.acquireLock();
    try {
      const result = await fn();
      this.record({ event: 'applied', stepId, title, detail: result });
      return true;
    } catch (err) {
      this.record({ event: 'failed', stepId, title, detail: errorMessage(err) });
      return false;
    } finally {
      await this.releaseLock(lock);
      this.currentStep = undefined;
    }
  }

  private async runChange(step: ChangeStep): Promise<ChangeOutcome> {
    // In plan mode a planned dependency counts as done, so the plan shows the whole chain.
    const satisfied: Array<ChangeOutcome | undefined> = this.identity.mode === 'plan' ? ['applied', 'not-needed', 'planned'] : ['applied', 'not-needed'];
    const skippedDependency = step.dependsOn?.find((id) => !satisfied.includes(this.stepOutcomes.get(id)));
    if (skippedDependency) return this.skip(step, 'dependency-skipped', `depends on "${skippedDependency}", which was not applied`);
    if (this.cancelled) return this.skip(step, 'cancelled', 'run cancelled before this step');
    if ([...this.stepOutcomes.values()].includes('failed')) return this.skip(step, 'dependency-skipped', 'an earlier step failed');

    let planned = await this.planStep(step);
    if (!planned.change.needed) return this.skip(step, 'not-needed', `nothing to change: ${planned.change.summary}`);
    if (this.identity.mode === 'plan') return 'planned';

    for (let round = 0; round <= maxReapprovals; round++) {
      const verdict = await this.awaitDecision(planned);
      if (verdict !== 'approve') return this.skip(step, verdict, verdict === 'expired' ? 'approval expired after the last escalation tier' : undefined);
      const lock = await this.acquireLock();
      try {
        const replanned = await this.planStep(step);
        if (replanned.planHash !== planned.planHash) {
          this.record({ event: 'replanned', stepId: step.stepId, title: step.title, detail: `the target changed since approval: ${replanned.change.summary}` });
          if (!replanned.change.needed) return this.skip(step, 'not-needed', 'the target no longer needs this change');
          planned = replanned;
          continue;
        }
        if (this.cancelled) return this.skip(step, 'cancelled', 'run cancelled before apply');
        try {
          const result = await step.apply(planned.change);
          this.record({ event: 'applied', stepId: step.stepId, title: step.title, detail: result });
          return 'applied';
        } catch (err) {
          this.record({ event: 'failed', stepId: step.stepId, title: step.title, detail: errorMessage(err) });
          return 'failed';
        }
      } finally {
        await this.releaseLock(lock);
      }
    }
    return this.skip(step, 'rejected', `the plan kept changing; asked ${maxReapprovals + 1} times`);
  }

  private async planStep(step: ChangeStep): Promise<PlannedStep> {
    const change = await step.plan();
    const { observed: _observed, ...binding } = change;
    const planHash = sha256Hex(stableJson({ stepId: step.stepId, change: binding }));
    const planned: PlannedStep = { stepId: step.stepId, title: step.title, change, planHash, allowedRoles: step.allowedRoles ?? [...roles] };
    this.plan.set(step.stepId, planned);
    this.record({ event: 'planned', stepId: step.stepId, title: step.title, detail: `${change.summary} (plan ${planHash.slice(0, 12)})` });
    return planned;
  }

  private skip(step: ChangeStep, outcome: ChangeOutcome, reason?: string): ChangeOutcome {
    this.record({ event: 'skipped', stepId: step.stepId, title: step.title, detail: reason ?? outcome });
    return outcome;
  }

  /** Waits for a person's decision, escalating tier by tier on durable timers; a policy may decide at once. */
  private async awaitDecision(planned: PlannedStep): Promise<'approve' | 'rejected' | 'expired' | 'cancelled'> {
    const policy = this.policy.autoApprove.find((p) => p.steps.includes(planned.stepId) && (!p.onlyScheduled || this.identity.scheduled));
    if (policy) {
      this.record({ event: 'decided', stepId: planned.stepId, title: planned.title, by: `policy ${policy.name}`, channel: 'policy', reason: `approved by policy ${policy.name}` });
      upsertSearchAttributes([{ key: runbookApprovalState, value: 'approved' }]);
      return 'approve';
    }
    this.decision = undefined;
    this.state = 'waiting-for-approval';
    upsertSearchAttributes([{ key: runbookApprovalState, value: 'pending' }]);
    const waitPerTier = this.policy.escalation[this.identity.severity];
    const tiers = roles.filter((tier) => planned.allowedRoles.includes(tier));
    for (const [index, tier] of tiers.entries()) {
      this.pending = {
        stepId: planned.stepId,
        title: planned.title,
        planHash: planned.planHash,
        change: planned.change,
        allowedRoles: planned.allowedRoles,
        approvers: this.policy.approvers.filter((a) => a.id !== this.identity.startedBy && a.roles.some((r) => planned.allowedRoles.includes(r))).map((a) => a.id),
        tier,
        until: new Date(Date.now() + durationMs(waitPerTier)).toISOString(),
      };
      this.record({ event: index === 0 ? 'requested' : 'escalated', stepId: planned.stepId, title: planned.title, detail: `tier ${tier}, waiting until ${this.pending.until}` });
      await this.notifyTier(planned, tier);
      if (await condition(() => this.decision !== undefined || this.cancelled, waitPerTier)) break;
    }
    this.pending = undefined;
    this.state = 'running';
    if (this.cancelled) {
      upsertSearchAttributes([{ key: runbookApprovalState, value: 'none' }]);
      return 'cancelled';
    }
    // Set by a handler while condition() waited; TypeScript cannot see that.
    const decided = this.decision as RunbookRun['decision'];
    if (!decided) {
      upsertSearchAttributes([{ key: runbookApprovalState, value: 'expired' }]);
      return 'expired';
    }
    const { verdict, decision, role, channel } = decided;
    this.record({ event: 'decided', stepId: planned.stepId, title: planned.title, by: decision.approver, role, channel, reason: decision.reason, detail: verdict === 'approve' ? 'approved' : 'rejected' });
    upsertSearchAttributes([{ key: runbookApprovalState, value: verdict === 'approve' ? 'approved' : 'rejected' }]);
    return verdict === 'approve' ? 'approve' : 'rejected';
  }

  private async notifyTier(planned: PlannedStep, tier: ApproverRole): Promise<void> {
    const { workflowId } = workflowInfo();
    try {
      await support.notify({
        title: `${this.identity.name}: approval needed for "${planned.title}" (${tier})`,
        text: planned.change.summary,
        severity: this.identity.severity,
        fields: {
          run: workflowId,
          target: this.identity.target,
          step: planned.stepId,
          plan: planned.planHash,
          'decide by': this.pending?.until ?? '',
          approve: `runbook approve ${workflowId} --step ${planned.stepId} --reason "..."`,
        },
        dedupeKey: `${workflowId}/${planned.stepId}/${planned.planHash.slice(0, 12)}/${tier}`,
      });
    } catch (err) {
      // A notification that cannot be delivered must not stop the approval wait.
      this.record({ event: 'failed', stepId: planned.stepId, title: `notify ${tier}`, detail: errorMessage(err) });
    }
  }

  /** Takes the target's lock (durable, FIFO) around a re-plan and apply. */
  private async acquireLock(): Promise<string> {
    const requestId = uuid4();
    this.state = 'waiting-for-lock';
    await support.requestTargetLock({ target: this.identity.target, request: { requester: workflowInfo().workflowId, requestId } });
    await condition(() => this.grantedLocks.has(requestId));
    this.state = 'running';
    this.record({ event: 'locked', detail: `lock on ${this.identity.target}` });
    return requestId;
  }

  /** Awaited: a signal still in flight when the run completes would never be delivered. */
  private async releaseLock(requestId: string): Promise<void> {
    this.grantedLocks.delete(requestId);
    this.record({ event: 'unlocked', detail: `lock on ${this.identity.target}` });
    try {
      await getExternalWorkflowHandle(lockWorkflowId(this.identity.target)).signal(releaseLockSignal, { requester: workflowInfo().workflowId, requestId });
    } catch (err) {
      log.warn('could not release the target lock; its lease will', { error: errorMessage(err) });
    }
  }

  private registerHandlers(): void {
    const accept = (verdict: DecisionVerdict, channel: DecisionChannel) => (decision: Decision) => {
      const check = checkDecision(decision, verdict, { pending: this.pending, startedBy: this.identity.startedBy, approvers: this.policy.approvers });
      if (!check.ok) {
        if (channel === 'signal') this.record({ event: 'refused', stepId: decision?.stepId, by: decision?.approver, channel, reason: decision?.reason, detail: check.refusal });
        return undefined;
      }
      if (this.decision) return undefined; // the first valid decision wins
      this.decision = { verdict, decision, role: check.role, channel };
      return { stepId: decision.stepId, verdict, approver: decision.approver, role: check.role };
    };
    const validator = (verdict: DecisionVerdict) => (decision: Decision) => {
      const check = checkDecision(decision, verdict, { pending: this.pending, startedBy: this.identity.startedBy, approvers: this.policy.approvers });
      if (!check.ok) throw new Error(check.refusal);
      if (this.decision) throw new Error(`step "${decision.stepId}" was already decided`);
    };
    setHandler(approveUpdate, (d) => accept('approve', 'update')(d)!, { validator: validator('approve') });
    setHandler(rejectUpdate, (d) => accept('reject', 'update')(d)!, { validator: validator('reject') });
    setHandler(approveSignal, (d) => void accept('approve', 'signal')(d));
    setHandler(rejectSignal, (d) => void accept('reject', 'signal')(d));
    setHandler(cancelSignal, (request) => this.requestCancel(request ?? { by: 'unknown' }));
    setHandler(alertFiringSignal, (firing) => this.alertFiring(firing));
    setHandler(alertResolvedSignal, (resolved) => this.alertResolved(resolved ?? {}));
    setHandler(lockGrantedSignal, ({ requestId }) => void this.grantedLocks.add(requestId));
    setHandler(statusQuery, () => this.status());
  }

  /** An alert wants this run (idempotent: an alert already recorded changes nothing). */
  private alertFiring({ alert, fingerprint }: { alert?: string; fingerprint?: string } = {}): void {
    if (!fingerprint || this.alertsFiring.has(fingerprint)) return;
    const name = alert || 'unknown alert';
    this.alertsFiring.set(fingerprint, name);
    this.record({ event: 'alert-firing', by: 'alerting', detail: `alert ${name} (${fingerprint}) joined; firing: ${this.firingList()}` });
  }

  /**
   * An alert went away. Without a fingerprint (older clients and histories): stop, as always.
   * With one: forget that alert; stop only when no alert still wants the run. A fingerprint the
   * run does not know changes nothing, except on a run that recorded no alert at all (started
   * before alerts were tracked): there the alert that started the run stops it, as before.
   */
  private alertResolved({ alert, fingerprint }: { alert?: string; fingerprint?: string }): void {
    const reason = `alert resolved${alert ? `: ${alert}` : ''}`;
    if (!fingerprint) return this.requestCancel({ by: 'alerting', reason });
    const wanted = this.alertsFiring.delete(fingerprint);
    if (this.alertsFiring.size > 0) {
      if (wanted) this.record({ event: 'alert-resolved', by: 'alerting', detail: `alert ${alert || 'unknown alert'} (${fingerprint}) resolved; still firing: ${this.firingList()}` });
      return;
    }
    if (wanted || (alert !== undefined && alertInitiator(alert) === this.identity.startedBy)) this.requestCancel({ by: 'alerting', reason });
  }

  private firingList(): string {
    return [...this.alertsFiring].map(([fingerprint, alert]) => `${alert} (${fingerprint})`).join(', ');
  }

  private requestCancel(request: CancelRequest): void {
    if (this.cancelRequest) return;
    this.cancelRequest = request;
    this.record({ event: 'cancelled', by: request.by, reason: request.reason, detail: 'no further destructive step will run' });
  }

  status(): RunbookStatus {
    return {
      runbook: this.identity.name,
      mode: this.identity.mode,
      severity: this.identity.severity,
      target: this.identity.target,
      startedBy: this.identity.startedBy,
      state: this.outcome ? 'finished' : this.state,
      currentStep: this.currentStep,
      stepsDone: this.stepsDone,
      stepsDeclared: this.stepsDeclared,
      pending: this.pending,
      plan: [...this.plan.values()],
      timeline: [...this.timeline],
      outcome: this.outcome,
      ...(this.alertsFiring.size > 0 ? { alertsFiring: [...this.alertsFiring].map(([fingerprint, alert]) => ({ alert, fingerprint })) } : {}),
    };
  }

  private record(entry: Omit<TimelineEntry, 'at'>): void {
    this.timeline.push({ at: new Date().toISOString(), ...entry });
  }

  /** The run's outcome from its steps: what a person reading the result needs first. */
  private decideOutcome(): RunbookOutcome {
    const outcomes = [...this.stepOutcomes.values()];
    if (this.identity.mode === 'plan') return 'planned';
    if (outcomes.includes('failed')) return 'failed';
    if (this.cancelled) return 'cancelled';
    if (outcomes.includes('expired')) return 'expired';
    const applied = outcomes.filter((o) => o === 'applied').length;
    const rejected = outcomes.some((o) => o === 'rejected' || o === 'dependency-skipped');
    if (applied === 0 && rejected) return 'rejected';
    if (applied > 0 && rejected) return 'partially-applied';
    return applied > 0 ? 'completed' : 'nothing-to-do';
  }

  /** Ends the run: outcome, and for fault and emergency runbooks the incident report in S3. */
  async finish(summary: string, findings?: IncidentFindings): Promise<RunbookResultBase> {
    this.outcome = this.decideOutcome();
    this.record({ event: 'finished', detail: `${this.outcome}: ${summary}` });
    const result: RunbookResultBase = { outcome: this.outcome, summary, plan: [...this.plan.values()], timeline: [...this.timeline] };
    // Security runbooks change credentials: what was done (or undone) is worth a report too.
    if (findings && (this.identity.kind === 'fault' || this.identity.kind === 'emergency' || this.identity.kind === 'security')) {
      const { workflowId, runId } = workflowInfo();
      result.report = await support.writeIncidentReport({
        ...findings,
        runbook: this.identity.name,
        workflowId,
        runId,
        target: this.identity.target,
        severity: this.identity.severity,
        mode: this.identity.mode,
        startedBy: this.identity.startedBy,
        outcome: this.outcome,
        summary,
        plan: result.plan,
        timeline: result.timeline,
        evidence: this.evidence,
      });
    }
    return result;
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof ApplicationFailure || err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

/** Milliseconds of a duration from configuration (validated there as digits and a unit). */
export function durationMs(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!match) throw ApplicationFailure.nonRetryable(`bad duration "${text}"`, 'InvalidInput');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}
