import type { WorkerOptions } from '@temporalio/worker';
import type { RunbookConfig } from '../config/schema';

/**
 * Worker Versioning, when configured (worker.deploymentName and worker.buildId): the worker polls
 * as one version of a Worker Deployment, and a new version takes new runs only once an operator
 * makes it current (README "Safe upgrades"). Workflow types are PINNED unless they say otherwise:
 * a runbook that planned and waits for approval finishes on the code it planned with, and the
 * checklists are short runs, started each time on the current version by their schedules.
 * Long-lived entity workflows (targetLock) declare AUTO_UPGRADE themselves, with patched().
 * Unconfigured: no versioning options at all, the worker as before.
 */
export function workerVersioning(worker: RunbookConfig['worker']): Pick<WorkerOptions, 'workerDeploymentOptions'> {
  const { deploymentName, buildId } = worker;
  if (!deploymentName || !buildId) return {};
  return { workerDeploymentOptions: { version: { deploymentName, buildId }, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' } };
}
