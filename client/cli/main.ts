import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError, Option } from 'commander';
import { catalog as defaultCatalog, type CatalogEntry } from '../../common/catalog';
import { severities, type DecisionVerdict } from '../../common/runbook';
import { ConfigError } from '../../config/load';
import { loadConfigWithSandbox, sandboxApproverKeyDir } from '../../config/sandbox';
import { approvalsVerified } from '../../config/schema';
import { connectClient } from '../../config/temporal-connection';
import { durationMs } from '../../common/duration';
import { minPlanHashPrefix, planHashProblem } from '../../workflows/kernel/decision-rules';
import { createRunbookClient, runFailureText, RunbookClientError, type DecisionRequest, type RunbookClient, type StartedRun } from '../runbook-client';
import { pendingPlanText, progressLine, runRecordText, runsTable, statusText } from './format';
import { resolveIdentity } from './identity';
import { resolveSigner, type ResolvedSigner } from './keys';

class UsageError extends Error {}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

/** Extra catalog entries from a module (test runbooks, plug-ins): RUNBOOK_EXTRA_CATALOG=path. */
function loadCatalog(): Record<string, CatalogEntry> {
  const extra = process.env.RUNBOOK_EXTRA_CATALOG;
  if (!extra) return defaultCatalog;
  const path = resolve(extra);
  if (!existsSync(path)) throw new UsageError(`RUNBOOK_EXTRA_CATALOG: no such file ${path}`);
  return { ...defaultCatalog, ...(require(path) as { extraCatalog: Record<string, CatalogEntry> }).extraCatalog };
}

interface Session {
  runbooks: RunbookClient;
  as: string;
  key: ResolvedSigner | undefined;
  verified: boolean;
}

/**
 * Connects with configuration as usual, falling back to this checkout's sandbox (its server,
 * approvers and demo keys), runs `body`, disconnects. With `signs`, the session signs as --as with
 * the key found for it; commands that only read or cancel look for no key (and ask no agent).
 */
async function withSession<T>(options: { as?: string; key?: string }, body: (session: Session) => Promise<T>, { signs = false } = {}): Promise<T> {
  const as = resolveIdentity(options.as);
  const config = loadConfigWithSandbox(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'RUNBOOK_APPROVERS'], { onlyUnset: true });
  const sandboxKeyDir = process.env.TEMPORAL_ADDRESS ? undefined : sandboxApproverKeyDir();
  const key = signs ? await resolveSigner(as, { keyFile: options.key, approvers: config.approvers, sandboxKeyDir }) : undefined;
  const connection = await connectClient(config.temporal);
  try {
    const runbooks = createRunbookClient({
      client: connection.client,
      taskQueue: config.temporal.taskQueue,
      catalog: loadCatalog(),
      signer: key?.signer,
      statementLifetimeMs: durationMs(config.approvals.statementLifetime),
      language: config.language,
    });
    return await body({ runbooks, as, key, verified: approvalsVerified(config) });
  } finally {
    await connection.close();
  }
}

/** --some-field value pairs after the runbook name become input fields (values read as JSON when they parse). */
function inputFromFlags(args: string[]): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!;
    if (!token.startsWith('--')) throw new UsageError(`runbook start: unexpected argument "${token}" (input fields are --field value)`);
    const [flag, inline] = token.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`--${flag} needs a value`);
    const key = flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    try {
      input[key] = JSON.parse(value);
    } catch {
      input[key] = value;
    }
  }
  return input;
}

interface DecisionOptions {
  step: string;
  reason: string;
  plan?: string;
}

/**
 * The decision a person is about to make, on the plan they saw: the pending plan is printed, and
 * its hash must be the one given with --plan, or confirmed on a terminal. Never the plan that
 * merely happens to be pending.
 */
async function seenDecision(runbooks: RunbookClient, verdict: DecisionVerdict, id: string, options: DecisionOptions, as: string, show: (line: string) => void): Promise<DecisionRequest> {
  const { step: stepId, reason } = options;
  if (!reason.trim()) throw new UsageError(`runbook ${verdict}: --reason must say why`);
  const pending = (await runbooks.getStatus(id)).pending;
  if (!pending || pending.stepId !== stepId) throw new RunbookClientError(`step "${stepId}" is not waiting for approval${pending ? ` (pending: "${pending.stepId}")` : ''}`);
  show(pendingPlanText(id, pending));
  const given = options.plan;
  if (given !== undefined) {
    const problem = planHashProblem(given, pending.planHash);
    if (problem) throw new RunbookClientError(problem);
  } else if (process.stdin.isTTY) {
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await prompt.question(`${verdict} plan ${pending.planHash.slice(0, minPlanHashPrefix)} of "${stepId}"? type yes: `);
    prompt.close();
    if (answer.trim().toLowerCase() !== 'yes') throw new UsageError('nothing decided');
  } else {
    throw new UsageError(
      `runbook ${verdict}: refusing to decide a plan you have not confirmed: read the plan above and pass --plan ${pending.planHash.slice(0, minPlanHashPrefix)}, or run on a terminal to confirm it`,
    );
  }
  return { stepId, planHash: pending.planHash, approver: as, reason };
}

