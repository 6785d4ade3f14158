import { z } from 'zod';
import { targetSystems } from './preflight';

export const preflightInputSchema = z
  .object({
    /** Which systems to check; all configured ones by default. */
    targets: z
      .array(z.enum(targetSystems, { message: `expected one of ${targetSystems.join(', ')}` }))
      .min(1)
      .optional(),
    /** Who asked (the CLI and client API set it); preflight needs no approval, so it is informational. */
    startedBy: z.string().min(1).optional(),
  })
  .strict();
export type PreflightInput = z.infer<typeof preflightInputSchema>;
