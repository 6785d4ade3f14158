import { metricMeter } from '@temporalio/workflow';
import type { ApproverRole, DecisionChannel, RunbookOutcome } from '../../common/runbook';
import { runbookMetrics as m } from '../../common/runbook-metrics';
import type { RefusalReason } from './decision-rules';

/**
 * The kernel's metrics (common/runbook-metrics.ts). The SDK's workflow meter writes no history
 * event and drops what a replay emits again, so histories stay the same and each fact is counted
 * when it happens. Metrics are made at each use: the meter works only inside a workflow.
 */
const count = (metric: { name: string; description: string }, tags: Record<string, string>) => metricMeter.createCounter(metric.name, undefined, metric.description).add(1, tags);
const observe = (metric: { name: string; description: string }, seconds: number, tags: Record<string, string>) =>
  metricMeter.createHistogram(metric.name, 'float', 's', metric.description).record(Math.max(0, seconds), tags);

export const runMetrics = {
  started: (runbook: string) => count(m.runsStarted, { runbook }),
  finished: (runbook: string, outcome: RunbookOutcome) => count(m.runsFinished, { runbook, outcome }),
  approvalWait: (runbook: string, tier: ApproverRole | 'none', decision: 'approved' | 'rejected' | 'expired' | 'cancelled', seconds: number) =>
    observe(m.approvalWait, seconds, { runbook, tier, decision }),
  firstChange: (runbook: string, seconds: number) => observe(m.firstChange, seconds, { runbook }),
  autoApproval: (runbook: string, policy: string) => count(m.autoApprovals, { runbook, policy }),
  refusal: (runbook: string, reason: RefusalReason | 'policy-not-applicable', channel: DecisionChannel) => count(m.refusals, { runbook, reason, channel }),
};
