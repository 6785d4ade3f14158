import type { RunbookRun } from '../../workflows/kernel/runbook-run';
import type { DbConnectionExhaustionStep } from '../../workflows/db-connection-exhaustion';

/**
 * Compile-time checks (`tsc --noEmit` fails when an expectation no longer holds): a run is typed by
 * the step ids it declared at begin, so a misspelt step id is caught by tsc, not at run time.
 */
async function typedSteps(run: RunbookRun<DbConnectionExhaustionStep>) {
  run.outcomeOf('terminate-idle');
  // @ts-expect-error a step id the run did not declare
  run.outcomeOf('terminate-idel');
  // @ts-expect-error a read step the run did not declare
  await run.read('connection-stat', 'connections', async () => 0);
  await run.change({
    stepId: 'restart-database',
    title: 'restart',
    // @ts-expect-error a dependency the run did not declare
    dependsOn: ['raise-max-connection'],
    plan: async () => ({ needed: false, summary: '' }) as never,
    apply: async () => '',
  });
}

test('step ids are typed by the run that declared them (checked by tsc)', () => {
  expect(typeof typedSteps).toBe('function');
});
