import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { ApproverRole, Severity } from '../common/runbook';
import { scheduleIdFor } from '../common/schedule-ids';
import { parseSshPublicKey } from '../common/ssh-signature';
import { approvalsVerified, type AllowLists, type ChecklistThresholds, type Identity, type RunbookConfig } from '../config/schema';
import { renderChecklistMarkdown, type ChecklistReport } from './checklist-markdown';
import { acquireLockSignal, lockWorkflowId, type LockRequest } from '../common/target-lock-messages';
import { classified, classifyError, failure } from './errors';
import { assertBackupDeletionPrefix, assertDatabaseAllowed, assertKubernetesName, assertNamespaceAllowed, assertRedisPatternAllowed, assertS3PrefixAllowed } from './guards';
import { assertBackupAgeAboveFloor, defaultBackupFloor, type BackupFloor } from './backup-retention';
import { renderIncidentMarkdown, type IncidentReport } from './report-markdown';

export interface RunbookSupportDeps {
  allowlists: AllowLists;
  approvers: Identity[];
  approvals: RunbookConfig['approvals'];
  checklistThresholds: ChecklistThresholds;
  s3?: { client: S3Client; bucket: string; evidencePrefix: string; backupPrefix: string; backupFloor?: BackupFloor };
  /** For starting a target's lock workflow (workflows cannot signal-with-start themselves). */
  temporal?: { client: Client; taskQueue: string };
}

/** What a run names from its input, checked against configuration before anything is read. */
export interface TargetsToCheck {
  namespaces?: string[];
  databases?: string[];
  names?: Array<{ name: string; what: string }>;
  /** Patterns a run will count or delete. */
  redisKeyPatterns?: string[];
  /** Prefixes a run will read. */
  s3Prefixes?: string[];
  /** Backup deletions a run may make: under the backup prefix only (never the evidence prefix), never younger than the floor. */
  backupDeletions?: Array<{ prefix: string; olderThanDays: number }>;
}

/** What the kernel needs from configuration, read once per run and kept in its history. */
export interface ApprovalPolicy {
  approvers: PolicyIdentity[];
  escalation: Record<Severity, string>;
  autoApprove: Array<{ name: string; steps: string[]; onlyScheduled: boolean }>;
  /**
   * The fields below are absent from histories recorded before signed approvals: such runs
   * verify nothing and need one approval, as they did.
   */
  requireSignatures?: boolean;
  statementLifetime?: string;
  quorum?: Array<{ steps?: string[]; severities?: Severity[]; approvals: number }>;
}

/** An identity as the kernel sees it (no Slack ids, no names). */
export interface PolicyIdentity {
  id: string;
  roles: ApproverRole[];
  kind?: Identity['kind'];
  publicKey?: string;
  vouchesFor?: ApproverRole[];
}

export interface ApprovalVerification {
  verified: boolean;
  detail: string;
}

/** What the server says about a run's claim to be started by a schedule. */
export interface ScheduleProof {
  proven: boolean;
  scheduleId?: string;
  detail: string;
}

/** How long the proof waits for the schedule to list a run it has just started. */
const scheduleProofWaitMs = 5_000;

