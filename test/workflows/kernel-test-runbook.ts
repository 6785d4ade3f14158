import { proxyActivities } from '@temporalio/workflow';
import type { z } from 'zod';
import type { RunbookResultBase } from '../../common/runbook';
import { kernelTestInput as inputSchema } from './kernel-test-input';
import { quickRead } from '../../workflows/activity-options';
import { RunbookRun } from '../../workflows/kernel/runbook-run';
import { extraCatalog } from './test-catalog';
import { validateInput } from '../../workflows/validate-input';

/** Activities the kernel tests provide: a target whose state lives in the test process. */
export interface TestTargetActivities {
  readTestTarget(target: string): Promise<{ version: number; applied: string[] }>;
  applyTestChange(target: string, stepId: string): Promise<void>;
}

const target = proxyActivities<TestTargetActivities>(quickRead);

/** A runbook made only of kernel calls: one read step, then the given destructive steps. */
export async function kernelTestRunbook(raw: z.input<typeof inputSchema>): Promise<RunbookResultBase> {
  const input = validateInput(extraCatalog.kernelTestRunbook, raw);
  const run = await RunbookRun.begin(extraCatalog.kernelTestRunbook, input, ['inspect', ...input.steps.map((s) => s.id)]);
  await run.read(
    'inspect',
    'Read the target',
    () => target.readTestTarget(input.target),
    (s) => `version ${s.version}`,
  );
  for (const step of input.steps) {
    await run.change({
      stepId: step.id,
      title: step.title,
      allowedRoles: step.allowedRoles,
      dependsOn: step.dependsOn,
      plan: async () => {
        const state = await target.readTestTarget(input.target);
        const done = state.applied.includes(step.id);
        return { summary: `${step.id} on ${input.target} at version ${state.version}`, details: { version: state.version }, needed: !done };
      },
      apply: async () => {
        if (step.failOnApply) throw new Error(`${step.id} cannot be applied`);
        await target.applyTestChange(input.target, step.id);
        return `${step.id} applied`;
      },
    });
  }
  return run.finish(`${input.steps.length} steps`, input.report ? { impact: 'test impact', rootCause: 'test root cause', solution: 'test solution', prevention: 'test prevention' } : undefined);
}
