import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { catalog as defaultCatalog, type CatalogEntry } from '../../common/catalog';
import type { RunbookStatus } from '../../common/runbook';
import { ConfigError } from '../../config/load';
import { loadConfigWithSandbox } from '../../scripts/testbed/env-file';
import { connectClient } from '../../workers/temporal-client';
import { createRunbookClient, RunbookClientError, type RunbookClient } from '../runbook-client';
import { progressLine, runsTable, statusText } from './format';
import { resolveIdentity } from './identity';

const usage = `usage: runbook <command> [options]
  list [--json]                                   the catalog
  start NAME [--input JSON | --FIELD VALUE ...] [--execute] [--severity P0..P3] [--wait]
  status ID [--watch] [--json]                    a run's progress, plan and timeline
  pending [--json]                                runs waiting for approval
  approve ID --step STEP --reason TEXT [--plan HASH]
  reject ID --step STEP --reason TEXT [--plan HASH]
  cancel ID [--reason TEXT]
identity: --as NAME, or $RUNBOOK_USER, or the OS user`;

class UsageError extends Error {}

/** Temporal settings: configuration as usual, falling back to the local sandbox of this checkout. */
function temporalSettings() {
  return loadConfigWithSandbox(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE']).temporal;
}

/** Extra catalog entries from a module (test runbooks, plug-ins): RUNBOOK_EXTRA_CATALOG=path. */
function loadCatalog(): Record<string, CatalogEntry> {
  const extra = process.env.RUNBOOK_EXTRA_CATALOG;
  if (!extra) return defaultCatalog;
  const path = resolve(extra);
  if (!existsSync(path)) throw new UsageError(`RUNBOOK_EXTRA_CATALOG: no such file ${path}`);
  return { ...defaultCatalog, ...(require(path) as { extraCatalog: Record<string, CatalogEntry> }).extraCatalog };
}

const booleanFlags = new Set(['json', 'execute', 'wait', 'watch', 'help']);

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
  const known = new Set(['input', 'execute', 'severity', 'wait', 'as', 'json', 'watch']);
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

async function decide(runbooks: RunbookClient, verdict: 'approve' | 'reject', id: string, values: Record<string, unknown>, as: string): Promise<string> {
  const stepId = values.step as string | undefined;
  const reason = values.reason as string | undefined;
  if (!stepId) throw new UsageError(`runbook ${verdict}: --step is required`);
  if (!reason?.trim()) throw new UsageError(`runbook ${verdict}: --reason is required`);
  let planHash = values.plan as string | undefined;
  if (!planHash) {
    // Without --plan, decide on the plan pending now and say which one it was.
    const pending = (await runbooks.getStatus(id)).pending;
    if (!pending || pending.stepId !== stepId) throw new RunbookClientError(`step "${stepId}" is not waiting for approval${pending ? ` (pending: "${pending.stepId}")` : ''}`);
    planHash = pending.planHash;
  } else if (planHash.length < 64) {
    const pending = (await runbooks.getStatus(id)).pending;
    if (pending?.planHash.startsWith(planHash)) planHash = pending.planHash;
  }
  const receipt = await (verdict === 'approve' ? runbooks.approve : runbooks.reject)(id, { stepId, planHash, approver: as, reason });
  return `${verdict === 'approve' ? 'approved' : 'rejected'} "${receipt.stepId}" of ${id} as ${receipt.approver} (${receipt.role}), plan ${planHash.slice(0, 12)}`;
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
    if (values.json) print(JSON.stringify(entries.map(({ name, kind, description }) => ({ name, kind, description })), null, 2));
    else for (const e of entries) print(`${e.name.padEnd(26)} ${e.kind.padEnd(12)} ${e.description}`);
    return;
  }
  if (!['start', 'status', 'pending', 'approve', 'reject', 'cancel'].includes(command)) throw new UsageError(`unknown command "${command}"\n${usage}`);

  const as = resolveIdentity(values.as as string | undefined);
  const temporal = temporalSettings();
  const connection = await connectClient(temporal);
  try {
    const runbooks = createRunbookClient({ client: connection.client, taskQueue: temporal.taskQueue, catalog });
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
        print(`started ${started.workflowId} (run ${started.runId})`);
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
      case 'reject':
        print(await decide(runbooks, command, requireId(positionals, command), values, as));
        return;
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
