import { statusText } from '../../client/cli/format';
import type { RunbookStatus } from '../../common/runbook';

describe('runbook status text', () => {
  const status: RunbookStatus = {
    runbook: 'podCrashLoop',
    mode: 'plan',
    severity: 'P1',
    target: 'short-drama-prod/short-drama-app',
    startedBy: 'alertmanager:ApiErrorRateHigh',
    state: 'running',
    currentStep: 'pods',
    stepsDone: 1,
    stepsDeclared: 8,
    plan: [],
    timeline: [],
  };

  test('names the alerts that still want the run, and says nothing of alerts when there are none', () => {
    const text = statusText('podCrashLoop/short-drama-prod/short-drama-app', {
      ...status,
      alertsFiring: [
        { alert: 'ApiErrorRateHigh', fingerprint: 'a1' },
        { alert: 'ServiceUnavailable', fingerprint: 'b2' },
      ],
    });
    expect(text.split('\n')[3]).toBe('  wanted by firing alerts: ApiErrorRateHigh (a1), ServiceUnavailable (b2)');
    expect(statusText('x', status)).not.toContain('alerts');
  });
});