export function createRunbookSupportActivities({ allowlists, approvers, approvals, checklistThresholds, s3, temporal }: RunbookSupportDeps) {
  /** Puts `<prefix><kind>/<runbook>/<date>/<workflow id>-<run id>.{md,json}`; a retry overwrites the same objects. */
  async function putReport(kind: string, report: { runbook: string; workflowId: string; runId: string }, markdown: string): Promise<{ markdownKey: string; jsonKey: string }> {
    if (!s3) throw failure('InvalidInput', `cannot write the ${kind === 'reports' ? 'incident' : 'checklist'} report: S3 is not configured (S3_BUCKET)`);
    const date = new Date(Context.current().info.currentAttemptScheduledTimestampMs).toISOString().slice(0, 10);
    const base = `${s3.evidencePrefix}${kind}/${report.runbook}/${date}/${report.workflowId.replace(/[^A-Za-z0-9._-]/g, '_')}-${report.runId}`;
    const json = JSON.stringify(report, null, 2);
    for (const [key, body, contentType] of [
      [`${base}.md`, markdown, 'text/markdown; charset=utf-8'],
      [`${base}.json`, json, 'application/json'],
    ] as const) {
      const sha256 = createHash('sha256').update(body).digest('hex');
      await classified(`write ${key}`, () => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ContentType: contentType, Metadata: { sha256 } })), 'S3');
    }
    return { markdownKey: `${base}.md`, jsonKey: `${base}.json` };
  }

  return {
    /** Checked first by every runbook: targets outside configuration fail the run at once, before anything is read. */
    async assertTargetsAllowed(targets: TargetsToCheck): Promise<void> {
      const { namespaces = [], databases = [], names = [], redisKeyPatterns = [], s3Prefixes = [], backupDeletions = [] } = targets;
      for (const namespace of namespaces) assertNamespaceAllowed(namespace, allowlists);
      for (const database of databases) assertDatabaseAllowed(database, allowlists);
      for (const pattern of redisKeyPatterns) assertRedisPatternAllowed(pattern, allowlists);
      for (const prefix of s3Prefixes) assertS3PrefixAllowed(prefix, allowlists);
      const where = { backupPrefix: s3?.backupPrefix ?? 'database/', evidencePrefix: s3?.evidencePrefix ?? 'runbooks/', s3Prefixes: allowlists.s3Prefixes };
      for (const { prefix, olderThanDays } of backupDeletions) {
        assertBackupDeletionPrefix(prefix, where);
        assertBackupAgeAboveFloor(olderThanDays, s3?.backupFloor ?? defaultBackupFloor);
      }
      for (const { name, what } of names) assertKubernetesName(name, what);
    },

    async loadApprovalPolicy({ runbook }: { runbook: string }): Promise<ApprovalPolicy> {
      return {
        approvers: approvers.map(({ id, roles, kind, publicKey, vouchesFor }) => ({ id, roles, kind, ...(publicKey ? { publicKey } : {}), ...(vouchesFor ? { vouchesFor } : {}) })),
        escalation: approvals.escalation,
        autoApprove: approvals.policies.filter((policy) => policy.runbooks.includes(runbook)).map(({ name, steps, onlyScheduled }) => ({ name, steps, onlyScheduled })),
        requireSignatures: approvalsVerified({ approvers, approvals }),
        statementLifetime: approvals.statementLifetime,
        quorum: approvals.quorum
          .filter((rule) => !rule.runbooks || rule.runbooks.includes(runbook))
          .map(({ steps, severities, approvals: count }) => ({ ...(steps ? { steps } : {}), ...(severities ? { severities } : {}), approvals: count })),
      };
    },

    /**
     * Whether the calling run was started by this deployment's schedule for its workflow type,
     * asked of the server: the run's TemporalScheduledById (any client may set that attribute at
     * start, so it is only a claim) must name our schedule, and the schedule must list this very
     * run (workflow id and first run id) among its running or recent actions.
     */
    async proveScheduledStart(): Promise<ScheduleProof> {
      if (!temporal) throw failure('InvalidInput', 'no Temporal client to ask about schedules');
      const { workflowExecution, workflowType } = Context.current().info;
      if (!workflowExecution || !workflowType) throw failure('InvalidInput', 'proveScheduledStart runs only as an activity of a workflow');
      const { workflowId, runId } = workflowExecution;
      const described = await classified(`describe ${workflowId}`, () => temporal.client.workflow.getHandle(workflowId, runId).describe(), 'Temporal');
      const claimed = described.searchAttributes?.TemporalScheduledById;
      const scheduleId = Array.isArray(claimed) && typeof claimed[0] === 'string' ? claimed[0] : undefined;
      if (!scheduleId) return { proven: false, detail: 'not started by a schedule' };
      const ours = scheduleIdFor(temporal.taskQueue, workflowType);
      if (scheduleId !== ours) return { proven: false, scheduleId, detail: `claims schedule ${scheduleId}, which is not this deployment's schedule for ${workflowType} (${ours})` };
      const deadline = Date.now() + scheduleProofWaitMs;
      for (;;) {
        let listed = false;
        try {
          const { info } = await temporal.client.schedule.getHandle(scheduleId).describe();
          const actions = [...info.runningActions, ...info.recentActions.map((r) => r.action)];
          listed = actions.some((a) => a.workflow.workflowId === workflowId && a.workflow.firstExecutionRunId === runId);
        } catch (err) {
          if ((err as { name?: string }).name === 'ScheduleNotFoundError') return { proven: false, scheduleId, detail: `schedule ${scheduleId} does not exist` };
          throw classifyError(err, { action: `describe schedule ${scheduleId}`, system: 'Temporal' });
        }
        if (listed) return { proven: true, scheduleId, detail: `schedule ${scheduleId} lists this run (asked the server)` };
        // The schedule records its action just after starting the run: give it a moment.
        if (Date.now() > deadline) return { proven: false, scheduleId, detail: `schedule ${scheduleId} does not list this run among its actions` };
        Context.current().heartbeat();
        await Context.current().sleep(500);
      }
    },

    /** Whether decisions are proven (preflight): signatures required, and who can sign. */
    async approvalVerification(): Promise<ApprovalVerification> {
      const people = approvers.filter((a) => a.kind === 'person');
      const keyed = approvers.filter((a) => a.publicKey).map((a) => `${a.id} (${a.kind}) ${parseSshPublicKey(a.publicKey!).fingerprint}`);
      const unkeyed = people.filter((a) => !a.publicKey).map((a) => a.id);
      if (!approvalsVerified({ approvers, approvals })) {
        return {
          verified: false,
          detail: `approvals are UNVERIFIED: ${keyed.length === 0 ? 'no approver has a public key' : 'approvals.requireSignatures is false'}, so approver and initiator names are claims anyone with access to Temporal can make`,
        };
      }
      const missing = unkeyed.length > 0 ? `; without a key, so unable to approve: ${unkeyed.join(', ')}` : '';
      return { verified: true, detail: `signed decisions required; keys: ${keyed.join(', ')}${missing}` };
    },

    /** Writes the report as Markdown and JSON; keys derive from the run, so a retry overwrites the same objects. */
    async writeIncidentReport(report: IncidentReport): Promise<{ markdownKey: string; jsonKey: string }> {
      return putReport('reports', report, renderIncidentMarkdown(report));
    },

    /** A checklist's PASS/WARN/FAIL report as JSON and Markdown, keyed by the run like the incident report. */
    async writeChecklistReport(report: ChecklistReport): Promise<{ markdownKey: string; jsonKey: string }> {
      return putReport('checklists', report, renderChecklistMarkdown(report));
    },

    /** The checklists' thresholds from configuration, read once per run and kept in its history. */
    async loadChecklistThresholds(): Promise<ChecklistThresholds> {
      return checklistThresholds;
    },

    /**
     * Whether a run is still going; the lock passes on a lock whose holder ended without releasing it.
     * With a run id, that run only: a later run on the same workflow id does not keep it open.
     */
    async isRunOpen({ workflowId, runId }: { workflowId: string; runId?: string }): Promise<boolean> {
      if (!temporal) throw failure('InvalidInput', 'no Temporal client for target locks');
      try {
        const description = await temporal.client.workflow.getHandle(workflowId, runId).describe();
        return description.status.name === 'RUNNING';
      } catch (err) {
        if ((err as { name?: string }).name === 'WorkflowNotFoundError') return false;
        throw classifyError(err, { action: `describe ${workflowId}`, system: 'Temporal' });
      }
    },

    /** Queues the requesting run at the target's lock, starting the lock workflow when none runs. */
    async requestTargetLock({ target, request }: { target: string; request: LockRequest }): Promise<void> {
      if (!temporal) throw failure('InvalidInput', 'no Temporal client for target locks');
      await classified(
        `request lock on ${target}`,
        () =>
          temporal.client.workflow.signalWithStart('targetLock', {
            workflowId: lockWorkflowId(target),
            taskQueue: temporal.taskQueue,
            args: [{ target }],
            signal: acquireLockSignal,
            signalArgs: [request],
          }),
        'Temporal',
      );
    },
  };
}
