import { executeChild, workflowInfo } from '@temporalio/workflow';
import type { RollbackDeploymentResult } from '../../workflows/rollback-deployment';

/** The production workflows plus a parent that runs rollbackDeployment as monthlyReview's emergency-plan check does. */
export * from '../../workflows';

/** Runs rollbackDeployment in plan mode as a child under an id this parent chooses. */
export async function rollbackPlanParent(input: { namespace: string; deployment: string }): Promise<{ childId: string; child: RollbackDeploymentResult }> {
  const childId = `${workflowInfo().workflowId}/rollbackDeployment-plan`;
  const child = await executeChild<(args: Record<string, unknown>) => Promise<RollbackDeploymentResult>>('rollbackDeployment', {
    workflowId: childId,
    args: [{ ...input, mode: 'plan', severity: 'P3', startedBy: 'monthly-check' }],
  });
  return { childId, child };
}
