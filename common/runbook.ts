import { z } from 'zod';
import { signedStatementSchema } from './approval-statements';
import { languages } from './texts';

/** Types shared by the kernel (workflows), the client API and the CLI. */

export const severities = ['P0', 'P1', 'P2', 'P3'] as const;
export type Severity = (typeof severities)[number];

/**
 * A run's task-queue priority from its severity (Temporal runs lower keys first; unset is 3): on a
 * busy queue a P0 remediation is never queued behind checklists (P3). Activities inherit it.
 */
export const priorityOf = (severity: Severity): { priorityKey: number } => ({ priorityKey: severities.indexOf(severity) + 1 });
export const modes = ['plan', 'execute'] as const;
export type Mode = (typeof modes)[number];
export const roles = ['l1', 'l2', 'manager', 'cto'] as const;
export type ApproverRole = (typeof roles)[number];

/** The escalation tiers from `lowest` up: who may approve a step that needs at least that tier. */
export function rolesFrom(lowest: ApproverRole): ApproverRole[] {
  return roles.slice(roles.indexOf(lowest));
}

/** Fields every runbook input has, whatever its targets. */
export const runbookInputBase = {
  mode: z.enum(modes, { message: 'expected "plan" or "execute"' }).default('plan'),
  severity: z.enum(severities, { message: 'expected one of P0, P1, P2, P3' }).default('P2'),
  /** Who started the run: they may not approve its steps (four-eyes). */
  startedBy: z.string().min(1, { message: 'who started the run is required' }).default('unknown'),
  /**
   * Ignored since signed approvals (kept so runs recorded before still replay): whether a schedule
   * started a run is asked of the server, never taken from the input. Clients refuse it.
   */
  scheduled: z.boolean().default(false),
  /** The initiator's signed start statement (client API and CLI with a key, the alert bridge). */
  startProof: signedStatementSchema.optional(),
  /** What the run writes for people in (reports, notifications, Current Details); set by clients from RUNBOOK_LANGUAGE. English when absent. */
  language: z.enum(languages, { message: `expected one of ${languages.join(', ')}` }).optional(),
};

export type DecisionChannel = 'update' | 'signal' | 'policy';
export type DecisionVerdict = 'approve' | 'reject';

/**
 * What a person sends to decide on a pending step: a signed statement (`runbook approve`, the
 * client API with a signer, or pasted from `runbook sign` into the Temporal UI), whose fields are
 * the decision; or, where configuration allows unverified decisions, the plain fields.
 */
export interface Decision {
  stepId?: string;
  /** The hash of the plan they looked at; a decision on another plan is refused. */
  planHash?: string;
  approver?: string;
  reason?: string;
  /** The canonical JSON of a DecisionStatement (common/approval-statements.ts). */
  statement?: string;
  /** Its armored SSHSIG by the approver's key (or by a channel vouching for the approver). */
  signature?: string;
}

export interface DecisionReceipt {
  stepId: string;
  verdict: DecisionVerdict;
  approver: string;
  role: ApproverRole;
  /** True when the decision was signed and verified against the approver's configured key. */
  verified?: boolean;
  keyFingerprint?: string;
  /** Approvals of this step so far and how many it needs (a rejection vetoes). */
  approvals?: number;
  required?: number;
}

export interface CancelRequest {
  by: string;
  reason?: string;
}

/** The exact change a destructive step would make, from a dry run. */
export interface PlannedChange<Details = unknown> {
  /** One line people read, e.g. "memory limit of short-drama-app: 512Mi -> 768Mi". */
  summary: string;
  /** Machine-readable before/after or the list of things affected. */
  details?: Details;
  /** False when the dry run found nothing to change: the step is skipped without asking. */
  needed: boolean;
  /**
   * What the dry run saw that moves on its own (e.g. how many idle connections match right now).
   * Shown to people but not part of the plan hash, so it alone does not ask for approval again.
   */
  observed?: unknown;
}