/** How long `start` watches a new run, so a run refused at once is not reported as started and fine. */
const firstMomentsMs = 3000;
/** How long `status` waits for a worker to answer before it shows the server's record instead. */
const statusQueryMs = 5000;

/** Resolves to undefined when `ms` pass first; the timer never keeps the process alive. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([promise, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref())]);
}

/** The run's result, or a RunbookClientError saying why it failed (exit code 1). */
async function resultOrRefusal(runbooks: RunbookClient, started: StartedRun): Promise<unknown> {
  try {
    return await runbooks.waitForResult(started);
  } catch (err) {
    throw new RunbookClientError(`${started.workflowId} failed: ${runFailureText(err)}`);
  }
}

/** Prints each change of the run's progress until it ends; a failed run exits non-zero with its cause. */
async function watch(runbooks: RunbookClient, id: string): Promise<void> {
  let last = '';
  for (;;) {
    const now = await progressNow(runbooks, id);
    if (now.line !== last) print(now.line);
    last = now.line;
    if (now.ended) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const record = await runbooks.describeRun(id);
  if (record.failure) throw new RunbookClientError(`${id} failed: ${record.failure}`);
}

/** The run's progress from its worker; with no worker answering, the server still says whether it goes on or how it ended. */
async function progressNow(runbooks: RunbookClient, id: string): Promise<{ line: string; ended: boolean }> {
  const status = await within(runbooks.getStatus(id), statusQueryMs).catch(() => undefined);
  if (status) return { line: progressLine(status), ended: status.state === 'finished' };
  const record = await runbooks.describeRun(id);
  const how = record.failure ?? record.outcome;
  return { line: `${record.runbook} ${record.status}${how ? `: ${how}` : ''} (no worker answered; the server's record)`, ended: record.status !== 'RUNNING' };
}

function addDecisionCommand(cli: Command, verdict: DecisionVerdict): void {
  cli
    .command(verdict)
    .description(`${verdict} a pending step: prints its plan and decides only the plan hash given with --plan (or confirmed on a terminal), signed with your key`)
    .argument('<id>', 'workflow id of the run')
    .requiredOption('--step <step>', 'the step waiting for approval')
    .requiredOption('--reason <text>', 'why (recorded in the timeline and the report)')
    .option('--plan <hash>', `the plan hash you read (at least ${minPlanHashPrefix} digits)`)
    .action((id: string, options: DecisionOptions, command: Command) =>
      withSession(
        command.optsWithGlobals(),
        async ({ runbooks, as }) => {
          const decision = await seenDecision(runbooks, verdict, id, options, as, print);
          const receipt = await runbooks[verdict](id, decision);
          const progress = receipt.required && receipt.required > 1 ? `; ${receipt.approvals} of ${receipt.required} approvals` : '';
          const proof = receipt.verified ? `signed with ${receipt.keyFingerprint}` : 'UNVERIFIED';
          print(
            `${verdict === 'approve' ? 'approved' : 'rejected'} "${receipt.stepId}" of ${id} as ${receipt.approver} (${receipt.role}), plan ${decision.planHash.slice(0, 12)}, ${proof}${progress}`,
          );
        },
        { signs: true },
      ),
    );
}

function program(): Command {
  const cli = new Command('runbook')
    .description('Start runbooks, follow them and decide their steps (README "Running runbooks")')
    .option('--as <name>', 'who you are (default: $RUNBOOK_USER, else the OS user)')
    .option('--key <file>', 'your private key (default: ssh-agent via $SSH_AUTH_SOCK, else the sandbox demo key for --as)')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  cli
    .command('list')
    .description('the catalog')
    .option('--json', 'as JSON')
    .action((options: { json?: boolean }) => {
      const entries = Object.values(loadCatalog()).sort((a, b) => a.name.localeCompare(b.name));
      if (options.json)
        print(
          JSON.stringify(
            entries.map(({ name, kind, description }) => ({ name, kind, description })),
            null,
            2,
          ),
        );
      else for (const e of entries) print(`${e.name.padEnd(26)} ${e.kind.padEnd(12)} ${e.description}`);
    });

  cli
    .command('start')
    .description('start a run (input from --input JSON and --FIELD VALUE pairs); a second start on the same target joins the run in flight')
    .argument('<runbook>', 'workflow type (runbook list)')
    .option('--input <json>', 'the input as JSON')
    .option('--execute', 'execute mode: destructive steps ask for approval and apply (default: plan)')
    .addOption(new Option('--severity <severity>', 'severity').choices([...severities]))
    .option('--wait', 'wait for the result and print it')
    .allowUnknownOption()
    .allowExcessArguments()
    .action((name: string, options: { input?: string; execute?: boolean; severity?: string; wait?: boolean }, command: Command) =>
      withSession(
        command.optsWithGlobals(),
        async ({ runbooks, as, key, verified }) => {
          let input: Record<string, unknown> = {};
          if (options.input !== undefined) {
            try {
              input = JSON.parse(options.input) as Record<string, unknown>;
            } catch {
              throw new UsageError('runbook start: --input is not valid JSON');
            }
          }
          input = { ...input, ...inputFromFlags(command.args.slice(1)) };
          if (options.execute) input.mode = 'execute';
          if (options.severity) input.severity = options.severity;
          const started = await runbooks.startRunbook(name, input, { startedBy: as });
          print(`started ${started.workflowId} (run ${started.runId})${key ? `, signed by ${as} (${key.source})` : ''}`);
          if (!key && verified) process.stderr.write(`note: unsigned start (no key for ${as}: --key FILE, or ssh-agent): its steps need two approvers\n`);
          if (options.wait) return print(JSON.stringify(await resultOrRefusal(runbooks, started), null, 2));
          const early = await within(
            resultOrRefusal(runbooks, started).then((result) => ({ result })),
            firstMomentsMs,
          );
          if (early) print(`${started.workflowId} finished: ${(early.result as { outcome?: string } | undefined)?.outcome ?? 'done'} (runbook status ${started.workflowId})`);
        },
        { signs: true },
      ),
    );

  cli
    .command('status')
    .description("a run's progress, plan and timeline")
    .argument('<id>', 'workflow id of the run')
    .option('--watch', 'follow it until it finishes')
    .option('--json', 'as JSON')
    .action((id: string, options: { watch?: boolean; json?: boolean }, command: Command) =>
      withSession(command.optsWithGlobals(), async ({ runbooks }) => {
        if (options.watch) return watch(runbooks, id);
        const asked = runbooks.getStatus(id).then(
          (status) => ({ status }),
          (err: unknown) => ({ unanswered: `no worker answered (${runFailureText(err)})` }),
        );
        const answer = (await within(asked, statusQueryMs)) ?? { unanswered: `no worker answered within ${statusQueryMs / 1000} s` };
        if ('status' in answer) return print(options.json ? JSON.stringify(answer.status, null, 2) : statusText(id, answer.status));
        const record = await runbooks.describeRun(id);
        print(options.json ? JSON.stringify({ ...record, note: answer.unanswered }, null, 2) : runRecordText(record, answer.unanswered));
      }),
    );

  cli
    .command('pending')
    .description('runs waiting for approval')
    .option('--json', 'as JSON')
    .action((options: { json?: boolean }, command: Command) =>
      withSession(command.optsWithGlobals(), async ({ runbooks }) => {
        const runs = await runbooks.listRuns({ approvalState: 'pending' });
        print(options.json ? JSON.stringify(runs, null, 2) : runsTable(runs));
      }),
    );

  addDecisionCommand(cli, 'approve');
  addDecisionCommand(cli, 'reject');

  cli
    .command('sign')
    .description('a signed decision to paste into the Temporal UI (Send an Update: approve or reject)')
    .argument('<id>', 'workflow id of the run')
    .requiredOption('--step <step>', 'the step waiting for approval')
    .requiredOption('--reason <text>', 'why')
    .option('--plan <hash>', `the plan hash you read (at least ${minPlanHashPrefix} digits)`)
    .option('--reject', 'a rejection (default: an approval)')
    .action((id: string, options: DecisionOptions & { reject?: boolean }, command: Command) =>
      withSession(
        command.optsWithGlobals(),
        async ({ runbooks, as, key }) => {
          if (!key) throw new UsageError(`runbook sign: no key to sign as ${as}: pass --key FILE or add your key to ssh-agent`);
          const verdict: DecisionVerdict = options.reject ? 'reject' : 'approve';
          const decision = await seenDecision(runbooks, verdict, id, options, as, (line) => process.stderr.write(`${line}\n`));
          const { statement, signature } = await runbooks.signDecision(verdict, id, decision);
          process.stderr.write(`Paste into the Temporal UI: run ${id} > Send an Update > "${verdict}" (or the Signal "${verdict}Signal"), valid until it expires:\n`);
          print(JSON.stringify({ statement, signature }));
        },
        { signs: true },
      ),
    );

  cli
    .command('cancel')
    .description('stop a run before its next destructive step; it cleans up and ends Canceled')
    .argument('<id>', 'workflow id of the run')
    .option('--reason <text>', 'why')
    .action((id: string, options: { reason?: string }, command: Command) =>
      withSession(command.optsWithGlobals(), async ({ runbooks, as }) => {
        await runbooks.cancel(id, { by: as, reason: options.reason });
        print(`cancellation requested for ${id}: no further destructive step will run; it ends Canceled once it has cleaned up`);
      }),
    );
  return cli;
}

program()
  .parseAsync(process.argv)
  .then(
    () => process.exit(0),
    (err: unknown) => {
      if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2); // commander printed it
      const message =
        err instanceof ConfigError
          ? err.message.replace(/\n\s*/g, ' ')
          : err instanceof UsageError || err instanceof RunbookClientError
            ? err.message
            : `runbook: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      process.stderr.write(`${message}\n`);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
