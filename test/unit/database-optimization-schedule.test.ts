import { desiredSchedules } from '../../client/schedules';
import { loadConfig } from '../../config/load';

/** databaseOptimization's optional monthly schedule: off by default, on by configuration. */
describe('databaseOptimization schedule', () => {
  const env = { TEMPORAL_ADDRESS: '127.0.0.1:7233', TEMPORAL_TASK_QUEUE: 'q' };
  const ofType = (extra: Record<string, string>) => desiredSchedules(loadConfig({ env: { ...env, ...extra } })).find((s) => s.workflowType === 'databaseOptimization')!;

  test('off by default (ensure deletes it if it exists; reports leave it out while absent)', () => {
    expect(ofType({})).toMatchObject({ enabled: false, scheduleId: 'q:databaseOptimization', when: 'day 15 of each month at 03:00 UTC' });
  });

  test('enabled with its own day and time: an execute run whose ⚠ steps wait for people', () => {
    const schedule = ofType({ SCHEDULE_DATABASE_OPTIMIZATION_ENABLED: 'true', SCHEDULE_DATABASE_OPTIMIZATION_DAY: '2', SCHEDULE_DATABASE_OPTIMIZATION_AT: '04:30' });
    expect(schedule).toMatchObject({ enabled: true, when: 'day 2 of each month at 04:30 UTC' });
    expect(schedule.options.spec.calendars[0]).toMatchObject({ dayOfMonth: [{ start: 2, end: 2, step: 1 }], hour: [{ start: 4, end: 4, step: 1 }], minute: [{ start: 30, end: 30, step: 1 }] });
    expect(schedule.options.action).toMatchObject({ workflowType: 'databaseOptimization', workflowId: 'databaseOptimization/scheduled', args: [{ mode: 'execute', severity: 'P3' }] });
    expect(() => loadConfig({ env: { ...env, SCHEDULE_DATABASE_OPTIMIZATION_DAY: '31' } })).toThrow(/schedules\.databaseOptimization\.dayOfMonth/);
  });
});
