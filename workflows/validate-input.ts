import { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';

/**
 * Checks a workflow's input at its start. Bad input fails the run at once, non-retryable,
 * with every problem named, before any activity has run.
 */
export function validateInput<T extends z.ZodType>(entry: { name: string; inputSchema: T }, input: unknown): z.infer<T> {
  const workflowType = entry.name;
  const result = entry.inputSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.map(String).join('.') || 'input'}: ${issue.message}`);
  throw ApplicationFailure.create({
    type: 'InvalidInput',
    nonRetryable: true,
    message: `invalid input for ${workflowType}: ${problems.join('; ')}`,
    details: [problems],
  });
}
