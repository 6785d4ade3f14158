import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { resolve } from 'node:path';

export interface RunningProcess {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  /** Resolves with the first output line (stdout or stderr) that matches, waiting for it if needed. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  exited: Promise<number | null>;
}

export const repoRoot = resolve(__dirname, '..', '..');

/** Starts a TypeScript entry point of this repo the way npm scripts do (node with tsx), collecting its output lines. */
export function startScript(script: string, env: NodeJS.ProcessEnv, args: string[] = []): RunningProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: repoRoot, env });
  const lines: string[] = [];
  const waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];
  const onData = (buffered: { rest: string }) => (chunk: Buffer) => {
    const text = buffered.rest + chunk.toString();
    const parts = text.split('\n');
    buffered.rest = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  };
  child.stdout.on('data', onData({ rest: '' }));
  child.stderr.on('data', onData({ rest: '' }));
  // 'close', not 'exit': it comes after the last output line has been read.
  const exited = new Promise<number | null>((resolveExit) => child.once('close', (code) => resolveExit(code)));
  return {
    child,
    lines,
    exited,
    waitForLine(match, timeoutMs = 120_000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching output line within ${timeoutMs} ms; output:\n${lines.slice(-30).join('\n')}`)), timeoutMs);
        const waiter = {
          match,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolveLine(line);
          },
        };
        waiters.push(waiter);
        void exited.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            reject(new Error(`process exited before a matching line; output:\n${lines.slice(-30).join('\n')}`));
          }
        });
      });
    },
  };
}

export function parseJsonLines(lines: string[]): Array<Record<string, unknown>> {
  return lines.flatMap((line) => {
    try {
      const value = JSON.parse(line) as unknown;
      return typeof value === 'object' && value !== null ? [value as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}
