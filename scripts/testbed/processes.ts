import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { basename, dirname, join } from 'node:path';

export function runChecked(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().slice(-2000);
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status}: ${output}`);
  }
  return String(result.stdout ?? '');
}

/** Starts a long-running server detached from us, with its output in NAME.log and its pid in NAME.pid. */
/** Writes a configuration file a running server may read at any moment (by rename, never half-written); true when it changed. */
export function replaceFileIfChanged(file: string, text: string): boolean {
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return false;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.partial`, text);
  renameSync(`${file}.partial`, file);
  return true;
}

export function startDetached(stateDir: string, name: string, command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): number {
  const logFd = openSync(join(stateDir, `${name}.log`), 'a');
  const child = spawn(command, args, {
    cwd: options.cwd ?? stateDir,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  if (child.pid === undefined) throw new Error(`${name}: ${command} did not start`);
  child.unref();
  writeFileSync(pidFile(stateDir, name), String(child.pid));
  // How it was started, for restartDetached (a server may rewrite its own argv: Redis does).
  writeFileSync(startFile(stateDir, name), JSON.stringify({ command, args, cwd: options.cwd }));
  return child.pid;
}

const startFile = (stateDir: string, name: string) => join(stateDir, `${name}.start.json`);

/** Starts a server stopped by stopDetached again, exactly as startDetached last started it (the environment aside: this process's). */
export function restartDetached(stateDir: string, name: string): number {
  const file = startFile(stateDir, name);
  if (!existsSync(file)) throw new Error(`${name} cannot be restarted: ${file} is missing (it was not started by startDetached)`);
  const { command, args, cwd } = JSON.parse(readFileSync(file, 'utf8')) as { command: string; args: string[]; cwd?: string };
  return startDetached(stateDir, name, command, args, { cwd });
}

export function pidFile(stateDir: string, name: string): string {
  return join(stateDir, `${name}.pid`);
}

export function readPid(stateDir: string, name: string): number | undefined {
  const file = pidFile(stateDir, name);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Whether the process exists and has not exited: a zombie (exited, not yet reaped) is not alive. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ...", comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no procfs: the signal check is all there is
  }
}

/**
 * Whether the process of a pid file of ours still runs the program `program` (a file name such as
 * "kubelet"): a dead process's pid file, or one whose pid now belongs to another program, is not
 * "running".
 */
export function isRunning(stateDir: string, name: string, program: string): boolean {
  const pid = readPid(stateDir, name);
  if (pid === undefined || !isAlive(pid)) return false;
  try {
    return basename(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]) === program;
  } catch {
    return true; // no procfs: alive is all we can tell
  }
}

/** Polls a condition until it holds or the deadline passes; the error names what was awaited. */
export async function waitUntil(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 60_000, logHint?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await condition()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}${logHint ? `; see ${logHint}` : ''}`);
}

export function isPortOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Stops a server we started: `signal` (SIGTERM unless told) to its process group, SIGKILL if it lingers. */
export async function stopDetached(stateDir: string, name: string, timeoutMs = 30_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const pid = readPid(stateDir, name);
  if (pid !== undefined && isAlive(pid)) {
    signalGroup(pid, signal);
    try {
      await waitUntil(`${name} (pid ${pid}) to exit`, () => !isAlive(pid), timeoutMs);
    } catch {
      signalGroup(pid, 'SIGKILL');
      // Until it is gone its ports are still bound: a start right after would fail on them.
      await waitUntil(`${name} (pid ${pid}) to exit after SIGKILL`, () => !isAlive(pid), 10_000);
    }
  }
  rmSync(pidFile(stateDir, name), { force: true });
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
