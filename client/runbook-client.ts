import { WorkflowUpdateFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { catalog as defaultCatalog, workflowIdFor, type CatalogEntry } from '../common/catalog';
import type { CancelRequest, DecisionReceipt, RunbookStatus, Severity } from '../common/runbook';
import { alertFiringSignal, alertResolvedSignal, approveUpdate, cancelSignal, rejectUpdate, statusQuery } from '../workflows/definitions';

/** A refusal or bad request, with a message meant for a person. */
export class RunbookClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunbookClientError';
  }
}

export interface RunbookClientOptions {
  client: Client;
  taskQueue: string;
  /** The catalog's runbooks by default; tests add their own. */
  catalog?: Record<string, CatalogEntry>;
}

export interface StartOptions {
  /** Who starts the run (the four-eyes rule keeps them from approving it). */
  startedBy: string;
  /**
   * The alert that wants the run: sent as `alertFiring` in the same call as the start
   * (signal-with-start), so the run never exists without it and stops only when its last alert resolves.
   */
  alert?: { alert: string; fingerprint: string };
}

export interface StartedRun {
  workflowId: string;
  runId: string;
}

export interface DecisionRequest {
  stepId: string;
  planHash: string;
  approver: string;
  reason: string;
}

export interface RunSummary {
  workflowId: string;
  runId: string;
  runbook: string;
  status: string;
  startTime: string;
  target?: string;
  severity?: string;
  mode?: string;
  approvalState?: string;
}

export interface ListFilter {
  runbook?: string;
  target?: string;
  severity?: Severity;
  approvalState?: 'none' | 'pending' | 'approved' | 'rejected' | 'expired';
  /** Only runs still going (default true). */
  openOnly?: boolean;
  limit?: number;
}

function visibilityLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function keyword(info: WorkflowExecutionInfo, name: string): string | undefined {
  const value = info.searchAttributes?.[name];
  return Array.isArray(value) && typeof value[0] === 'string' ? value[0] : undefined;
}

/** The typed API other services (alerting, chat bots) and the CLI use to run runbooks. */
export function createRunbookClient({ client, taskQueue, catalog = defaultCatalog }: RunbookClientOptions) {
  const entryOf = (name: string): CatalogEntry => {
    const entry = catalog[name];
    if (!entry) throw new RunbookClientError(`unknown runbook "${name}"; known: ${Object.keys(catalog).sort().join(', ')}`);
    return entry;
  };

  async function decide(verdict: 'approve' | 'reject', workflowId: string, request: DecisionRequest): Promise<DecisionReceipt> {
    try {
      return await client.workflow.getHandle(workflowId).executeUpdate(verdict === 'approve' ? approveUpdate : rejectUpdate, { args: [request] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new RunbookClientError(`${verdict} refused: ${err.cause?.message ?? err.message}`);
      throw err;
    }
  }

  return {
    catalog,

    /**
     * Validates the input against the runbook's schema, then starts it under the id its target
     * gives; when a run with that id is going, returns that run instead of starting another.
     */
    async startRunbook(name: string, input: Record<string, unknown>, options: StartOptions): Promise<StartedRun> {
      const entry = entryOf(name);
      const parsed = entry.inputSchema.safeParse({ ...input, startedBy: options.startedBy });
      if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'input'}: ${i.message}`);
        throw new RunbookClientError(`invalid input for ${name}: ${problems.join('; ')}`);
      }
      const args = parsed.data as Record<string, unknown>;
      const workflowId = workflowIdFor(entry, args);
      const describe = [args.mode, args.severity].filter(Boolean).join(', ');
      const start = {
        taskQueue,
        workflowId,
        args: [args],
        staticSummary: `${name} on ${entry.targetOf(args)}${describe ? ` (${describe})` : ''}, started by ${options.startedBy}`,
        staticDetails: entry.description,
      };
      if (options.alert) {
        // Joins the run in flight like USE_EXISTING does, and signals exactly that run.
        const handle = await client.workflow.signalWithStart(name, { ...start, signal: alertFiringSignal, signalArgs: [options.alert] });
        return { workflowId, runId: handle.signaledRunId };
      }
      const handle = await client.workflow.start(name, { ...start, workflowIdConflictPolicy: 'USE_EXISTING' });
      return { workflowId, runId: handle.firstExecutionRunId };
    },

    approve: (workflowId: string, request: DecisionRequest) => decide('approve', workflowId, request),
    reject: (workflowId: string, request: DecisionRequest) => decide('reject', workflowId, request),

    async cancel(workflowId: string, request: CancelRequest): Promise<void> {
      await client.workflow.getHandle(workflowId).signal(cancelSignal, request);
    },

    /** With a fingerprint the run forgets that alert and stops only when no other alert wants it; without, it stops. */
    async alertResolved(workflowId: string, alert?: string, fingerprint?: string): Promise<void> {
      await client.workflow.getHandle(workflowId).signal(alertResolvedSignal, { alert, ...(fingerprint ? { fingerprint } : {}) });
    },

    async getStatus(workflowId: string): Promise<RunbookStatus> {
      return client.workflow.getHandle(workflowId).query(statusQuery);
    },

    async waitForResult<T = unknown>(workflowId: string): Promise<T> {
      return client.workflow.getHandle(workflowId).result() as Promise<T>;
    },

    /** Runs by search attributes, newest first, e.g. every run waiting for approval. */
    async listRuns(filter: ListFilter = {}): Promise<RunSummary[]> {
      const clauses = [
        filter.runbook && `RunbookName = ${visibilityLiteral(filter.runbook)}`,
        !filter.runbook && `RunbookName IS NOT NULL`,
        filter.target && `RunbookTarget = ${visibilityLiteral(filter.target)}`,
        filter.severity && `RunbookSeverity = ${visibilityLiteral(filter.severity)}`,
        filter.approvalState && `RunbookApprovalState = ${visibilityLiteral(filter.approvalState)}`,
        filter.openOnly !== false && `ExecutionStatus = 'Running'`,
      ].filter(Boolean);
      const runs: RunSummary[] = [];
      for await (const info of client.workflow.list({ query: clauses.join(' AND ') })) {
        runs.push({
          workflowId: info.workflowId,
          runId: info.runId,
          runbook: info.type,
          status: info.status.name,
          startTime: info.startTime.toISOString(),
          target: keyword(info, 'RunbookTarget'),
          severity: keyword(info, 'RunbookSeverity'),
          mode: keyword(info, 'RunbookMode'),
          approvalState: keyword(info, 'RunbookApprovalState'),
        });
        if (runs.length >= (filter.limit ?? 100)) break;
      }
      return runs;
    },
  };
}

export type RunbookClient = ReturnType<typeof createRunbookClient>;
