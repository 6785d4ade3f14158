import { ActivityFailure, WorkflowUpdateFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { errorText } from '../common/failures';
import type { z } from 'zod';
import { catalog as defaultCatalog, workflowIdFor, type Catalog, type CatalogEntry, type RunbookName } from '../common/catalog';
import type * as workflows from '../workflows';
import { inputDigest, statementText, type DecisionStatement, type SignedStatement, type StartStatement } from '../common/approval-statements';
import { priorityOf, type CancelRequest, type Decision, type DecisionReceipt, type DecisionVerdict, type RunbookStatus, type Severity } from '../common/runbook';
import type { Signer } from './signing';
import { alertFiringSignal, alertResolvedSignal, approveUpdate, cancelSignal, rejectUpdate, statusQuery } from '../common/messages';
import { zodProblems } from '../common/zod-problems';
import { runbookRunsQuery } from '../common/search-attributes';
import { defaultLanguage, type Language } from '../common/texts';

/**
 * The input with the client's language when it is not the default and the input names none.
 * English runs keep inputs as they were; utilities (preflight) write nothing for people.
 */
function withLanguage(entry: CatalogEntry, input: Record<string, unknown>, language: Language): Record<string, unknown> {
  if (language === defaultLanguage || 'language' in input || entry.kind === 'utility') return input;
  return { ...input, language };
}

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
  /**
   * Signs starts and decisions (see client/signing.ts): with one, starts record a proven
   * initiator and decisions count where signatures are required. Without, both go unsigned.
   */
  signer?: Signer;
  /** How long a signed statement is valid; at most the workers' approvals.statementLifetime (default 10 min). */
  statementLifetimeMs?: number;
  /** The language runs started here write in (config `language`, RUNBOOK_LANGUAGE), fixed in their input; an input that names one keeps it. */
  language?: Language;
}

export interface StartOptions {
  /** Who starts the run (the four-eyes rule keeps them from approving it). */
  startedBy: string;
  /**
   * The alert that wants the run: sent as `alertFiring` in the same call as the start
   * (signal-with-start), so the run never exists without it and stops only when its last alert resolves.
   */
  alert?: { alert: string; fingerprint: string };
  /** Whose key signs the start when not the initiator's own: a service starting on someone's behalf. */
  signedBy?: string;
}

/** A started (or joined) run; `runbook` types its result for waitForResult. */
export interface StartedRun<Name extends string = string> {
  runbook: Name;
  workflowId: string;
  runId: string;
}

/** What a catalog runbook takes from a caller: its schema's input without what the client or server fills in. */
export type RunbookInput<Name extends RunbookName> = Omit<z.input<Catalog[Name]['inputSchema']>, 'startedBy' | 'scheduled' | 'startProof'>;
/** What a catalog runbook returns, from its workflow function. */
export type RunbookResult<Name extends RunbookName> = Awaited<ReturnType<(typeof workflows)[Name]>>;
/** Input by name: typed for the catalog's runbooks, any record for others (tests' runbooks, names typed at a prompt). */
type InputFor<Name extends string> = Name extends RunbookName ? RunbookInput<Name> : Record<string, unknown>;
type ResultFor<Name extends string> = Name extends RunbookName ? RunbookResult<Name> : unknown;

export interface DecisionRequest {
  stepId: string;
  planHash: string;
  approver: string;
  reason: string;
}