export interface PlannedStep {
  stepId: string;
  title: string;
  change: PlannedChange;
  planHash: string;
  allowedRoles: ApproverRole[];
}

export type TimelineEvent =
  | 'started'
  | 'read'
  | 'planned'
  | 'requested'
  | 'escalated'
  | 'decided'
  | 'refused'
  | 'replanned'
  | 'applied'
  /** A remedy's promised effects read back from the real system and found. */
  | 'verified'
  | 'skipped'
  | 'failed'
  | 'cancelled'
  | 'alert-firing'
  | 'alert-resolved'
  /** Entries past the timeline's bound for their kind (alerts, refused decisions), counted instead. */
  | 'not-recorded'
  | 'locked'
  | 'unlocked'
  /**
   * A change to the cluster the run found, not made: e.g. a person's rollout from the API audit
   * log. Its `at` is when the change happened (before the run, often), `by` who made it.
   */
  | 'changed'
  | 'finished';

export interface TimelineEntry {
  at: string;
  event: TimelineEvent;
  stepId?: string;
  title?: string;
  by?: string;
  role?: ApproverRole;
  channel?: DecisionChannel;
  reason?: string;
  detail?: string;
  /** For decisions: signed and verified (true) or not (false). */
  verified?: boolean;
  /** The SHA256 fingerprint of the key that signed the decision. */
  keyFingerprint?: string;
}

export interface PendingApproval {
  stepId: string;
  title: string;
  planHash: string;
  change: PlannedChange;
  allowedRoles: ApproverRole[];
  /** People from configuration who hold an allowed role (the initiator excluded). */
  approvers: string[];
  /** The escalation tier notified last. */
  tier: ApproverRole;
  /** When the current tier's wait ends (ISO). */
  until: string;
  /** Distinct approvals the step needs (quorum; two when the initiator is not proven). */
  required?: number;
  /** Approvals given so far. */
  approvals?: Array<{ approver: string; role: ApproverRole; verified: boolean; keyFingerprint?: string }>;
  /** "signed": only signed decisions count; "unverified": no keys configured, identities are claims. */
  verification?: 'signed' | 'unverified';
  /** Whom the run's start proves as its initiator (a signed start or the server's schedule record). */
  provenInitiator?: string;
}

export type RunbookOutcome = 'planned' | 'completed' | 'nothing-to-do' | 'partially-applied' | 'rejected' | 'expired' | 'cancelled' | 'failed';

export interface RunbookStatus {
  runbook: string;
  /** The run id signed decisions bind (the first run's, kept across resets); absent from runs recorded before. */
  runId?: string;
  mode: Mode;
  severity: Severity;
  target: string;
  startedBy: string;
  state: 'running' | 'waiting-for-approval' | 'waiting-for-lock' | 'finished';
  currentStep?: string;
  stepsDone: number;
  /** How many steps the run expects: the length of `steps`. */
  stepsDeclared: number;
  /** The steps the run expects, in order (a failure path may add evidence steps as they run); absent from runs begun before. */
  steps?: string[];
  pending?: PendingApproval;
  plan: PlannedStep[];
  timeline: TimelineEntry[];
  outcome?: RunbookOutcome;
  /** The alerts (by fingerprint) that still want the run; absent when none recorded. */
  alertsFiring?: Array<{ alert: string; fingerprint: string }>;
  /** Where the incident report went, once written (a run that ends Canceled has no result to say it). */
  report?: { markdownKey: string; jsonKey: string };
}

/** The part of every runbook result the kernel fills in. */
export interface RunbookResultBase {
  outcome: RunbookOutcome;
  summary: string;
  plan: PlannedStep[];
  timeline: TimelineEntry[];
  /** Where the incident report is (Markdown and JSON), for fault and emergency runbooks. */
  report?: { markdownKey: string; jsonKey: string };
}

/** The five parts of the manual's incident report (事后分析). */
export interface IncidentFindings {
  impact: string;
  rootCause: string;
  solution: string;
  prevention: string;
}
