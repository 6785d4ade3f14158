import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName, memoryLimitQuantity } from './fields';

/** 场景1 Pod CrashLoopBackOff: the manual's names are the defaults. */
export const podCrashLoopInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The Deployment whose pods crash; its pods are found by its own selector. */
    deployment: kubeName.default('short-drama-app'),
    /** The container to look at and resize; default: the crashing one (or the Deployment's first). */
    container: kubeName.optional(),
    /** OOMKilled: the new memory limit is the current one times this factor, capped by maxMemoryLimit. */
    memoryLimitFactor: z.number().gt(1, { message: 'must be above 1 (the limit is raised, never lowered)' }).max(4, { message: 'at most 4' }).default(1.5),
    maxMemoryLimit: memoryLimitQuantity.default('4Gi'),
    /** A crash counts as caused by a rollout when the newest revision is at most this old. */
    recentRolloutMinutes: z
      .number()
      .int()
      .min(1, { message: 'at least 1 minute' })
      .max(7 * 24 * 60, { message: 'at most 7 days' })
      .default(60),
  })
  .strict();

export type PodCrashLoopInput = z.input<typeof podCrashLoopInput>;
