import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

/** 快速回滚 (`kubectl rollout undo`): the manual's names are the defaults. */
export const rollbackDeploymentInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    deployment: kubeName.default('short-drama-app'),
    /** A revision from the rollout history (`--to-revision`); left out: the one before the current revision. */
    toRevision: z
      .number({ message: 'expected a revision number from the rollout history, such as 3' })
      .int({ message: 'expected a whole revision number, such as 3' })
      .min(1, { message: 'revisions start at 1; leave toRevision out to roll back to the previous revision' })
      .optional(),
    /** How long to wait for the rolled-back pods to become available. */
    waitTimeoutSeconds: z.number().int({ message: 'expected whole seconds' }).min(10, { message: 'at least 10 seconds' }).max(3600, { message: 'at most 3600 seconds (1 hour)' }).default(300),
  })
  .strict();

export type RollbackDeploymentInput = z.input<typeof rollbackDeploymentInput>;
