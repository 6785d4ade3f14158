import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { ApproverRole, Severity } from '../common/runbook';
import type { AllowLists, ChecklistThresholds, RunbookConfig } from '../config/schema';
import { renderChecklistMarkdown, type ChecklistReport } from './checklist-markdown';
import { acquireLockSignal, lockWorkflowId, type LockRequest } from '../workflows/definitions';
import { classified, classifyError, failure } from './errors';
import { assertDatabaseAllowed, assertKubernetesName, assertNamespaceAllowed } from './guards';
import { renderIncidentMarkdown, type IncidentReport } from './report-markdown';

export interface RunbookSupportDeps {
  allowlists: AllowLists;
  approvers: Array<{ id: string; roles: ApproverRole[] }>;
  approvals: RunbookConfig['approvals'];
  checklistThresholds: ChecklistThresholds;
  s3?: { client: S3Client; bucket: string; evidencePrefix: string };
  /** For starting a target's lock workflow (workflows cannot signal-with-start themselves). */
  temporal?: { client: Client; taskQueue: string };
}

/** What the kernel needs from configuration, read once per run and kept in its history. */
export interface ApprovalPolicy {
  approvers: Array<{ id: string; roles: ApproverRole[] }>;
  escalation: Record<Severity, string>;
  autoApprove: Array<{ name: string; steps: string[]; onlyScheduled: boolean }>;
}

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
      await classified(`write ${key}`, () => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ContentType: contentType, Metadata: { sha256 } })));
    }
    return { markdownKey: `${base}.md`, jsonKey: `${base}.json` };
  }

  return {
    /** Checked first by every runbook: targets outside configuration fail the run at once, before anything is read. */
    async assertTargetsAllowed({ namespaces = [], databases = [], names = [] }: { namespaces?: string[]; databases?: string[]; names?: Array<{ name: string; what: string }> }): Promise<void> {
      for (const namespace of namespaces) assertNamespaceAllowed(namespace, allowlists);
      for (const database of databases) assertDatabaseAllowed(database, allowlists);
      for (const { name, what } of names) assertKubernetesName(name, what);
    },

    async loadApprovalPolicy({ runbook }: { runbook: string }): Promise<ApprovalPolicy> {
      return {
        approvers,
        escalation: approvals.escalation,
        autoApprove: approvals.policies
          .filter((policy) => policy.runbooks.includes(runbook))
          .map(({ name, steps, onlyScheduled }) => ({ name, steps, onlyScheduled })),
      };
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

    /** Whether a run is still going; the lock passes on a lock whose holder ended without releasing it. */
    async isRunOpen({ workflowId }: { workflowId: string }): Promise<boolean> {
      if (!temporal) throw failure('InvalidInput', 'no Temporal client for target locks');
      try {
        const description = await temporal.client.workflow.getHandle(workflowId).describe();
        return description.status.name === 'RUNNING';
      } catch (err) {
        if ((err as { name?: string }).name === 'WorkflowNotFoundError') return false;
        throw classifyError(err, { action: `describe ${workflowId}` });
      }
    },

    /** Queues the requesting run at the target's lock, starting the lock workflow when none runs. */
    async requestTargetLock({ target, request }: { target: string; request: LockRequest }): Promise<void> {
      if (!temporal) throw failure('InvalidInput', 'no Temporal client for target locks');
      await classified(`request lock on ${target}`, () =>
        temporal.client.workflow.signalWithStart('targetLock', {
          workflowId: lockWorkflowId(target),
          taskQueue: temporal.taskQueue,
          args: [{ target }],
          signal: acquireLockSignal,
          signalArgs: [request],
        }),
      );
    },
  };
}
