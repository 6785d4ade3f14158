import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { catalog as defaultCatalog, type CatalogEntry } from '../../common/catalog';
import type { RunbookStatus } from '../../common/runbook';
import { ConfigError } from '../../config/load';
import { loadConfigWithSandbox, sandboxApproverKeyDir } from '../../config/sandbox';
import { connectClient } from '../../config/temporal-connection';
import { createRunbookClient, RunbookClientError, type RunbookClient } from '../runbook-client';
import { createInterface } from 'node:readline/promises';
import type { DecisionVerdict } from '../../common/runbook';
import { approvalsVerified } from '../../config/schema';
import { durationMs } from '../../workflows/kernel/runbook-run';
import { pendingPlanText, progressLine, runsTable, statusText } from './format';
import { resolveIdentity } from './identity';
import { resolveSigner } from './keys';

const usage = `usage: runbook <command> [options]
  list [--json]                                   the catalog
  start NAME [--input JSON | --FIELD VALUE ...] [--execute] [--severity P0..P3] [--wait]
  status ID [--watch] [--json]                    a run's progress, plan and timeline
  pending [--json]                                runs waiting for approval
  approve ID --step STEP --reason TEXT [--plan HASH]   prints the plan; decides only the plan
  reject ID --step STEP --reason TEXT [--plan HASH]    hash given (or confirmed on a terminal)
  sign ID --step STEP --reason TEXT --plan HASH [--reject]
                                                  a signed decision to paste into the Temporal UI
  cancel ID [--reason TEXT]
identity: --as NAME, or $RUNBOOK_USER, or the OS user
key: --key FILE, else ssh-agent ($SSH_AUTH_SOCK), else the sandbox's demo key for NAME`;

class UsageError extends Error {}

/** Configuration as usual, falling back to the local sandbox of this checkout (its server, approvers and keys). */
function cliConfig() {
  const config = loadConfigWithSandbox(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'RUNBOOK_APPROVERS'], { onlyUnset: true });
  const sandbox = !process.env.TEMPORAL_ADDRESS;
  return { config, sandboxKeyDir: sandbox ? sandboxApproverKeyDir() : undefined };
}

/** Extra catalog entries from a module (test runbooks, plug-ins): RUNBOOK_EXTRA_CATALOG=path. */
function loadCatalog(): Record<string, CatalogEntry> {
  const extra = process.env.RUNBOOK_EXTRA_CATALOG;
  if (!extra) return defaultCatalog;
  const path = resolve(extra);
  if (!existsSync(path)) throw new UsageError(`RUNBOOK_EXTRA_CATALOG: no such file ${path}`);
  return { ...defaultCatalog, ...(require(path) as { extraCatalog: Record<string, CatalogEntry> }).extraCatalog };
}

const booleanFlags = new Set(['json', 'execute', 'wait', 'watch', 'help', 'reject']);

/** --flag value, --flag=value and boolean --flags; any other --field value is kept (for runbook inputs). */
function parseCommandLine(argv: string[]): { values: Record<string, string | boolean>; positionals: string[] } {
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (!token.startsWith('--')) {
      positionals.push(token);
      continue;
    }
    const [name, inline] = token.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (inline !== undefined) values[name] = inline;
    else if (booleanFlags.has(name)) values[name] = true;
    else {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      values[name] = value;
    }
  }
  return { values, positionals };
}

/** --some-field value pairs become input fields (values read as JSON when they parse). */
function inputFromFlags(values: Record<string, unknown>): Record<string, unknown> {
  const known = new Set(['input', 'execute', 'severity', 'wait', 'as', 'json', 'watch', 'key']);
  const input: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(values)) {
    if (known.has(flag)) continue;
    const key = flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (typeof value !== 'string') {
      input[key] = value;
      continue;
    }
    try {
      input[key] = JSON.parse(value);
    } catch {
      input[key] = value;
    }
  }
  return input;
}

function requireId(positionals: string[], command: string): string {
  const id = positionals[1];
  if (!id) throw new UsageError(`runbook ${command}: the workflow id is required`);
  return id;
}

/** A short plan hash must still name one plan: at least this many hex digits. */
const minPlanPrefix = 12;

/**
 * The decision a person is about to make, on the plan they saw: the pending plan is printed, and
 * its hash must be the one given with --plan, or confirmed on a terminal. Never the plan that
 * merely happens to be pending.
 */
async function seenDecision(runbooks: RunbookClient, verdict: DecisionVerdict, id: string, values: Record<string, unknown>, as: string, print: (line: string) => void) {
  const stepId = values.step as string | undefined;
  const reason = values.reason as string | undefined;
  if (!stepId) throw new UsageError(`runbook ${verdict}: --step is required`);
  if (!reason?.trim()) throw new UsageError(`runbook ${verdict}: --reason is required`);
  const pending = (await runbooks.getStatus(id)).pending;
  if (!pending || pending.stepId !== stepId) throw new RunbookClientError(`step "${stepId}" is not waiting for approval${pending ? ` (pending: "${pending.stepId}")` : ''}`);
  print(pendingPlanText(id, pending));
  const given = values.plan as string | undefined;
  if (given !== undefined) {
    if (given.length < minPlanPrefix || !pending.planHash.startsWith(given)) {
      throw new RunbookClientError(
        `the pending plan is ${pending.planHash.slice(0, minPlanPrefix)}, not ${given}${given.length < minPlanPrefix ? ` (give at least ${minPlanPrefix} digits)` : ''}: review the plan above and decide again`,
      );
    }
  } else if (process.stdin.isTTY) {
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await prompt.question(`${verdict} plan ${pending.planHash.slice(0, minPlanPrefix)} of "${stepId}"? type yes: `);
    prompt.close();
    if (answer.trim().toLowerCase() !== 'yes') throw new UsageError('nothing decided');
  } else {
    throw new UsageError(
      `runbook ${verdict}: refusing to decide a plan you have not confirmed: read the plan above and pass --plan ${pending.planHash.slice(0, minPlanPrefix)}, or run on a terminal to confirm it`,
    );
  }
  return { stepId, planHash: pending.planHash, approver: as, reason };
}

