import { z } from 'zod';

/** Types shared by the kernel (workflows), the client API and the CLI. */

export const severities = ['P0', 'P1', 'P2', 'P3'] as const;
export type Severity = (typeof severities)[number];
export const modes = ['plan', 'execute'] as const;
export type Mode = (typeof modes)[number];
export const roles = ['l1', 'l2', 'manager', 'cto'] as const;
export type ApproverRole = (typeof roles)[number];

/** Fields every runbook input has, whatever its targets. */
export const runbookInputBase = {
  mode: z.enum(modes, { message: 'expected "plan" or "execute"' }).default('plan'),
  severity: z.enum(severities, { message: 'expected one of P0, P1, P2, P3' }).default('P2'),
  /** Who started the run: they may not approve its steps (four-eyes). */
  startedBy: z.string().min(1, { message: 'who started the run is required' }).default('unknown'),
  /** Whether a schedule started it: policies may auto-approve routine steps of scheduled runs. */
  scheduled: z.boolean().default(false),
};

export type DecisionChannel = 'update' | 'signal' | 'policy';
export type DecisionVerdict = 'approve' | 'reject';

/** What a person sends to decide on a pending step. */
export interface Decision {
  stepId: string;
  /** The hash of the plan they looked at; a decision on another plan is refused. */
  planHash: string;
  approver: string;
  reason: string;
}

export interface DecisionReceipt {
  stepId: string;
  verdict: DecisionVerdict;
  approver: string;
  role: ApproverRole;
}

export interface CancelRequest {
  by: string;
  reason?: string;
}

/** The exact change a destructive step would make, from a dry run. */
export interface PlannedChange {
  /** One line people read, e.g. "memory limit of short-drama-app: 512Mi -> 768Mi". */
  summary: string;
  /** Machine-readable before/after or the list of things affected. */
  details?: unknown;
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
  | 'skipped'
  | 'failed'
  | 'cancelled'
  | 'alert-firing'
  | 'alert-resolved'
  | 'locked'
  | 'unlocked'
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
}

export type RunbookOutcome = 'planned' | 'completed' | 'nothing-to-do' | 'partially-applied' | 'rejected' | 'expired' | 'cancelled' | 'failed';

export interface RunbookStatus {
  runbook: string;
  mode: Mode;
  severity: Severity;
  target: string;
  startedBy: string;
  state: 'running' | 'waiting-for-approval' | 'waiting-for-lock' | 'finished';
  currentStep?: string;
  stepsDone: number;
  stepsDeclared: number;
  pending?: PendingApproval;
  plan: PlannedStep[];
  timeline: TimelineEntry[];
  outcome?: RunbookOutcome;
  /** The alerts (by fingerprint) that still want the run; absent when none recorded. */
  alertsFiring?: Array<{ alert: string; fingerprint: string }>;
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
