import { z } from 'zod';
import { countLines } from '../common/checklist';
import { failure, invalidInput } from './errors';
import type { LogsInput, LogsResult } from './kubernetes-pods';
import type { PutEvidenceInput, PutEvidenceResult } from './s3';
import type { EvidenceObject } from './incident-evidence';
import { zodProblems } from '../common/zod-problems';

/**
 * The checklists' log checks without the log in workflow history: the activity reads a
 * container's newest lines, writes them to S3 evidence and gives back only counts, the first and
 * last matching line of each pattern (cut short) and the evidence object's key, size and sha256.
 */
export interface LogEvidenceDeps {
  getContainerLogs: (input: LogsInput) => Promise<LogsResult>;
  /** Present when S3 is configured: the evidence prefix and the S3 activities' putEvidence. */
  evidence?: { evidencePrefix: string; putEvidence: (input: PutEvidenceInput) => Promise<PutEvidenceResult> };
}

const scanLogsInput = z
  .object({
    namespace: z.string().min(1),
    deployment: z.string().min(1),
    tailLines: z.number().int().min(1).max(100_000).optional(),
    maxBytes: z.number().int().min(1).max(1_048_576).default(262_144),
    /** Relative to the evidence prefix; the workflow makes it from its id and run id. */
    key: z
      .string()
      .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, { message: 'expected a relative key of letters, digits, ".", "_", "-" and "/"' })
      .refine((key) => !key.split('/').includes('..'), { message: 'expected no ".." segment' }),
    /** Line patterns by name: a regular expression's source and flags (i, m, s, u only). */
    patterns: z.record(
      z.string().regex(/^[a-z][a-zA-Z0-9-]*$/),
      z.object({
        source: z.string().min(1).max(500),
        flags: z
          .string()
          .regex(/^[imsu]*$/, { message: 'expected flags among i, m, s, u' })
          .default(''),
      }),
    ),
  })
  .strict();

export type ScanLogsInput = z.input<typeof scanLogsInput>;

export interface ScanLogsResult {
  pod: string;
  lines: number;
  bytes: number;
  truncated: boolean;
  /** The log as read, in S3 under the evidence prefix. */
  evidence: EvidenceObject;
  /** Per pattern: matching lines, the first and the last (trimmed, at most 200 characters). */
  matches: Record<string, { count: number; first?: string; last?: string }>;
}

export function createLogEvidenceActivities({ getContainerLogs, evidence }: LogEvidenceDeps) {
  return {
    async scanLogsToEvidence(raw: ScanLogsInput): Promise<ScanLogsResult> {
      const parsed = scanLogsInput.safeParse(raw);
      if (!parsed.success) throw invalidInput(`scanLogsToEvidence: ${zodProblems(parsed.error).join('; ')}`);
      const input = parsed.data;
      const patterns = Object.entries(input.patterns).map(([name, { source, flags }]) => {
        try {
          return { name, pattern: new RegExp(source, flags) };
        } catch (err) {
          throw invalidInput(`scanLogsToEvidence: pattern ${name} is not a regular expression: ${(err as Error).message}`);
        }
      });
      if (!evidence) throw failure('InvalidInput', 'cannot write log evidence: S3 is not configured (S3_BUCKET)');
      const logs = await getContainerLogs({ namespace: input.namespace, deployment: input.deployment, tailLines: input.tailLines, maxBytes: input.maxBytes });
      // Overwrite: a retried attempt reads a moment later and replaces what the failed one wrote.
      const put = await evidence.putEvidence({ key: `${evidence.evidencePrefix}${input.key}`, body: logs.text, contentType: 'text/plain; charset=utf-8', overwrite: true });
      const matches = Object.fromEntries(patterns.map(({ name, pattern }) => [name, countLines(logs.text, pattern)]));
      return { pod: logs.pod, lines: logs.lines, bytes: logs.bytes, truncated: logs.truncated, evidence: { key: put.key, size: put.size, sha256: put.sha256 }, matches };
    },
  };
}
