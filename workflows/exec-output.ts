import type { ExecResult } from '../activities/kubernetes-exec';
import { failure } from '../common/failures';

/** The stdout of a command run in a pod; a timeout is transient, a bad exit code is not. */
export function checkedOutput(what: string, r: ExecResult, okCodes: number[] = [0]): string {
  if (r.timedOut) throw failure('Transient', `${what} in pods/${r.pod} timed out`);
  if (r.exitCode === null || !okCodes.includes(r.exitCode)) {
    throw failure('CommandFailed', `${what} in pods/${r.pod} failed (exit ${r.exitCode ?? 'unknown'}): ${(r.error ?? r.stderr).trim().slice(0, 500)}`);
  }
  return r.stdout;
}

/** The last line of `df -h <dir>` (the volume's line); '' when there is none. */
export function dfLine(dir: string, r: ExecResult): string {
  return checkedOutput(`df -h ${dir}`, r).trim().split('\n').slice(-1)[0] ?? '';
}

/** Use% of a `df -h` line, e.g. 85; undefined when the line has none. */
export function dfUsePercent(line: string): number | undefined {
  const match = /\s(\d+)%\s/.exec(` ${line} `);
  return match ? Number(match[1]) : undefined;
}
