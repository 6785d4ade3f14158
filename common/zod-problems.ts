import type { z } from 'zod';

/** Each problem zod found, as `path: message`; `whole` names the value itself when the path is empty. */
export function zodProblems(error: z.ZodError, whole = 'input'): string[] {
  return error.issues.map((issue) => `${issue.path.map(String).join('.') || whole}: ${issue.message}`);
}
