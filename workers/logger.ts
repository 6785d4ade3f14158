import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';

/**
 * One JSON object per line. Workflow and activity lines carry workflowId and runId (activity
 * context calls it workflowRunId; renamed so every line uses the same key).
 */
export function formatLogEntry(entry: LogEntry): string {
  const { workflowRunId, ...meta } = (entry.meta ?? {}) as Record<string, unknown>;
  const line: Record<string, unknown> = {
    time: new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString(),
    level: entry.level,
    message: entry.message,
    ...meta,
  };
  if (workflowRunId !== undefined && line.runId === undefined) line.runId = workflowRunId;
  return JSON.stringify(line, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
}

export function createJsonLogger(level: LogLevel, write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): DefaultLogger {
  return new DefaultLogger(level, (entry) => write(formatLogEntry(entry)));
}
