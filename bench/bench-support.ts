import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';

const repoRoot = resolve(__dirname, '..');

/** The q-quantile (0..1) of the values, nearest rank. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const ms = (value: number) => `${value.toFixed(0)} ms`;

/** The machine and its load, printed with every result (2 cores are shared with other work). */
export function machineLine(): string {
  return `${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
}

/** A project script (workers/main.ts, scripts/alert-bridge.ts) in its own Node process, as `npm run` starts it. */
export interface ScriptProcess {
  child: ChildProcess;
  lines: string[];
  /** The first output line matching, waiting up to timeoutMs. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resident set size in bytes, from /proc (the process itself: node runs the script directly). */
  rssBytes(): number;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startScript(script: string, env: NodeJS.ProcessEnv): ScriptProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<{ match: (line: string) => boolean; resolve: (line: string) => void }>();
  const exited = new Promise<void>((resolveExit) => child.once('close', () => resolveExit()));
  const onData = (buffered: { rest: string }) => (chunk: Buffer) => {
    const parts = (buffered.rest + chunk.toString()).split('\n');
    buffered.rest = parts.pop() ?? '';
    for (const line of parts) {
      // Only the last lines are kept: a worker under load logs a lot.
      if (lines.push(line) > 2000) lines.shift();
      for (const waiter of [...waiters]) {
        if (!waiter.match(line)) continue;
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  };
  child.stdout!.on('data', onData({ rest: '' }));
  child.stderr!.on('data', onData({ rest: '' }));
  return {
    child,
    lines,
    waitForLine(match, timeoutMs = 120_000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolveLine, reject) => {
        const waiter = {
          match,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolveLine(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${script}: no matching line within ${timeoutMs} ms; last output:\n${lines.slice(-20).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(() => {
          if (!waiters.delete(waiter)) return;
          clearTimeout(timer);
          reject(new Error(`${script} exited (${child.exitCode ?? child.signalCode}); last output:\n${lines.slice(-20).join('\n')}`));
        });
      });
    },
    rssBytes() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
    },
    async stop(graceMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs `work` on every item, at most `limit` at once. */
export async function eachLimited<T>(items: T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** Terminates every run still open on the bench's own task queue (its runs and their target locks); returns how many. */
export async function terminateOpenRuns(client: Client, taskQueue: string, reason: string): Promise<number> {
  const open: string[] = [];
  for await (const run of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` })) open.push(run.workflowId);
  await eachLimited(open, 20, async (workflowId) => {
    await client.workflow
      .getHandle(workflowId)
      .terminate(reason)
      .catch(() => undefined); // ended meanwhile
  });
  return open.length;
}
