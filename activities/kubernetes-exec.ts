import { Writable } from 'node:stream';
import { Exec, type V1Status } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { failure, invalidInput } from './errors';
import { guarded, kcall, pickPod, type KubeScope } from './kubernetes-common';

export interface ExecInput {
  namespace: string;
  /** The pod, or a deployment whose first Ready pod is used (as `kubectl exec deployment/x`). */
  pod?: string;
  deployment?: string;
  container?: string;
  command: string[];
  /** Default 30 s, at most 600 s. */
  timeoutSeconds?: number;
  /** Cap on stdout and on stderr each (default 64 KiB, at most 1 MiB). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  pod: string;
  container: string;
  /** null when the command timed out or the status gave none. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  /** Why there is no exit code when the command did not run (e.g. the runtime's "executable file not found in $PATH"). */
  error?: string;
}

class CappedBuffer extends Writable {
  chunks: Buffer[] = [];
  size = 0;
  truncated = false;
  constructor(private readonly cap: number) {
    super();
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    const room = this.cap - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.chunks.push(part);
      this.size += part.length;
    }
    callback();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function exitCodeOf(status: V1Status | undefined): number | null {
  if (!status) return null;
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = cause?.message !== undefined ? Number(cause.message) : NaN;
  if (Number.isInteger(code)) return code;
  // Some runtimes (kwok) report a non-zero exit as an error status whose message ends in "exit status N".
  const text = [status.message, ...(status.details?.causes ?? []).map((x) => x.message)].join(' ');
  const m = /(?:exit status|exit code|non-zero exit code:?)\s*(\d+)/i.exec(text);
  return m ? Number(m[1]) : null;
}

export function createKubernetesExecActivities(scope: KubeScope) {
  return {
    /** Runs a command in a pod's container over the exec websocket, with a timeout and an output cap. No stdin, no TTY. */
    async execInPod(input: ExecInput): Promise<ExecResult> {
      const { namespace, container } = input;
      const c = guarded(scope, namespace, { pod: input.pod, deployment: input.deployment, container });
      if (!Array.isArray(input.command) || input.command.length === 0 || input.command.some((a) => typeof a !== 'string')) throw invalidInput('command must be a non-empty array of strings');
      const timeoutSeconds = input.timeoutSeconds ?? 30;
      if (!(timeoutSeconds > 0 && timeoutSeconds <= 600)) throw invalidInput('timeoutSeconds must be between 1 and 600');
      const cap = input.maxOutputBytes ?? 65_536;
      if (!Number.isInteger(cap) || cap < 1 || cap > 1_048_576) throw invalidInput('maxOutputBytes must be an integer between 1 and 1048576');

      const pod = await pickPod(c, namespace, input);
      const podName = pod.metadata?.name ?? '';
      const names = (pod.spec?.containers ?? []).map((x) => x.name);
      const containerName = container ?? names[0] ?? '';
      if (!names.includes(containerName)) throw failure('NotFound', `pods/${podName} in namespace ${namespace} has no container ${containerName} (containers: ${names.join(', ')})`);

      const stdout = new CappedBuffer(cap);
      const stderr = new CappedBuffer(cap);
      let status: V1Status | undefined;
      let timedOut = false;
      const action = `create pods/${podName}/exec`;
      const ws = await kcall(action, 'pods/exec', namespace, async () => {
        try {
          return await new Exec(c.kube).exec(namespace, podName, containerName, input.command, stdout, stderr, null, false, (s) => (status = s));
        } catch (err) {
          // The websocket upgrade reports HTTP errors as "Unexpected server response: 403".
          const code = /Unexpected server response: (\d{3})/.exec(String((err as Error)?.message ?? err))?.[1];
          throw code ? Object.assign(new Error(`${(err as Error).message}`), { statusCode: Number(code) }) : err;
        }
      });
      const ctx = Context.current();
      const started = Date.now();
      // terminate() drops the connection at once; close() would wait for the server's close frame.
      const stop = () => ((ws as unknown as { terminate?: () => void }).terminate ?? ws.close).call(ws);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timedOut = true;
          stop();
        }, timeoutSeconds * 1000);
        // Heartbeats keep a long command alive under a heartbeat timeout and let cancellation arrive.
        const beat = setInterval(() => ctx.heartbeat({ exec: podName, elapsedMs: Date.now() - started }), 5000);
        const onCancel = () => stop();
        ctx.cancellationSignal.addEventListener('abort', onCancel);
        if (ctx.cancellationSignal.aborted) stop();
        ws.on('close', () => {
          clearTimeout(timer);
          clearInterval(beat);
          ctx.cancellationSignal.removeEventListener('abort', onCancel);
          resolve();
        });
      });
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      const exitCode = timedOut ? null : exitCodeOf(status);
      const result: ExecResult = { pod: podName, container: containerName, exitCode, stdout: stdout.text(), stderr: stderr.text(), truncated: stdout.truncated || stderr.truncated, timedOut };
      if (!timedOut && exitCode === null) result.error = status?.message ?? 'the connection closed without a status';
      return result;
    },
  };
}
