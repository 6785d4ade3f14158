/**
 * The worker's own Prometheus metrics, beside the SDK's `temporal_*`: emitted by the kernel
 * (workflows/kernel/run-metrics.ts), exported by the worker's runtime (workers/run-worker.ts),
 * charted by deploy/grafana/runbook-dashboard.json. Labels are bounded: runbook, outcome, tier,
 * decision, policy, reason, channel; never a target or a run. The SDK adds namespace, taskQueue
 * and workflowType (so spelt on metrics of workflow code; its own temporal_* say task_queue).
 */
export const runbookMetrics = {
  runsStarted: { name: 'runbook_runs_started_total', description: 'Runbook runs started, by runbook' },
  runsFinished: { name: 'runbook_runs_finished_total', description: 'Runbook runs finished, by runbook and outcome' },
  approvalWait: {
    name: 'runbook_approval_wait_seconds',
    description: 'From the approval request to its decision (approved, rejected, expired, cancelled), by the tier that was asked last',
  },
  firstChange: { name: 'runbook_time_to_first_change_seconds', description: 'From the start of a run to its first applied change, by runbook' },
  autoApprovals: { name: 'runbook_auto_approvals_total', description: 'Steps approved by a policy without a person, by runbook and policy' },
  refusals: { name: 'runbook_refusals_total', description: 'Decisions refused and auto-approval policies that did not apply, by reason and channel' },
} as const;

/**
 * Bucket bounds of the two histograms, in seconds: the SDK's default buckets are milliseconds.
 * Escalation tiers wait 15 min (P0) to 24 h (P3); a run reaches its first change in seconds to hours.
 */
export const runbookHistogramBuckets: Record<string, number[]> = {
  [runbookMetrics.approvalWait.name]: [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400],
  [runbookMetrics.firstChange.name]: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 86_400],
};
