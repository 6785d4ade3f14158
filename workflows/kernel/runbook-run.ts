import { condition, getExternalWorkflowHandle, log, patched, setCurrentDetails, setHandler, sleep, upsertSearchAttributes, uuid4, workflowInfo } from '@temporalio/workflow';
import { brokenPromise, keptPromises, nextWaitMs, type EffectCheck } from './effect-check';
import { currentDetails } from './current-details';
import type { ApprovalPolicy, ScheduleProof } from '../../activities/runbook-support';
import { inputDigest, parseStatement, signatureNamespace, startStatementSchema, timeProblem, type SignedStatement } from '../../common/approval-statements';
import { verifySshSignature } from '../../common/ssh-signature';
import type { IncidentReport } from '../../activities/report-markdown';
import {
  roles,
  type ApproverRole,
  type CancelRequest,
  type Decision,
  type DecisionChannel,
  type DecisionReceipt,
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
import type { CatalogEntry, RunbookKind } from '../../common/catalog';
import { runbookApprovalState, runbookMode, runbookName, runbookSeverity, runbookTarget } from '../../common/search-attributes';
import { sha256Hex } from '../../common/sha256';
import { stableJson } from '../../common/stable-json';
import { alertFiringSignal, alertResolvedSignal, approveSignal, approveUpdate, cancelSignal, messageDescriptions, rejectSignal, rejectUpdate, statusQuery } from '../../common/messages';
import { lockGrantedSignal, lockMessageDescriptions, lockWorkflowId, releaseLockSignal, type LockRequest } from '../../common/target-lock-messages';
import { checkDecision, type AcceptedDecision } from './decision-rules';
import { runMetrics } from './run-metrics';
import { read } from '../activity-proxies';
import { errorText, failure } from '../../common/failures';
import { durationMs } from '../../common/duration';
import { defaultLanguage, textsFor, type Language, type Texts } from '../../common/texts';

export interface RunbookIdentity {
  name: string;
  kind: RunbookKind;
  /** What the run changes, e.g. "short-drama-prod/short-drama-app"; also the name of its first lock. */
  target: string;
  /** Every object the run changes by lock name: the target and the entry's `locksOf`, sorted (the order they are taken in). */
  locks: string[];
  mode: Mode;
  severity: Severity;
  startedBy: string;
  /** What the input says; trusted only by runs recorded before schedules were proven. */
  scheduled: boolean;
  /** The initiator's signed start statement, and the digest of the input it must bind. */
  startProof?: SignedStatement;
  inputDigest?: string;
  /** What the run writes for people in, fixed by its input. */
  language: Language;
}

/** The catalog entry a run takes its name, kind and target from (common/catalog.ts). */
export type RunbookEntry = Pick<CatalogEntry, 'name' | 'kind' | 'targetOf' | 'locksOf'>;

/** A lock a run asked for (and holds once granted). */
interface LockHeld {
  name: string;
  request: LockRequest;
}

/** A runbook's validated input: the fields every input has (runbookInputBase) and its own. */
export type RunInput = { mode: Mode; severity: Severity; startedBy: string; scheduled: boolean; startProof?: SignedStatement; language?: Language } & Record<string, unknown>;

/** The run fields of a runbook's validated input. */
function runFields(input: RunInput) {
  const { mode, severity, startedBy, scheduled, startProof, language } = input;
  return { mode, severity, startedBy, scheduled, startProof, language: language ?? defaultLanguage, inputDigest: inputDigest(input) };
}

type Approval = AcceptedDecision & { channel: DecisionChannel };
/** A policy that approved a step without a person, and what proves it applies (a schedule's record). */
type PolicyApproval = { name: string; detail?: string };

/** A destructive step; `Details` is what its plan records and its apply reads back, typed end to end. */
export interface ChangeStep<Details = unknown, Step extends string = string> {
  stepId: Step;
  title: string;
  /** Who may approve; every tier by default. */
  allowedRoles?: ApproverRole[];
  /** Steps whose skip (rejected, expired, failed) skips this one too. */
  dependsOn?: Step[];
  /** A dry run: the exact change, or `needed: false`. Called again under the lock right before apply (once, under the lock, when a policy approves the step). */
  plan: () => Promise<PlannedChange<Details>>;
  /** Makes the change the approved plan describes; returns a one-line result. Must be idempotent. */
  apply: (planned: PlannedChange<Details>) => Promise<string>;
}

export type ChangeOutcome = 'planned' | 'applied' | 'not-needed' | 'rejected' | 'expired' | 'cancelled' | 'failed' | 'dependency-skipped';

/** How many times a changed plan may be put to people again before the step is given up. */
const maxReapprovals = 3;

/**
 * Timeline entries of a kind that anyone may cause without bound (alerts joining and resolving,
 * refused decisions) kept one by one; past this they are only counted. The timeline goes into the
 * result, the report activity's input and every status answer, so a storm must not grow them.
 */
const recordedPerKind = { alerts: 100, refused: 20 } as const;
type BoundedKind = keyof typeof recordedPerKind;

/** Text from a signal put in the timeline is cut to this (the signal's payload itself is in the history once). */
const maxSignalTextLength = 200;

/** Runs begun before remedies verified their effects: their verify steps were plain reads (or absent). */
export const verifyEffectsPatch = 'verify-effects';

/**
 * The kernel every runbook runs on: read steps, destructive steps behind plan and approval
 * (with escalation), the timeline, the status query, search attributes, the target lock and the
 * incident report. Deterministic: all I/O goes through activities.
 */
export class RunbookRun<Step extends string = string> {
  /** This workflow's run (module state is per workflow execution), for the interceptor that records an ending by error. */
  static current: RunbookRun | undefined;
  private readonly timeline: TimelineEntry[] = [];
  private readonly plan = new Map<string, PlannedStep>();
  private readonly stepOutcomes = new Map<Step, ChangeOutcome>();
  private readonly evidence: IncidentReport['evidence'] = [];
  private pending: PendingApproval | undefined;
  /** Approvals of the pending step so far, and a rejection (one vetoes). */
  private approvals: Approval[] = [];
  private veto: Approval | undefined;
  private required = 1;
  /** Signed statements already counted: each works once. */
  private readonly usedStatements = new Set<string>();
  /** Who the start proves (signed start, or the server's schedule record); undefined: a claim only. */
  private provenInitiator: string | undefined;
  private scheduleProof: ScheduleProof | undefined;
  private cancelRequest: CancelRequest | undefined;
  /** Temporal's cancellation was requested (and the run began after 'temporal-cancel-finishes'): it ends Canceled once cleaned up. */
  private cancelledInTemporal = false;
  /** The alerts that want this run, by Alertmanager fingerprint (alertFiring adds, alertResolved removes). */
  private readonly alertsFiring = new Map<string, string>();
  /** Bounded timeline: entries recorded and counted (past recordedPerKind) of each unbounded kind. */
  private readonly recordedOfKind: Record<BoundedKind, number> = { alerts: 0, refused: 0 };
  private readonly notRecordedOfKind: Record<BoundedKind, number> = { alerts: 0, refused: 0 };
  private timelineBounded: boolean | undefined;
  private readonly grantedLocks = new Set<string>();
  /** Lock releases sent and not yet confirmed: the run goes on, and waits for them before it ends. */
  private readonly releasesInFlight: Array<Promise<void>> = [];
  private state: RunbookStatus['state'] = 'running';
  private currentStep: string | undefined;
  private stepsDone = 0;
  private outcome: RunbookOutcome | undefined;
  /** Sentences of effects promised and not found by a verify step: the run ends failed with them. */
  private readonly brokenPromises: string[] = [];
  private report: RunbookResultBase['report'];
  /** A change was applied already: only the first one is timed from the start. */
  private changedYet = false;

  private constructor(
    readonly identity: RunbookIdentity,
    private readonly policy: ApprovalPolicy,
    /** The steps the runbook expects, in order; a step outside them (a failure path's evidence) joins when it runs. */
    private readonly steps: string[],
  ) {}

  /**
   * Registers the run's handlers and search attributes and loads the approval policy. Call first,
   * with the ids of the steps this run expects in order (its status shows them as its progress).
   */
  static async begin<const Step extends string>(entry: RunbookEntry, input: RunInput, steps: readonly Step[]): Promise<RunbookRun<Step>> {
    const target = entry.targetOf(input);
    // Sorted: runs that share objects take their locks in one order, so none waits for another holding what it needs.
    const locks = [...new Set([target, ...(entry.locksOf?.(input) ?? [])])].sort();
    const identity: RunbookIdentity = { name: entry.name, kind: entry.kind, target, locks, ...runFields(input) };
    upsertSearchAttributes([
      { key: runbookName, value: identity.name },
      { key: runbookSeverity, value: identity.severity },
      { key: runbookTarget, value: identity.target },
      { key: runbookMode, value: identity.mode },
      { key: runbookApprovalState, value: 'none' },
    ]);
    const run = new RunbookRun<Step>(identity, { approvers: [], escalation: { P0: '15m', P1: '1h', P2: '4h', P3: '24h' }, autoApprove: [] }, [...steps]);
    RunbookRun.current = run;
    runMetrics.started(identity.name);
    run.registerHandlers();
    const policy = await read.loadApprovalPolicy({ runbook: identity.name });
    Object.assign(run.policy, policy);
    const proof = run.verifiedStart();
    run.provenInitiator = proof?.signer;
    const initiator = proof ? `; initiator ${proof.signer} proven by key ${proof.fingerprint}` : run.policy.requireSignatures ? '; initiator not proven (unsigned start)' : '';
    run.record({ event: 'started', by: identity.startedBy, detail: `${identity.mode} mode, ${identity.severity}, target ${identity.target}${initiator}` });
    if (run.policy.requireSignatures === false) log.warn('approvals are UNVERIFIED: no approver has a public key, so identities are claims');
    return run;
  }

  /**
   * The signer of the start's signed statement, checked in workflow code against the keys of
   * configuration. A statement that does not hold fails the run before anything is read: a start
   * that claims a proof it does not have is refused, not downgraded.
   */
  private verifiedStart(): { signer: string; fingerprint: string } | undefined {
    const proof = this.identity.startProof;
    if (!proof) return undefined;
    const refuse = (why: string): never => {
      throw failure('InvalidInput', `the signed start is refused: ${why}`);
    };
    const parsed = parseStatement(startStatementSchema, proof.statement);
    if (!parsed.ok) return refuse(parsed.reason);
    const s = parsed.statement;
    const info = workflowInfo();
    if (s.temporalNamespace !== info.namespace || s.workflowId !== info.workflowId) refuse(`it is for ${s.workflowId} in namespace ${s.temporalNamespace}`);
    if (s.runbook !== this.identity.name) refuse(`it starts ${s.runbook}, not ${this.identity.name}`);
    if (s.inputDigest !== this.identity.inputDigest) refuse('it was signed for another input');
    if (s.startedBy !== this.identity.startedBy) refuse(`it names ${s.startedBy} as the initiator, the input ${this.identity.startedBy}`);
    const late = timeProblem(s, info.runStartTime.getTime(), durationMs(this.policy.statementLifetime ?? '10m'));
    if (late) refuse(late);
    const signer = this.policy.approvers.find((a) => a.id === s.signer);
    if (!signer?.publicKey) return refuse(`${s.signer} is not a configured identity with a public key`);
    if (signer.kind === 'channel') refuse(`${s.signer} is a channel: channels vouch for decisions, they start nothing`);
    if ((signer.kind ?? 'person') === 'person' && s.signer !== s.startedBy) refuse(`${s.signer} signed a start for ${s.startedBy}; a person signs only their own starts`);
    const signature = verifySshSignature(signer.publicKey, signatureNamespace, proof.statement, proof.signature);
    if (!signature.ok) return refuse(`not signed by ${s.signer}: ${signature.reason}`);
    return { signer: s.signer, fingerprint: signature.fingerprint };
  }

  /**
   * Whether a Temporal Schedule of this deployment started the run, asked of the server once.
   * Runs recorded before that trusted their input's `scheduled`, and still do on replay.
   */
  private async startedBySchedule(): Promise<ScheduleProof> {
    if (!patched('proven-schedules')) return { proven: this.identity.scheduled, detail: 'the input says so' };
    this.scheduleProof ??= await read.proveScheduledStart();
    return this.scheduleProof;
  }

  private enter(stepId: string): void {
    this.currentStep = stepId;
    if (!this.steps.includes(stepId)) this.steps.push(stepId);
  }

  /** The texts of the run's language, for whatever it writes for people. */
  get texts(): Texts {
    return textsFor(this.identity.language);
  }

  get cancelled(): boolean {
    return this.cancelRequest !== undefined;
  }

  /** A read-only step: runs in both modes and is recorded with a one-line result. */
  async read<T>(stepId: Step, title: string, fn: () => Promise<T>, describe?: (result: T) => string): Promise<T> {
    return this.step(stepId, title, async () => {
      const result = await fn();
      this.record({ event: 'read', stepId, title, detail: describe?.(result) });
      return result;
    });
  }

  /** A step that only reads: entered, recorded `failed` with the error if it throws, counted as done either way. */
  private async step<T>(stepId: Step, title: string, body: () => Promise<T>): Promise<T> {
    this.enter(stepId);
    try {
      return await body();
    } catch (err) {
      this.record({ event: 'failed', stepId, title, detail: errorText(err) });
      throw err;
    } finally {
      this.stepsDone++;
      this.currentStep = undefined;
    }
  }

  /**
   * A remedy's last step: reads the real system until every effect the applied steps promised
   * holds (recorded "verified: …") or `withinSeconds` is over; then each missing effect is recorded
   * as "<runbook> promised X, but Y" and the run ends failed with that sentence. Returns the state
   * last read (undefined for runs recorded before this check where the step did not exist).
   */
  async verify<State>(stepId: Step, title: string, check: EffectCheck<State>): Promise<State | undefined> {
    if (!patched(verifyEffectsPatch)) {
      if (check.before === 'no step') return undefined;
      return this.read(stepId, title, check.before === 'same read' ? check.read : check.before, check.describe);
    }
    if (check.effects.length === 0) return this.read(stepId, title, check.read, check.describe);
    return this.step(stepId, title, async () => {
      const deadline = Date.now() + (check.withinSeconds ?? 30) * 1000;
      for (let waitMs: number | undefined; ;) {
        const state = await check.read();
        const missing = check.effects.filter((e) => !e.holds(state));
        if (missing.length === 0) {
          this.record({ event: 'verified', stepId, title, detail: keptPromises(check.effects, state) });
          return state;
        }
        waitMs = nextWaitMs(waitMs);
        if (Date.now() + waitMs > deadline) {
          const sentences = missing.map((e) => brokenPromise(this.identity.name, e.promised, e.found(state)));
          this.brokenPromises.push(...sentences);
          this.record({ event: 'failed', stepId, title, detail: `${sentences.join('; ')} (${check.describe(state)})` });
          return state;
        }
        await sleep(waitMs);
      }
    });
  }

  /**
   * Changes to the cluster a read step found (e.g. in the API audit log), each recorded at the
   * time it happened with who made it: the report's timeline lists them among the run's own entries by time.
   */
  recordFound(stepId: Step, changes: Array<{ at: string; by: string; title: string; detail?: string }>): void {
    for (const c of changes) {
      this.timeline.push({ at: c.at, event: 'changed', stepId, title: c.title, by: c.by, ...(c.detail ? { detail: c.detail } : {}) });
    }
    if (changes.length > 0) this.showDetails();
  }

  /** Evidence written to S3 by an activity: only its key, size and digest enter the history. */
  addEvidence(item: IncidentReport['evidence'][number]): void {
    this.evidence.push(item);
  }

  /** A destructive step: planned by a dry run; in execute mode approved, re-planned, then applied. */
  async change<Details>(step: ChangeStep<Details, Step>): Promise<ChangeOutcome> {
    this.enter(step.stepId);
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

  outcomeOf(stepId: Step): ChangeOutcome | undefined {
    return this.stepOutcomes.get(stepId);
  }

  /** The step's change was applied (not planned only, skipped, rejected or failed). */
  applied(stepId: Step): boolean {
    return this.outcomeOf(stepId) === 'applied';
  }

  /** A step's last plan; undefined when it was never planned (skipped before, or not reached). */
  plannedStep(stepId: Step): PlannedStep | undefined {
    return this.plan.get(stepId);
  }

  /** The timeline so far (a copy), or only the entries of one step. */
  timelineOf(stepId?: Step): TimelineEntry[] {
    return stepId === undefined ? [...this.timeline] : this.timeline.filter((e) => e.stepId === stepId);
  }

  /**
   * Undoes part of an approved change after a later step of it failed or was not applied (e.g. the
   * old password back after a failed rollout). Approved with the change it undoes, so it runs at
   * once (under the target's lock, like any apply); recorded as applied or failed, and not
   * counted as a step outcome.
   */
  async compensate(stepId: Step, title: string, fn: () => Promise<string>): Promise<boolean> {
    this.enter(stepId);
    // Not given up on cancellation: it undoes part of a change already made.
    const locks = (await this.acquireLocks({ cancellable: false }))!;
    try {
      const result = await fn();
      this.record({ event: 'applied', stepId, title, detail: result });
      return true;
    } catch (err) {
      this.record({ event: 'failed', stepId, title, detail: errorText(err) });
      return false;
    } finally {
      await this.releaseLocks(locks);
      this.currentStep = undefined;
    }
  }

  private async runChange<Details>(step: ChangeStep<Details, Step>): Promise<ChangeOutcome> {
    // In plan mode a planned dependency counts as done, so the plan shows the whole chain.
    const satisfied: Array<ChangeOutcome | undefined> = this.identity.mode === 'plan' ? ['applied', 'not-needed', 'planned'] : ['applied', 'not-needed'];
    const skippedDependency = step.dependsOn?.find((id) => !satisfied.includes(this.stepOutcomes.get(id)));
    if (skippedDependency) return this.skip(step, 'dependency-skipped', `depends on "${skippedDependency}", which was not applied`);
    if (this.cancelled) return this.skip(step, 'cancelled', 'run cancelled before this step');
    if ([...this.stepOutcomes.values()].includes('failed')) return this.skip(step, 'dependency-skipped', 'an earlier step failed');

    // A step a policy approves needs no person's look at the plan: it is planned once, under the lock, and applied.
    let policyChecked = false;
    if (this.identity.mode === 'execute' && this.policy.autoApprove.some((p) => p.steps.includes(step.stepId)) && patched('policy-approved-step-planned-once-under-lock')) {
      const policy = await this.autoApproval(step.stepId);
      if (policy) return this.applyApprovedByPolicy(step, policy);
      policyChecked = true;
    }

    let planned = await this.planStep(step);
    if (!planned.change.needed) return this.skip(step, 'not-needed', `nothing to change: ${planned.change.summary}`);
    if (this.identity.mode === 'plan') return 'planned';

    for (let round = 0; round <= maxReapprovals; round++) {
      const verdict = await this.awaitDecision(planned, policyChecked);
      if (verdict !== 'approve') return this.skip(step, verdict, verdict === 'expired' ? 'approval expired after the last escalation tier' : undefined);
      const locks = await this.acquireLocks({ cancellable: patched('lock-wait-honours-cancel') });
      if (!locks) return this.skip(step, 'cancelled', 'run cancelled while waiting for the lock');
      try {
        const replanned = await this.planStep(step);
        if (replanned.planHash !== planned.planHash) {
          this.record({ event: 'replanned', stepId: step.stepId, title: step.title, detail: `the target changed since approval: ${replanned.change.summary}` });
          if (!replanned.change.needed) return this.skip(step, 'not-needed', 'the target no longer needs this change');
          planned = replanned;
          continue;
        }
        return await this.apply(step, planned);
      } finally {
        await this.releaseLocks(locks);
      }
    }
    return this.skip(step, 'rejected', `the plan kept changing; asked ${maxReapprovals + 1} times`);
  }

  /** Under the run's locks: the plan, the policy's decision, the apply. */
  private async applyApprovedByPolicy<Details>(step: ChangeStep<Details, Step>, policy: PolicyApproval): Promise<ChangeOutcome> {
    const locks = await this.acquireLocks({ cancellable: true });
    if (!locks) return this.skip(step, 'cancelled', 'run cancelled while waiting for the lock');
    try {
      const planned = await this.planStep(step);
      if (!planned.change.needed) return this.skip(step, 'not-needed', `nothing to change: ${planned.change.summary}`);
      this.recordPolicyApproval(planned, policy);
      return await this.apply(step, planned);
    } finally {
      await this.releaseLocks(locks);
    }
  }

  private async apply<Details>(step: ChangeStep<Details, Step>, planned: PlannedStep & { change: PlannedChange<Details> }): Promise<ChangeOutcome> {
    if (this.cancelled) return this.skip(step, 'cancelled', 'run cancelled before apply');
    try {
      const result = await step.apply(planned.change);
      this.record({ event: 'applied', stepId: step.stepId, title: step.title, detail: result });
      if (!this.changedYet) runMetrics.firstChange(this.identity.name, (Date.now() - workflowInfo().startTime.getTime()) / 1000);
      this.changedYet = true;
      return 'applied';
    } catch (err) {
      this.record({ event: 'failed', stepId: step.stepId, title: step.title, detail: errorText(err) });
      return 'failed';
    }
  }

  private async planStep<Details>(step: ChangeStep<Details, Step>): Promise<PlannedStep & { change: PlannedChange<Details> }> {
    const change = await step.plan();
    const { observed: _observed, ...binding } = change;
    const planHash = sha256Hex(stableJson({ stepId: step.stepId, change: binding }));
    const planned = { stepId: step.stepId, title: step.title, change, planHash, allowedRoles: step.allowedRoles ?? [...roles] };
    this.plan.set(step.stepId, planned);
    this.record({ event: 'planned', stepId: step.stepId, title: step.title, detail: `${change.summary} (plan ${planHash.slice(0, 12)})` });
    return planned;
  }

  private skip(step: Pick<ChangeStep<unknown, Step>, 'stepId' | 'title'>, outcome: ChangeOutcome, reason?: string): ChangeOutcome {
    this.record({ event: 'skipped', stepId: step.stepId, title: step.title, detail: reason ?? outcome });
    return outcome;
  }

  /** A policy that approves this step of this run without a person, if any. */
  private async autoApproval(stepId: string): Promise<PolicyApproval | undefined> {
    for (const policy of this.policy.autoApprove.filter((p) => p.steps.includes(stepId))) {
      if (!policy.onlyScheduled) return { name: policy.name };
      const proof = await this.startedBySchedule();
      if (proof.proven) return { name: policy.name, detail: proof.detail };
      if (proof.scheduleId) {
        this.record({ event: 'refused', stepId, by: `policy ${policy.name}`, channel: 'policy', detail: `policy ${policy.name} does not apply: ${proof.detail}` });
        runMetrics.refusal(this.identity.name, 'policy-not-applicable', 'policy');
      }
    }
    return undefined;
  }

  /**
   * Distinct approvals a step needs: the largest matching quorum rule, and at least two when
   * decisions are verified but the initiator is not proven (they could be anyone).
   */
  private async requiredApprovals(stepId: string): Promise<number> {
    const rules = (this.policy.quorum ?? []).filter((r) => (!r.steps || r.steps.includes(stepId)) && (!r.severities || r.severities.includes(this.identity.severity)));
    const quorum = Math.max(1, ...rules.map((r) => r.approvals));
    if (!this.policy.requireSignatures) return quorum;
    if (!this.provenInitiator) {
      const proof = await this.startedBySchedule();
      if (proof.proven) this.provenInitiator = `schedule:${proof.scheduleId}`;
    }
    return this.provenInitiator ? quorum : Math.max(quorum, 2);
  }

  /** Waits for people's decisions (a quorum, or one veto), escalating tier by tier on durable timers; a policy may decide at once. */
  private async awaitDecision(planned: PlannedStep, policyChecked = false): Promise<'approve' | 'rejected' | 'expired' | 'cancelled'> {
    const policy = policyChecked ? undefined : await this.autoApproval(planned.stepId);
    if (policy) {
      this.recordPolicyApproval(planned, policy);
      return 'approve';
    }
    this.approvals = [];
    this.veto = undefined;
    this.required = await this.requiredApprovals(planned.stepId);
    this.state = 'waiting-for-approval';
    upsertSearchAttributes([{ key: runbookApprovalState, value: 'pending' }]);
    const waitPerTier = this.policy.escalation[this.identity.severity];
    const tiers = roles.filter((tier) => planned.allowedRoles.includes(tier));
    const requestedAt = Date.now();
    let lastTier: ApproverRole | undefined;
    for (const [index, tier] of tiers.entries()) {
      lastTier = tier;
      this.pending = {
        stepId: planned.stepId,
        title: planned.title,
        planHash: planned.planHash,
        change: planned.change,
        allowedRoles: planned.allowedRoles,
        approvers: this.policy.approvers
          .filter((a) => (a.kind ?? 'person') === 'person' && a.id !== this.identity.startedBy && a.id !== this.provenInitiator && a.roles.some((r) => planned.allowedRoles.includes(r)))
          .map((a) => a.id),
        tier,
        until: new Date(Date.now() + durationMs(waitPerTier)).toISOString(),
        required: this.required,
        verification: this.policy.requireSignatures ? 'signed' : 'unverified',
        ...(this.provenInitiator ? { provenInitiator: this.provenInitiator } : {}),
      };
      const needs = this.required > 1 ? `, needs ${this.required} distinct approvals${this.policy.requireSignatures && !this.provenInitiator ? ' (the initiator is not proven)' : ''}` : '';
      const unverified = this.policy.requireSignatures ? '' : ', UNVERIFIED (no approver keys configured)';
      this.record({ event: index === 0 ? 'requested' : 'escalated', stepId: planned.stepId, title: planned.title, detail: `tier ${tier}, waiting until ${this.pending.until}${needs}${unverified}` });
      await this.notifyTier(planned, tier);
      const summary = `approval of "${planned.stepId}" by tier ${tier}, until ${this.pending.until}`;
      if (await condition(() => this.quorumMet || this.veto !== undefined || this.cancelled, waitPerTier, { summary })) break;
    }
    this.pending = undefined;
    this.state = 'running';
    this.showDetails();
    const decision = this.decisionMade();
    runMetrics.approvalWait(this.identity.name, lastTier ?? 'none', decision, (Date.now() - requestedAt) / 1000);
    upsertSearchAttributes([{ key: runbookApprovalState, value: decision === 'cancelled' ? 'none' : decision }]);
    return decision === 'approved' ? 'approve' : decision;
  }

  /** How the approval wait just over ended. */
  private decisionMade(): 'approved' | 'rejected' | 'expired' | 'cancelled' {
    if (this.cancelled) return 'cancelled';
    if (this.veto) return 'rejected';
    return this.quorumMet ? 'approved' : 'expired';
  }

  private recordPolicyApproval(planned: PlannedStep, policy: PolicyApproval): void {
    const reason = `approved by policy ${policy.name}${policy.detail ? ` (${policy.detail})` : ''}`;
    this.record({ event: 'decided', stepId: planned.stepId, title: planned.title, by: `policy ${policy.name}`, channel: 'policy', reason });
    runMetrics.autoApproval(this.identity.name, policy.name);
    upsertSearchAttributes([{ key: runbookApprovalState, value: 'approved' }]);
  }

  private get quorumMet(): boolean {
    return this.approvals.length >= this.required;
  }

  private async notifyTier(planned: PlannedStep, tier: ApproverRole): Promise<void> {
    const { workflowId, originalExecutionRunId: runId } = workflowInfo();
    try {
      const t = this.texts;
      const label = t.fieldLabels;
      await read.notify({
        title: t.approvalNeeded(t.runbook(this.identity.name), planned.title, t.tier(tier)),
        text: planned.change.summary,
        severity: this.identity.severity,
        fields: {
          [label.run]: workflowId,
          [label.target]: this.identity.target,
          [label.step]: planned.stepId,
          [label.plan]: planned.planHash,
          [label.decideBy]: this.pending?.until ?? '',
          [label.approvals]: t.approvalCount(this.approvals.length, this.required, this.policy.requireSignatures === true),
          [label.approve]: `runbook approve ${workflowId} --step ${planned.stepId} --plan ${planned.planHash} --reason "..."`,
        },
        dedupeKey: `${workflowId}/${planned.stepId}/${planned.planHash.slice(0, 12)}/${tier}`,
        approval: { workflowId, runId, stepId: planned.stepId, planHash: planned.planHash },
      });
    } catch (err) {
      // A notification that cannot be delivered must not stop the approval wait.
      this.record({ event: 'failed', stepId: planned.stepId, title: `notify ${tier}`, detail: errorText(err) });
    }
  }

  /**
   * Takes the run's locks (durable, FIFO each) around a re-plan and apply, one at a time in sorted
   * order. Runs recorded before a run locked every object it changes take only their target's.
   * Undefined when the run was cancelled while waiting: it leaves the queue and releases what it got.
   */
  private async acquireLocks({ cancellable }: { cancellable: boolean }): Promise<LockHeld[] | undefined> {
    const names = this.identity.locks.length > 1 && patched('runbook-locks-every-changed-object') ? this.identity.locks : [this.identity.target];
    const { workflowId, runId } = workflowInfo();
    const held: LockHeld[] = [];
    this.state = 'waiting-for-lock';
    try {
      for (const name of names) {
        const request: LockRequest = { requester: workflowId, runId, requestId: uuid4() };
        await read.requestTargetLock({ target: name, request }).catch(async (err: unknown) => {
          await this.releaseLocks(held); // those granted so far; the run fails with the error
          throw err;
        });
        held.push({ name, request });
        await condition(() => this.grantedLocks.has(request.requestId) || (cancellable && this.cancelled));
        if (!this.grantedLocks.has(request.requestId)) {
          await this.releaseLocks(held);
          return undefined;
        }
        this.record({ event: 'locked', detail: `lock on ${name}` });
      }
      return held;
    } finally {
      this.state = 'running';
    }
  }

  /**
   * In reverse order; a request not granted yet leaves the queue. The run goes on without waiting
   * for the lock workflow to confirm (runs recorded before waited for each), and waits for every
   * confirmation before it ends (releasesDelivered): a signal still in flight when the run
   * completes would never be delivered.
   */
  private async releaseLocks(held: LockHeld[]): Promise<void> {
    const waitForEach = !patched('lock-release-confirmed-before-the-run-ends');
    for (const { name, request } of [...held].reverse()) {
      const granted = this.grantedLocks.delete(request.requestId);
      this.record({ event: 'unlocked', detail: granted ? `lock on ${name}` : `left the queue of the lock on ${name}` });
      const sent = getExternalWorkflowHandle(lockWorkflowId(name))
        .signal(releaseLockSignal, request)
        .catch((err: unknown) => log.warn('could not release the lock; it passes on when this run ends', { lock: name, error: errorText(err) }));
      if (waitForEach) await sent;
      else this.releasesInFlight.push(sent);
    }
  }

  /** Every lock release sent so far confirmed by its lock workflow; the run ends only after this. */
  async releasesDelivered(): Promise<void> {
    await Promise.all(this.releasesInFlight.splice(0));
  }

  private registerHandlers(): void {
    /** Each refusal is counted once: an Update's by its validator, a Signal's by its handler. */
    const check = (decision: Decision, verdict: DecisionVerdict, channel: DecisionChannel) => {
      // The run id a statement binds is the one kept across resets, so replays after a reset still agree.
      const { namespace, workflowId, originalExecutionRunId: runId } = workflowInfo();
      const checked = checkDecision(decision, verdict, {
        pending: this.pending,
        startedBy: this.identity.startedBy,
        provenInitiator: this.provenInitiator,
        approvers: this.policy.approvers,
        requireSignatures: this.policy.requireSignatures ?? false,
        run: { namespace, workflowId, runId },
        now: Date.now(),
        maxLifetimeMs: durationMs(this.policy.statementLifetime ?? '10m'),
        usedStatements: this.usedStatements,
        approvedBy: this.approvals.map((a) => a.approver),
        decided: this.quorumMet || this.veto !== undefined,
      });
      if (!checked.ok) runMetrics.refusal(this.identity.name, checked.reason, channel);
      return checked;
    };
    const accept =
      (verdict: DecisionVerdict, channel: DecisionChannel) =>
      (decision: Decision): DecisionReceipt | undefined => {
        const checked = check(decision, verdict, channel);
        if (!checked.ok) {
          if (channel === 'signal') this.recordRefusal(decision, checked.refusal);
          return undefined;
        }
        const accepted: Approval = { ...checked.decision, channel };
        if (accepted.statement) this.usedStatements.add(accepted.statement);
        if (verdict === 'reject') this.veto = accepted;
        else this.approvals.push(accepted);
        this.recordDecision(accepted, verdict);
        const { stepId, approver, role, verified, keyFingerprint } = accepted;
        return { stepId, verdict, approver, role, verified, ...(keyFingerprint ? { keyFingerprint } : {}), approvals: this.approvals.length, required: this.required };
      };
    const validator = (verdict: DecisionVerdict) => (decision: Decision) => {
      const checked = check(decision, verdict, 'update');
      if (!checked.ok) throw new Error(checked.refusal);
    };
    const described = messageDescriptions;
    setHandler(approveUpdate, (d) => accept('approve', 'update')(d)!, { validator: validator('approve'), description: described.approve });
    setHandler(rejectUpdate, (d) => accept('reject', 'update')(d)!, { validator: validator('reject'), description: described.reject });
    setHandler(approveSignal, (d) => void accept('approve', 'signal')(d), { description: described.approveSignal });
    setHandler(rejectSignal, (d) => void accept('reject', 'signal')(d), { description: described.rejectSignal });
    setHandler(cancelSignal, (request) => this.requestCancel(request ?? { by: 'unknown' }), { description: described.cancel });
    setHandler(alertFiringSignal, (firing) => this.alertFiring(firing), { description: described.alertFiring });
    setHandler(alertResolvedSignal, (resolved) => this.alertResolved(resolved ?? {}), { description: described.alertResolved });
    setHandler(lockGrantedSignal, ({ requestId }) => void this.grantedLocks.add(requestId), { description: lockMessageDescriptions.lockGranted });
    setHandler(statusQuery, () => this.status(), { description: described.status });
  }

  private recordDecision(decision: Approval, verdict: DecisionVerdict): void {
    const count = this.required > 1 ? (verdict === 'approve' ? ` (${this.approvals.length} of ${this.required})` : ' (veto)') : '';
    const vouched = decision.vouchedBy ? `, vouched for by ${decision.vouchedBy}` : '';
    this.record({
      event: 'decided',
      stepId: decision.stepId,
      title: this.pending?.title,
      by: decision.approver,
      role: decision.role,
      channel: decision.channel,
      reason: decision.reason,
      detail: `${verdict === 'approve' ? 'approved' : 'rejected'}${count}${vouched}`,
      verified: decision.verified,
      ...(decision.keyFingerprint ? { keyFingerprint: decision.keyFingerprint } : {}),
    });
  }

  /** An alert wants this run (idempotent: an alert already recorded changes nothing). */
  private alertFiring({ alert, fingerprint }: { alert?: string; fingerprint?: string } = {}): void {
    if (!fingerprint || this.alertsFiring.has(fingerprint)) return;
    const name = alert || 'unknown alert';
    this.alertsFiring.set(fingerprint, name);
    // Each alert once, not the whole list each time: 400 alerts made 80,000 list items (the status still lists them).
    if (this.isTimelineBounded())
      return this.recordBounded('alerts', { event: 'alert-firing', by: 'alerting', detail: `alert ${this.alertText(name, fingerprint)} joined; ${this.alertsFiring.size} firing` });
    this.record({ event: 'alert-firing', by: 'alerting', detail: `alert ${name} (${fingerprint}) joined; firing: ${this.firingList()}` });
  }

  /**
   * An alert went away. Without a fingerprint (older clients and histories): stop, as always.
   * With one: forget that alert; stop only when no alert still wants the run. A fingerprint the
   * run does not know changes nothing, except on a run that recorded no alert at all (started
   * before alerts were tracked): there the alert that started the run stops it, as before.
   */
  private alertResolved({ alert, fingerprint }: { alert?: string; fingerprint?: string }): void {
    const reason = `alert resolved${alert ? `: ${alert.slice(0, maxSignalTextLength)}` : ''}`;
    if (!fingerprint) return this.requestCancel({ by: 'alerting', reason });
    const wanted = this.alertsFiring.delete(fingerprint);
    if (this.alertsFiring.size > 0) {
      if (!wanted) return;
      if (this.isTimelineBounded())
        return this.recordBounded('alerts', {
          event: 'alert-resolved',
          by: 'alerting',
          detail: `alert ${this.alertText(alert || 'unknown alert', fingerprint)} resolved; ${this.alertsFiring.size} still firing`,
        });
      this.record({ event: 'alert-resolved', by: 'alerting', detail: `alert ${alert || 'unknown alert'} (${fingerprint}) resolved; still firing: ${this.firingList()}` });
      return;
    }
    if (wanted || (alert !== undefined && alertInitiator(alert) === this.identity.startedBy)) this.requestCancel({ by: 'alerting', reason });
  }

  private firingList(): string {
    return [...this.alertsFiring].map(([fingerprint, alert]) => `${alert} (${fingerprint})`).join(', ');
  }

  private alertText(alert: string, fingerprint: string): string {
    return `${alert.slice(0, maxSignalTextLength)} (${fingerprint.slice(0, maxSignalTextLength)})`;
  }

  /** A decision sent as a signal and refused: recorded (its reason cut short) up to a bound, then counted. */
  private recordRefusal(decision: Decision | undefined, refusal: string): void {
    const entry = { event: 'refused' as const, stepId: decision?.stepId, by: decision?.approver, channel: 'signal' as const, reason: decision?.reason, detail: refusal };
    if (!this.isTimelineBounded()) return this.record(entry);
    const cut = (text: unknown, length = maxSignalTextLength) => (typeof text === 'string' ? text.slice(0, length) : undefined);
    // The refusal is the kernel's sentence, longer than any field it quotes: a little more room.
    this.recordBounded('refused', { ...entry, stepId: cut(entry.stepId), by: cut(entry.by), reason: cut(entry.reason), detail: cut(refusal, 3 * maxSignalTextLength) });
  }

  /** Runs begun before the timeline was bounded keep recording everything, so their histories replay alike. */
  private isTimelineBounded(): boolean {
    return (this.timelineBounded ??= patched('bounded-timeline'));
  }

  private recordBounded(kind: BoundedKind, entry: Omit<TimelineEntry, 'at'>): void {
    if (this.recordedOfKind[kind] >= recordedPerKind[kind]) {
      this.notRecordedOfKind[kind] += 1;
      return;
    }
    this.recordedOfKind[kind] += 1;
    this.record(entry);
  }

  /** One entry per kind that went past its bound: how many were only counted. */
  private recordNotRecorded(): void {
    const what: Record<BoundedKind, string> = { alerts: 'alert joins and resolutions', refused: 'refused decisions' };
    for (const kind of Object.keys(recordedPerKind) as BoundedKind[]) {
      const count = this.notRecordedOfKind[kind];
      if (count > 0) this.record({ event: 'not-recorded', detail: `${count} further ${what[kind]} after the first ${recordedPerKind[kind]}, counted only` });
    }
  }

  /**
   * Temporal's cancellation request (the UI's Request Cancellation, `runbook cancel`, the API),
   * taken as the run's cancel: no further destructive step, then the run finishes its cleanup and
   * ends Canceled (kernel/interceptors.ts). Who and why come from a cancel message sent first.
   */
  cancelFromTemporal(): void {
    this.cancelledInTemporal = true;
    this.requestCancel({ by: 'temporal', reason: 'cancellation requested in Temporal' });
  }

  get endsCanceled(): boolean {
    return this.cancelledInTemporal;
  }

  /** The sentence a run that ends Canceled ends with: who cancelled, and its `finished` entry. */
  cancelledSentence(): string {
    const finished = [...this.timeline].reverse().find((e) => e.event === 'finished');
    const why = this.cancelRequest?.reason ? ` ("${this.cancelRequest.reason}")` : '';
    return `cancelled by ${this.cancelRequest?.by ?? 'temporal'}${why}${finished?.detail ? `; ${finished.detail}` : ''}`;
  }

  private requestCancel(request: CancelRequest): void {
    if (this.cancelRequest) return;
    this.cancelRequest = request;
    this.record({ event: 'cancelled', by: request.by, reason: request.reason, detail: 'no further destructive step will run' });
  }

  status(): RunbookStatus {
    return {
      runbook: this.identity.name,
      runId: workflowInfo().originalExecutionRunId,
      mode: this.identity.mode,
      severity: this.identity.severity,
      target: this.identity.target,
      startedBy: this.identity.startedBy,
      state: this.outcome ? 'finished' : this.state,
      currentStep: this.currentStep,
      stepsDone: this.stepsDone,
      stepsDeclared: this.steps.length,
      steps: [...this.steps],
      pending: this.pending && {
        ...this.pending,
        approvals: this.approvals.map(({ approver, role, verified, keyFingerprint }) => ({ approver, role, verified, ...(keyFingerprint ? { keyFingerprint } : {}) })),
      },
      plan: [...this.plan.values()],
      timeline: [...this.timeline],
      outcome: this.outcome,
      ...(this.report ? { report: this.report } : {}),
      ...(this.alertsFiring.size > 0 ? { alertsFiring: [...this.alertsFiring].map(([fingerprint, alert]) => ({ alert, fingerprint })) } : {}),
    };
  }

  private record(entry: Omit<TimelineEntry, 'at'>): void {
    this.timeline.push({ at: new Date().toISOString(), ...entry });
    this.showDetails();
  }

  /** The Temporal UI's Current Details: set after each change (no command, so replays are unaffected). */
  private showDetails(): void {
    setCurrentDetails(currentDetails(workflowInfo().workflowId, this.status(), this.texts));
  }

  /** The run's outcome from its steps: what a person reading the result needs first. */
  private decideOutcome(): RunbookOutcome {
    const outcomes = [...this.stepOutcomes.values()];
    // Ends Canceled in Temporal: the outcome says the same.
    if (this.cancelledInTemporal) return 'cancelled';
    if (this.identity.mode === 'plan') return 'planned';
    if (outcomes.includes('failed') || this.brokenPromises.length > 0) return 'failed';
    if (this.cancelled) return 'cancelled';
    if (outcomes.includes('expired')) return 'expired';
    const applied = outcomes.filter((o) => o === 'applied').length;
    const rejected = outcomes.some((o) => o === 'rejected' || o === 'dependency-skipped');
    if (applied === 0 && rejected) return 'rejected';
    if (applied > 0 && rejected) return 'partially-applied';
    return applied > 0 ? 'completed' : 'nothing-to-do';
  }

  /** The run ended by an error instead of finish(): its status and timeline say so (see kernel/interceptors.ts). */
  endedByError(err: unknown, cancelled: boolean): void {
    // After finish() began (its report failed), the run still ends failed: the earlier entry is not the end.
    const after = this.outcome ? ` (its steps had ended ${this.outcome})` : '';
    this.outcome = cancelled ? 'cancelled' : 'failed';
    if (!after) this.recordNotRecorded();
    this.record({ event: 'finished', detail: `${this.outcome}${after}: ${errorText(err)}` });
    runMetrics.finished(this.identity.name, this.outcome);
  }

  /** Ends the run: outcome, and for a runbook that states its findings (every one but the checklists, which write their own) the incident report in S3. */
  async finish(stepsSummary: string, findings?: IncidentFindings): Promise<RunbookResultBase> {
    // An effect promised and not found is what a person reading the result needs first.
    const summary = this.brokenPromises.length > 0 ? `${this.brokenPromises.join('. ')}. ${stepsSummary}` : stepsSummary;
    this.outcome = this.decideOutcome();
    this.recordNotRecorded();
    this.record({ event: 'finished', detail: `${this.outcome}: ${summary}` });
    const result: RunbookResultBase = { outcome: this.outcome, summary, plan: [...this.plan.values()], timeline: [...this.timeline] };
    if (findings) {
      const { workflowId, runId } = workflowInfo();
      result.report = await read.writeIncidentReport({
        ...findings,
        runbook: this.identity.name,
        workflowId,
        runId,
        target: this.identity.target,
        severity: this.identity.severity,
        mode: this.identity.mode,
        startedBy: this.identity.startedBy,
        outcome: this.outcome,
        language: this.identity.language,
        summary,
        plan: result.plan,
        timeline: result.timeline,
        evidence: this.evidence,
      });
      this.report = result.report;
      this.showDetails();
    }
    // Counted once the report is written: a run whose report fails ends by error, counted there.
    runMetrics.finished(this.identity.name, this.outcome);
    return result;
  }
}

export { durationMs };

/** The incident report's solution for a plan-mode run: what would be done, and that nothing was. */
export function planOnly(what: string): string {
  return `Plan only (nothing changed): ${what}.`;
}

/** The incident report's impact for a plan-mode run, with the state the run found. */
export function planModeImpact(state: string): string {
  return `None from this run (plan mode). ${state}`;
}

/** The incident report's impact when no change was applied. */
export const nothingChanged = 'Nothing was changed.';