async function watch(runbooks: RunbookClient, id: string, print: (line: string) => void): Promise<RunbookStatus> {
  let last = '';
  for (;;) {
    const status = await runbooks.getStatus(id).catch(async (err: unknown) => {
      // A finished run may no longer answer queries from a worker; its result still tells.
      const result = (await runbooks.waitForResult<{ outcome?: string }>(id).catch(() => undefined)) ?? undefined;
      if (result) return { state: 'finished', outcome: result.outcome, runbook: id } as unknown as RunbookStatus;
      throw err;
    });
    const line = progressLine(status);
    if (line !== last) print(line);
    last = line;
    if (status.state === 'finished') return status;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv);
  const command = positionals[0];
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (!command || command === 'help' || values.help) {
    print(usage);
    return;
  }
  const catalog = loadCatalog();
  if (command === 'list') {
    const entries = Object.values(catalog).sort((a, b) => a.name.localeCompare(b.name));
    if (values.json)
      print(
        JSON.stringify(
          entries.map(({ name, kind, description }) => ({ name, kind, description })),
          null,
          2,
        ),
      );
    else for (const e of entries) print(`${e.name.padEnd(26)} ${e.kind.padEnd(12)} ${e.description}`);
    return;
  }
  if (!['start', 'status', 'pending', 'approve', 'reject', 'sign', 'cancel'].includes(command)) throw new UsageError(`unknown command "${command}"\n${usage}`);

  const as = resolveIdentity(values.as as string | undefined);
  const { config, sandboxKeyDir } = cliConfig();
  const temporal = config.temporal;
  const key = await resolveSigner(as, { keyFile: values.key as string | undefined, approvers: config.approvers, sandboxKeyDir });
  const connection = await connectClient(temporal);
  try {
    const statementLifetimeMs = durationMs(config.approvals.statementLifetime);
    const runbooks = createRunbookClient({ client: connection.client, taskQueue: temporal.taskQueue, catalog, signer: key?.signer, statementLifetimeMs });
    switch (command) {
      case 'start': {
        const name = positionals[1];
        if (!name) throw new UsageError('runbook start: the runbook name is required (see runbook list)');
        let input: Record<string, unknown> = {};
        if (values.input !== undefined) {
          try {
            input = JSON.parse(values.input as string) as Record<string, unknown>;
          } catch {
            throw new UsageError('runbook start: --input is not valid JSON');
          }
        }
        input = { ...input, ...inputFromFlags(values) };
        if (values.execute) input.mode = 'execute';
        if (values.severity) input.severity = values.severity;
        const started = await runbooks.startRunbook(name, input, { startedBy: as });
        print(`started ${started.workflowId} (run ${started.runId})${key ? `, signed by ${as} (${key.source})` : ''}`);
        if (!key && approvalsVerified(config)) process.stderr.write(`note: unsigned start (no key for ${as}: --key FILE, or ssh-agent): its steps need two approvers\n`);
        if (values.wait) {
          const result = await runbooks.waitForResult(started.workflowId);
          print(JSON.stringify(result, null, 2));
        }
        return;
      }
      case 'status': {
        const id = requireId(positionals, 'status');
        if (values.watch) {
          await watch(runbooks, id, print);
          return;
        }
        const status = await runbooks.getStatus(id);
        print(values.json ? JSON.stringify(status, null, 2) : statusText(id, status));
        return;
      }
      case 'pending': {
        const runs = await runbooks.listRuns({ approvalState: 'pending' });
        print(values.json ? JSON.stringify(runs, null, 2) : runsTable(runs));
        return;
      }
      case 'approve':
      case 'reject': {
        const id = requireId(positionals, command);
        const decision = await seenDecision(runbooks, command, id, values, as, print);
        const receipt = await runbooks[command](id, decision);
        const progress = receipt.required && receipt.required > 1 ? `; ${receipt.approvals} of ${receipt.required} approvals` : '';
        const proof = receipt.verified ? `signed with ${receipt.keyFingerprint}` : 'UNVERIFIED';
        print(`${command === 'approve' ? 'approved' : 'rejected'} "${receipt.stepId}" of ${id} as ${receipt.approver} (${receipt.role}), plan ${decision.planHash.slice(0, 12)}, ${proof}${progress}`);
        return;
      }
      case 'sign': {
        const id = requireId(positionals, command);
        if (!key) throw new UsageError(`runbook sign: no key to sign as ${as}: pass --key FILE or add your key to ssh-agent`);
        const verdict: DecisionVerdict = values.reject ? 'reject' : 'approve';
        const decision = await seenDecision(runbooks, verdict, id, values, as, (line) => process.stderr.write(`${line}\n`));
        const { statement, signature } = await runbooks.signDecision(verdict, id, decision);
        process.stderr.write(`Paste into the Temporal UI: run ${id} > Send an Update > "${verdict}" (or the Signal "${verdict}Signal"), valid until it expires:\n`);
        print(JSON.stringify({ statement, signature }));
        return;
      }
      case 'cancel': {
        const id = requireId(positionals, 'cancel');
        await runbooks.cancel(id, { by: as, reason: values.reason as string | undefined });
        print(`cancel sent to ${id}: no further destructive step will run`);
        return;
      }
    }
  } finally {
    await connection.close();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
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
