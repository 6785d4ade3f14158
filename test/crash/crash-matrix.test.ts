/**
 * The crash matrix (issue 15, test/crash/harness.ts). In `npm test` a CI-sized subset: trafficControl
 * killed at its destructive activity (the 2nd setAnnotations: the 1st is the plan's dry run), before
 * and after its side effect, the Temporal server restarted once, and the Kubernetes API stopped under
 * its write. `npm run test:crash` (CRASH_MATRIX=full) runs every point of every scenario, or of those
 * named in CRASH_SCENARIOS=a,b, or only the points CRASH_POINTS=k,... , the two server restarts of
 * each (CRASH_SERVER_RESTARTS=off leaves them out, =only runs nothing else) and the outage of each
 * system it changes (CRASH_OUTAGES=off|only likewise), and prints the summary table.
 */
import type { DependencyName } from '../helpers/dependency-outage';
import { CrashHarness, outcomeText, summaryTable, type CaseResult, type CrashPoint, type CrashScenario, type DependencyOutage, type ServerRestartMoment } from './harness';
import { scenarios } from './scenarios';
import type { CrashPhase } from './crash-worker';

const full = process.env.CRASH_MATRIX === 'full';
const list = (text: string | undefined) =>
  text
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const named = list(process.env.CRASH_SCENARIOS);
const onlyPoints = list(process.env.CRASH_POINTS)?.map(Number);
/** The subset of `npm test`: scenario → the points crashed (the n-th activity of a type). */
const ciSubset: Record<string, Array<Pick<CrashPoint, 'activityType' | 'ordinal'>>> = { trafficControl: [{ activityType: 'setAnnotations', ordinal: 2 }] };
/** The server restarts of `npm test` (each restart costs the test files after it nothing: it waits until the server answers). */
const ciServerRestarts: Record<string, ServerRestartMoment[]> = { trafficControl: ['activity'] };
/** The outages of `npm test`: scenario → the systems made unreachable. */
const ciOutages: Record<string, DependencyName[]> = { trafficControl: ['the Kubernetes API'] };
const switchOf = (name: string) => {
  const value = process.env[name] ?? 'on';
  if (!['on', 'off', 'only'].includes(value)) throw new Error(`${name} is on, off or only, not ${value}`);
  return value;
};
const serverRestarts = switchOf('CRASH_SERVER_RESTARTS');
const outageCases = switchOf('CRASH_OUTAGES');
if (serverRestarts === 'only' && outageCases === 'only') throw new Error('CRASH_SERVER_RESTARTS=only and CRASH_OUTAGES=only exclude each other');

const unknown = named?.filter((name) => !(name in scenarios)) ?? [];
if (unknown.length) throw new Error(`CRASH_SCENARIOS names no scenario: ${unknown.join(', ')}; known: ${Object.keys(scenarios).join(', ')}`);
const chosen = Object.keys(scenarios).filter((name) => (full ? !named || named.includes(name) : name in ciSubset));
const phases: CrashPhase[] = ['before', 'after'];
const results: CaseResult[] = [];

function pointsOf(name: string, all: CrashPoint[]): CrashPoint[] {
  if (serverRestarts === 'only' || outageCases === 'only') return [];
  if (!full) return all.filter((p) => ciSubset[name]!.some((c) => c.activityType === p.activityType && c.ordinal === p.ordinal));
  return onlyPoints ? all.filter((p) => onlyPoints.includes(p.k)) : all;
}

function restartsOf(name: string): ServerRestartMoment[] {
  if (serverRestarts === 'off' || outageCases === 'only') return [];
  return full ? ['approval', 'activity'] : (ciServerRestarts[name] ?? []);
}

function outagesOf(name: string, scenario: CrashScenario): DependencyOutage[] {
  if (outageCases === 'off' || serverRestarts === 'only') return [];
  const all = scenario.outages ?? [];
  return full ? all : all.filter((o) => ciOutages[name]?.includes(o.system));
}

afterAll(() => {
  if (!results.length) return;
  const failed = results.filter((r) => !r.ok).length;
  const seconds = (results.reduce((s, r) => s + r.ms, 0) / 1000).toFixed(0);
  console.log(`crash matrix:\n${summaryTable(results)}\n${results.filter((r) => !r.clean).length} cases, ${failed} failed, ${seconds} s`);
});

describe.each(chosen)('crash matrix: %s', (name) => {
  const scenario = scenarios[name]!();
  const harness = new CrashHarness(scenario);

  afterAll(() => harness.stop(), 120_000);

  test(
    full
      ? 'every point, before and after its side effect, and the server restarted: the same end state and outcome as the clean run; each system it changes down: the step fails saying so, nothing after it'
      : 'the destructive step, before and after its side effect, and the server restarted under it: the same end state and outcome as the clean run; the Kubernetes API down under it: the step fails saying so, nothing after it',
    async () => {
      await harness.start();
      const clean = await harness.record();
      results.push({ runbook: name, clean: true, k: 0, activityType: `clean run (${clean.points.length} points)`, ordinal: 0, phase: 'before', ok: true, ms: clean.ms });
      const points = pointsOf(name, clean.points);
      const restarts = restartsOf(name);
      const outages = outagesOf(name, scenario);
      expect(points.length + restarts.length + outages.length).toBeGreaterThan(0);
      const failures: string[] = [];
      const record = (cell: CaseResult) => {
        results.push(cell);
        if (cell.failure) failures.push(cell.failure);
        // Progress as it happens (jest holds console output until the file ends; the full matrix takes long).
        if (full) process.stderr.write(`crash matrix: ${name} k=${cell.k} ${cell.activityType} #${cell.ordinal} ${cell.phase}: ${outcomeText(cell)} (${(cell.ms / 1000).toFixed(1)} s)\n`);
      };
      for (const point of points) for (const phase of phases) record(await harness.crashAt(point, phase, clean));
      for (const moment of restarts) record(await harness.restartServerAt(moment, clean));
      for (const outage of outages) record(await harness.dependencyDownAt(outage, clean));
      expect(failures).toEqual([]);
    },
    full ? 3 * 60 * 60_000 : 5 * 60_000,
  );
});