export interface DecideOptions {
  /** Bind the statement to this run (the one a person was shown, as its status or request names it). */
  runId?: string;
  /** Whose key signs when not the approver's: a channel (Slack) vouching for the approver. */
  signedBy?: string;
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

/** How a run stands as the Temporal server records it: readable without a worker. */
export interface RunRecord {
  workflowId: string;
  runId: string;
  runbook: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW. */
  status: string;
  startTime: string;
  closeTime?: string;
  /** A finished run's outcome from its result. */
  outcome?: string;
  /** Why a failed run failed: the innermost cause, naming the activity that failed. */
  failure?: string;
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

/**
 * Why a run failed, as a person needs it: the cause's sentence without Temporal's wrapping
 * layers ("Workflow execution failed", "Activity task failed"), and which activity failed.
 */
export function runFailureText(err: unknown): string {
  let activity: string | undefined;
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof ActivityFailure && e.activityType) activity = e.activityType;
  return activity ? `${errorText(err)} (activity ${activity})` : errorText(err);
}

function visibilityLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function keyword(info: WorkflowExecutionInfo, name: string): string | undefined {
  const value = info.searchAttributes?.[name];
  return Array.isArray(value) && typeof value[0] === 'string' ? value[0] : undefined;
}

/** The typed API other services (alerting, chat bots) and the CLI use to run runbooks. */
export function createRunbookClient({ client, taskQueue, catalog = defaultCatalog, signer, statementLifetimeMs = 10 * 60_000, language = defaultLanguage }: RunbookClientOptions) {
  const namespace = client.options.namespace;
  const validity = () => {
    const now = Date.now();
    return { issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + statementLifetimeMs).toISOString() };
  };
  const sign = async (statement: DecisionStatement | StartStatement, identity: string): Promise<SignedStatement> => {
    const text = statementText(statement);
    return { statement: text, signature: await signer!(text, identity) };
  };

  const queryStatus = (workflowId: string): Promise<RunbookStatus> => client.workflow.getHandle(workflowId).query(statusQuery);

  /**
   * The decision as a signed statement bound to a run (the one going now unless `runId` names
   * it), for the UI or to send. `signedBy`: a channel's key signing for the approver.
   */
  async function signDecision(verdict: DecisionVerdict, workflowId: string, request: DecisionRequest, options: DecideOptions = {}): Promise<SignedStatement & { runId: string }> {
    if (!signer) throw new RunbookClientError('no signer: give createRunbookClient a signer (client/signing.ts)');
    // The run binds the id it keeps across resets; its status says which (a run that does not: its current id).
    const runId = options.runId ?? (await queryStatus(workflowId)).runId ?? (await client.workflow.getHandle(workflowId).describe()).runId;
    const statement: DecisionStatement = {
      type: 'runbook-decision/v1',
      temporalNamespace: namespace,
      workflowId,
      runId,
      ...request,
      ...(options.signedBy ? { signer: options.signedBy } : {}),
      verdict,
      ...validity(),
    };
    return { ...(await sign(statement, options.signedBy ?? request.approver)), runId };
  }

  const entryOf = (name: string): CatalogEntry => {
    const entry = catalog[name];
    if (!entry) throw new RunbookClientError(`unknown runbook "${name}"; known: ${Object.keys(catalog).sort().join(', ')}`);
    return entry;
  };

  function waitForResult<Name extends string>(run: StartedRun<Name>): Promise<ResultFor<Name>>;
  function waitForResult<T = unknown>(workflowId: string): Promise<T>;
  async function waitForResult(run: StartedRun | string): Promise<unknown> {
    return client.workflow.getHandle(typeof run === 'string' ? run : run.workflowId).result();
  }

  /** The server's record of a run (and a closed run's outcome or failure): no worker needed. */
  async function describeRun(workflowId: string): Promise<RunRecord> {
    const handle = client.workflow.getHandle(workflowId);
    const info = await handle.describe();
    const record: RunRecord = {
      workflowId,
      runId: info.runId,
      runbook: info.type,
      status: info.status.name,
      startTime: info.startTime.toISOString(),
      ...(info.closeTime ? { closeTime: info.closeTime.toISOString() } : {}),
    };
    if (info.status.name === 'RUNNING') return record;
    try {
      const result = (await client.workflow.getHandle(workflowId, info.runId).result()) as { outcome?: unknown } | undefined;
      if (typeof result?.outcome === 'string') record.outcome = result.outcome;
    } catch (err) {
      record.failure = runFailureText(err);
    }
    return record;
  }

