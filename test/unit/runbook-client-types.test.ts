import type { createRunbookClient } from '../../client/runbook-client';
import type { DbConnectionExhaustionResult } from '../../workflows/db-connection-exhaustion';
import type { TrafficControlResult } from '../../workflows/traffic-control';

type Runbooks = ReturnType<typeof createRunbookClient>;

/**
 * Compile-time checks (`tsc --noEmit` in `npm test` fails when an expectation no longer holds):
 * startRunbook takes the catalog's input by runbook name, waitForResult returns that runbook's result.
 */
async function typedByName(runbooks: Runbooks) {
  const started = await runbooks.startRunbook('dbConnectionExhaustion', { namespace: 'short-drama-prod', mode: 'plan' }, { startedBy: 'erin' });
  const result: DbConnectionExhaustionResult = await runbooks.waitForResult(started);
  // @ts-expect-error a mode the schema does not know
  await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'yolo' }, { startedBy: 'erin' });
  // @ts-expect-error an input field of another runbook
  await runbooks.startRunbook('dbConnectionExhaustion', { ingress: 'app' }, { startedBy: 'erin' });
  // @ts-expect-error the result of another runbook
  const other: TrafficControlResult = await runbooks.waitForResult(started);
  // Runbooks outside the catalog (the tests' own) and names typed at a prompt take any input.
  const named: string = 'kernelTestRunbook';
  await runbooks.startRunbook(named, { anything: true }, { startedBy: 'erin' });
  return [result, other];
}

test('the client is typed by runbook name (checked by tsc)', () => {
  expect(typeof typedByName).toBe('function');
});
