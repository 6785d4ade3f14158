import { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import { zodProblems } from '../common/zod-problems';

/**
 * Checks a workflow's input at its start. Bad input fails the run at once, non-retryable,
 * with every problem named, before any activity has run.
 */
export function validateInput<T extends z.ZodType>(entry: { name: string; inputSchema: T }, input: unknown): z.infer<T> {
  const workflowType = entry.name;
  const result = entry.inputSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = zodProblems(result.error);
  throw ApplicationFailure.create({
    type: 'InvalidInput',
    nonRetryable: true,
    message: `invalid input for ${workflowType}: ${problems.join('; ')}`,
    details: [problems],
  });
}
