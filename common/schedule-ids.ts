/** Keyed by task queue so deployments (and tests) sharing one Temporal namespace keep separate schedules. */
export function scheduleIdFor(taskQueue: string, workflowType: string): string {
  return `${taskQueue}:${workflowType}`;
}
