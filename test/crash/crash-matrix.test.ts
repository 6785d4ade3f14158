/**
 * The crash matrix (issue 15, test/crash/harness.ts). In `npm test` a CI-sized subset: the
 * destructive activity of trafficControl, killed before and after its side effect. `npm run
 * test:crash` (CRASH_MATRIX=full) runs every point of every scenario, or of those named in
 * CRASH_SCENARIOS=a,b, and prints the summary table.
 */
import { CrashHarness, summaryTable, type CaseResult, type CrashPoint } from './harness';
import { scenarios } from './scenarios';
import type { CrashPhase } from './crash-worker';

const full = process.env.CRASH_MATRIX === 'full';
const named = process.env.CRASH_SCENARIOS?.split(',').filter(Boolean);
/** The subset of `npm test`: scenario → activity types whose points are crashed. */
const ciSubset: Record<string, string[]> = { trafficControl: ['patchIngressAnnotations'] };

const chosen = Object.keys(scenarios).filter((name) => (full ? !named || named.includes(name) : name in ciSubset));
const phases: CrashPhase[] = ['before', 'after'];
const results: CaseResult[] = [];

afterAll(() => {
  if (results.length) console.log(`crash matrix:\n${summaryTable(results)}\n${results.length} cases, ${results.filter((r) => !r.ok).length} failed, ${(results.reduce((s, r) => s + r.ms, 0) / 1000).toFixed(0)} s`);
});

describe.each(chosen)('crash matrix: %s', (name) => {
  const harness = new CrashHarness(scenarios[name]!());

  afterAll(() => harness.stop(), 120_000);

  test(
    full ? 'every point, before and after its side effect: the same end state and outcome as the clean run' : 'the destructive step, before and after its side effect: the same end state and outcome as the clean run',
    async () => {
      await harness.start();
      const clean = await harness.record();
      results.push({ runbook: name, k: 0, activityType: `clean run (${clean.points.length} points)`, phase: 'before', ok: true, ms: clean.ms });
      const points: CrashPoint[] = full ? clean.points : clean.points.filter((p) => ciSubset[name]!.includes(p.activityType));
      expect(points.length).toBeGreaterThan(0);
      const failures: string[] = [];
      for (const point of points)
        for (const phase of phases) {
          const cell = await harness.crashAt(point, phase, clean);
          results.push(cell);
          if (cell.failure) failures.push(cell.failure);
        }
      expect(failures).toEqual([]);
    },
    full ? 3 * 60 * 60_000 : 5 * 60_000,
  );
});
