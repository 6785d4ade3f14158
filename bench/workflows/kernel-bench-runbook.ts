import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { RunbookResultBase } from '../../common/runbook';
import { quickRead } from '../../workflows/activity-options';
import { RunbookRun } from '../../workflows/kernel/runbook-run';

export interface BenchActivities {
  benchNoop(step: number): Promise<number>;
  benchEvidence(input: { key: string; sizeBytes: number }): Promise<{ key: string; size: number; sha256: string }>;
}

const bench = proxyActivities<BenchActivities>(quickRead);
/** Local activities run inside the workflow task: no server round trip per step, so what is left is the kernel's own cost. */
const benchLocal = proxyLocalActivities<BenchActivities>({ startToCloseTimeout: '30 seconds' });

export interface KernelBenchInput {
  target: string;
  steps: number;
  kind: 'read' | 'local-read' | 'change' | 'evidence';
  evidenceBytesPerStep?: number;
}

/** The kernel with trivial work: read steps, auto-approved change steps, or steps collecting evidence. */
export async function kernelBenchRunbook(input: KernelBenchInput): Promise<RunbookResultBase> {
  const entry = { name: 'kernelBenchRunbook', kind: 'fault' as const, targetOf: () => input.target };
  const prefix = { read: 'read', 'local-read': 'read', evidence: 'collect', change: 'change' }[input.kind];
  const steps = Array.from({ length: input.steps }, (_, step) => `${prefix}-${step}`);
  const run = await RunbookRun.begin(entry, { mode: 'execute', severity: 'P2', startedBy: 'bench', scheduled: false }, steps);
  for (let step = 0; step < input.steps; step++) {
    if (input.kind === 'read') {
      await run.read(`read-${step}`, `read ${step}`, () => bench.benchNoop(step));
    } else if (input.kind === 'local-read') {
      await run.read(`read-${step}`, `read ${step}`, () => benchLocal.benchNoop(step));
    } else if (input.kind === 'evidence') {
      const evidence = await run.read(`collect-${step}`, `collect ${step}`, () =>
        bench.benchEvidence({ key: `bench/${input.target}/evidence-${step}.bin`, sizeBytes: input.evidenceBytesPerStep ?? 1024 * 1024 }),
      );
      run.addEvidence({ ...evidence, what: `synthetic evidence ${step}` });
    } else {
      await run.change({
        stepId: `change-${step}`,
        title: `change ${step}`,
        plan: async () => ({ summary: `trivial change ${step}`, needed: (await bench.benchNoop(step)) >= 0 }),
        apply: async () => `applied ${await bench.benchNoop(step)}`,
      });
    }
  }
  return run.finish(`${input.steps} ${input.kind} steps`, { impact: 'none (benchmark)', rootCause: 'benchmark', solution: 'benchmark', prevention: 'benchmark' });
}

/** The same 50 activity calls without the kernel: what Temporal itself costs per step on this server. */
export async function plainBenchWorkflow(input: { steps: number }): Promise<number> {
  let sum = 0;
  for (let step = 0; step < input.steps; step++) sum += await bench.benchNoop(step);
  return sum;
}
