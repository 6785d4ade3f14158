import { z } from 'zod';
import { roles, runbookInputBase } from '../../common/runbook';

/** The kernel test runbook's input, shared by the workflow and its catalog entry (so a signed start's input digest agrees). */
export const kernelTestInput = z.object({
  ...runbookInputBase,
  target: z.string().min(1),
  steps: z
    .array(
      z.object({
        id: z.string().min(1),
        title: z.string().min(1),
        allowedRoles: z.array(z.enum(roles)).optional(),
        dependsOn: z.array(z.string()).optional(),
        failOnApply: z.boolean().optional(),
      }),
    )
    .min(1),
  report: z.boolean().default(false),
  /** Other objects the run changes, locked with the target (the catalog entry's locksOf). */
  locks: z.array(z.string().min(1)).default([]),
});