  async function decide(verdict: DecisionVerdict, workflowId: string, request: DecisionRequest, options: DecideOptions = {}): Promise<DecisionReceipt> {
    let decision: Decision = request;
    if (signer) {
      const { statement, signature } = await signDecision(verdict, workflowId, request, options);
      decision = { statement, signature };
    }
    try {
      // To the run going now: a statement for any other execution under this id is refused by the run.
      return await client.workflow.getHandle(workflowId).executeUpdate(verdict === 'approve' ? approveUpdate : rejectUpdate, { args: [decision] });
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
    async startRunbook<Name extends string>(name: Name, input: InputFor<Name>, options: StartOptions): Promise<StartedRun<Name>> {
      const entry = entryOf(name);
      if ('scheduled' in input) throw new RunbookClientError(`invalid input for ${name}: scheduled is not an input; whether a schedule started a run is asked of the Temporal server`);
      if ('startProof' in input) throw new RunbookClientError(`invalid input for ${name}: startProof is made by the client's signer, not given`);
      const parsed = entry.inputSchema.safeParse({ ...withLanguage(entry, input, language), startedBy: options.startedBy });
      if (!parsed.success) {
        const problems = zodProblems(parsed.error);
        throw new RunbookClientError(`invalid input for ${name}: ${problems.join('; ')}`);
      }
      const args = parsed.data as Record<string, unknown>;
      const workflowId = workflowIdFor(entry, args);
      if (signer) {
        const statement: StartStatement = {
          type: 'runbook-start/v1',
          temporalNamespace: namespace,
          workflowId,
          runbook: name,
          inputDigest: inputDigest(args),
          signer: options.signedBy ?? options.startedBy,
          startedBy: options.startedBy,
          ...validity(),
        };
        args.startProof = await sign(statement, statement.signer);
      }
      const describe = [args.mode, args.severity].filter(Boolean).join(', ');
      const start = {
        taskQueue,
        workflowId,
        args: [args],
        staticSummary: `${name} on ${entry.targetOf(args)}${describe ? ` (${describe})` : ''}, started by ${options.startedBy}`,
        staticDetails: entry.description,
        priority: priorityOf((args.severity as Severity | undefined) ?? 'P2'),
      };
      if (options.alert) {
        // Joins the run in flight like USE_EXISTING does, and signals exactly that run.
        const handle = await client.workflow.signalWithStart(name, { ...start, signal: alertFiringSignal, signalArgs: [options.alert] });
        return { runbook: name, workflowId, runId: handle.signaledRunId };
      }
      const handle = await client.workflow.start(name, { ...start, workflowIdConflictPolicy: 'USE_EXISTING' });
      return { runbook: name, workflowId, runId: handle.firstExecutionRunId };
    },

    approve: (workflowId: string, request: DecisionRequest, options?: DecideOptions) => decide('approve', workflowId, request, options),
    reject: (workflowId: string, request: DecisionRequest, options?: DecideOptions) => decide('reject', workflowId, request, options),
    /** A signed decision to paste into the Temporal UI's Update dialog (approve or reject). */
    signDecision,

    /**
     * Who cancels and why (the cancel message, kept in the timeline), then Temporal's cancellation:
     * the run stops before its next destructive step, cleans up, and ends Canceled.
     */
    async cancel(workflowId: string, request: CancelRequest): Promise<void> {
      const handle = client.workflow.getHandle(workflowId);
      await handle.signal(cancelSignal, request);
      await handle.cancel();
    },

    /** With a fingerprint the run forgets that alert and stops only when no other alert wants it; without, it stops. */
    async alertResolved(workflowId: string, alert?: string, fingerprint?: string): Promise<void> {
      await client.workflow.getHandle(workflowId).signal(alertResolvedSignal, { alert, ...(fingerprint ? { fingerprint } : {}) });
    },

    getStatus: queryStatus,
    describeRun,

    /** The run's result: typed by runbook for a StartedRun, as asked for a bare workflow id. */
    waitForResult,

    /** Runs by search attributes, newest first, e.g. every run waiting for approval. */
    async listRuns(filter: ListFilter = {}): Promise<RunSummary[]> {
      const clauses = [
        filter.runbook && `RunbookName = ${visibilityLiteral(filter.runbook)}`,
        !filter.runbook && runbookRunsQuery,
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
