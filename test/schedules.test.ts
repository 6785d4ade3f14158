import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Client, Connection, ScheduleNotFoundError, type ScheduleDescription } from '@temporalio/client';
import { deleteSchedules, ensureSchedules, formatInTimeZone, scheduleIdFor, type ChecklistWorkflowType, type SchedulesReport } from '../client/schedules';
import type { ChecklistResult } from '../common/checklist';
import type { RunbookConfig } from '../config/schema';
import { waitUntil } from '../scripts/testbed/processes';
import { repoRoot } from './helpers/process-output';
import { closedPort, testbedConfig, testbedEnv } from './helpers/testbed';
import { withWorker } from './helpers/worker';

const checklists: ChecklistWorkflowType[] = ['dailyHealthCheck', 'weeklyReview', 'monthlyReview'];

interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run schedules` as a person runs it: its own process, configuration from the environment only. */
function schedulesScript(env: Record<string, string>, ...args: string[]): Promise<ScriptResult> {
  return new Promise((resolve) => {
    const child = execFile('npx', ['tsx', 'scripts/schedules.ts', ...args], { cwd: repoRoot, env: { PATH: process.env.PATH!, HOME: process.env.HOME!, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
    child.stdin?.end();
  });
}

const outcomes = (report: SchedulesReport) => Object.fromEntries(report.schedules.map((s) => [s.workflowType, s.outcome]));

/**
 * The checklists' Temporal Schedules against the test bed's real Temporal server. Every test has a
 * task queue of its own, so its schedule ids are its own; every schedule made is deleted after.
 */
describe('checklist schedules', () => {
  const address = testbedEnv().TEMPORAL_ADDRESS!;
  let connection: Connection;
  let client: Client;
  /** Task queues whose schedules the test made, removed after each test. */
  const used: RunbookConfig[] = [];

  /** The test bed's configuration on a fresh task queue (or the given one), remembered for cleanup. */
  function configWith(overrides: Record<string, string> = {}): RunbookConfig {
    const config = testbedConfig(overrides);
    used.push(config);
    return config;
  }
  const describeSchedule = (config: RunbookConfig, type: ChecklistWorkflowType) => client.schedule.getHandle(scheduleIdFor(config.temporal.taskQueue, type)).describe();

  beforeAll(async () => {
    connection = await Connection.connect({ address });
    client = new Client({ connection });
  });
  afterEach(async () => {
    for (const config of used.splice(0)) await deleteSchedules(client, config);
  });
  afterAll(async () => {
    await connection.close();
  });

  test('the first ensure creates one schedule per checklist at the configured times, zone, overlap and catch-up window', async () => {
    const config = configWith({
      SCHEDULE_TIMEZONE: 'Asia/Shanghai',
      SCHEDULE_DAILY_AT: '07:45',
      SCHEDULE_WEEKLY_DAY: 'friday',
      SCHEDULE_WEEKLY_AT: '18:30',
      SCHEDULE_MONTHLY_DAY: '15',
      SCHEDULE_MONTHLY_AT: '03:05',
      SCHEDULE_CATCHUP_WINDOW: '20m',
    });
    const queue = config.temporal.taskQueue;

    const report = await ensureSchedules(client, config);

    expect(report.schedules.map((s) => [s.scheduleId, s.outcome])).toEqual(checklists.map((type) => [`${queue}:${type}`, 'created']));
    const described: Record<string, ScheduleDescription> = {};
    for (const type of checklists) {
      const schedule = (described[type] = await describeSchedule(config, type));
      expect(schedule.spec.timezone).toBe('Asia/Shanghai');
      expect(schedule.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 20 * 60_000 });
      expect(schedule.action).toMatchObject({
        workflowType: type,
        taskQueue: queue,
        workflowId: `${type}/scheduled`,
        args: [{ mode: 'execute', startedBy: `schedule:${queue}:${type}`, severity: 'P3' }],
      });
      expect(schedule.memo).toMatchObject({ runbook: type });
    }
    // The server's own next run times, read in the configured zone: what people will see happen.
    const nextRuns = (type: ChecklistWorkflowType) => described[type]!.info.nextActionTimes.slice(0, 3).map((t) => formatInTimeZone(t, 'Asia/Shanghai'));
    for (const run of nextRuns('dailyHealthCheck')) expect(run).toMatch(/^\w{3} \d{4}-\d{2}-\d{2} 07:45 Asia\/Shanghai$/);
    for (const run of nextRuns('weeklyReview')) expect(run).toMatch(/^Fri \d{4}-\d{2}-\d{2} 18:30 Asia\/Shanghai$/);
    for (const run of nextRuns('monthlyReview')) expect(run).toMatch(/^\w{3} \d{4}-\d{2}-15 03:05 Asia\/Shanghai$/);
    // Consecutive daily runs one day apart: a calendar, not a single shot.
    const [first, second] = described.dailyHealthCheck!.info.nextActionTimes;
    expect(second!.getTime() - first!.getTime()).toBe(24 * 3600_000);
    expect(report.schedules.find((s) => s.workflowType === 'dailyHealthCheck')?.nextRunAt).toEqual(first);
  });

  test('a second ensure reports every schedule unchanged and does not touch them', async () => {
    const config = configWith();
    await ensureSchedules(client, config);
    const before = await Promise.all(checklists.map((type) => describeSchedule(config, type)));

    const again = await ensureSchedules(client, config);

    expect(outcomes(again)).toEqual({ dailyHealthCheck: 'unchanged', weeklyReview: 'unchanged', monthlyReview: 'unchanged' });
    const after = await Promise.all(checklists.map((type) => describeSchedule(config, type)));
    // Every update bumps the conflict token and the update time; neither moved.
    expect(after.map((s) => Buffer.from(s.raw.conflictToken!).toString('hex'))).toEqual(before.map((s) => Buffer.from(s.raw.conflictToken!).toString('hex')));
    expect(after.map((s) => s.info.lastUpdatedAt?.getTime())).toEqual(before.map((s) => s.info.lastUpdatedAt?.getTime()));
  });

  test("a changed time updates only that schedule, and an operator's pause survives the update", async () => {
    const config = configWith({ SCHEDULE_DAILY_AT: '08:00' });
    await ensureSchedules(client, config);
    const daily = client.schedule.getHandle(scheduleIdFor(config.temporal.taskQueue, 'dailyHealthCheck'));
    await daily.pause('paused by the on-call for the migration');
    const tokenBefore = Buffer.from((await daily.describe()).raw.conflictToken!).toString('hex');

    const changed = await ensureSchedules(client, testbedConfig({ TEMPORAL_TASK_QUEUE: config.temporal.taskQueue, SCHEDULE_DAILY_AT: '06:30' }));

    expect(outcomes(changed)).toEqual({ dailyHealthCheck: 'updated', weeklyReview: 'unchanged', monthlyReview: 'unchanged' });
    expect(changed.schedules[0]!.changed).toContain('spec.calendars');
    const after = await daily.describe();
    expect(Buffer.from(after.raw.conflictToken!).toString('hex')).not.toBe(tokenBefore);
    expect(after.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 6, end: 6 }], minute: [{ start: 30, end: 30 }] });
    expect(after.state).toMatchObject({ paused: true, note: 'paused by the on-call for the migration' });
    expect(changed.schedules[0]!.paused).toBe(true);
  });

  test('a schedule edited by hand is put back to the configuration', async () => {
    const config = configWith();
    await ensureSchedules(client, config);
    const weekly = client.schedule.getHandle(scheduleIdFor(config.temporal.taskQueue, 'weeklyReview'));
    await weekly.update((previous) => ({ ...previous, action: { ...previous.action, args: [{ mode: 'plan' }] }, policies: { ...previous.policies, overlap: 'ALLOW_ALL' } }));

    const report = await ensureSchedules(client, config);

    expect(report.schedules.find((s) => s.workflowType === 'weeklyReview')).toMatchObject({ outcome: 'updated', changed: ['action.args', 'policies.overlap'] });
    const action = (await weekly.describe()).action as { args?: unknown[]; priority?: { priorityKey?: number } };
    expect(action.args).toEqual([{ mode: 'execute', startedBy: `schedule:${weekly.scheduleId}`, severity: 'P3' }]);
    // Checklists queue behind remediation (P3 → 4; P0 → 1).
    expect(action.priority?.priorityKey).toBe(4);
  });

  test('a checklist disabled in configuration loses its schedule', async () => {
    const config = configWith();
    await ensureSchedules(client, config);
    const weeklyOff = testbedConfig({ TEMPORAL_TASK_QUEUE: config.temporal.taskQueue, SCHEDULE_WEEKLY_ENABLED: 'false' });
    expect(weeklyOff.schedules.weekly.enabled).toBe(false);

    const report = await ensureSchedules(client, weeklyOff);

    expect(outcomes(report)).toEqual({ dailyHealthCheck: 'unchanged', weeklyReview: 'deleted', monthlyReview: 'unchanged' });
    await expect(describeSchedule(config, 'weeklyReview')).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect(outcomes(await ensureSchedules(client, weeklyOff)).weeklyReview).toBe('absent');
  });

  test('npm run schedules: twice creates then reports unchanged, and --delete removes them', async () => {
    const queue = `test-${randomUUID()}`;
    used.push(testbedConfig({ TEMPORAL_TASK_QUEUE: queue }));
    const env = { TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: queue, SCHEDULE_TIMEZONE: 'Europe/Berlin', SCHEDULE_DAILY_AT: '05:10' };

    const first = await schedulesScript(env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^  ${queue}:dailyHealthCheck +created +daily at 05:10 Europe/Berlin; next run \\w{3} \\d{4}-\\d{2}-\\d{2} 05:10 Europe/Berlin$`, 'm'));

    const second = await schedulesScript(env);
    expect(second.code).toBe(0);
    const lines = second.stdout.split('\n').filter((line) => line.startsWith(`  ${queue}:`));
    expect(lines.map((line) => line.trim().split(/ +/).slice(0, 2))).toEqual(checklists.map((type) => [`${queue}:${type}`, 'unchanged']));

    const removed = await schedulesScript(env, '--delete');
    expect(removed.code).toBe(0);
    for (const type of checklists) {
      expect(removed.stdout).toMatch(new RegExp(`^  ${queue}:${type} +deleted`, 'm'));
      await expect(client.schedule.getHandle(`${queue}:${type}`).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    }
  });

  test('npm run schedules with a bad time exits non-zero with one line naming the field, and creates nothing', async () => {
    const queue = `test-${randomUUID()}`;

    const result = await schedulesScript({ TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: queue, SCHEDULE_DAILY_AT: '25:00' });

    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toEqual(['schedules: invalid configuration: schedules.daily.at (env SCHEDULE_DAILY_AT): expected a time of day HH:MM (24 h), e.g. 08:00']);
    await expect(client.schedule.getHandle(`${queue}:dailyHealthCheck`).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
  });

  test('npm run schedules with Temporal unreachable exits non-zero with one line naming the address', async () => {
    const result = await schedulesScript({ TEMPORAL_ADDRESS: `127.0.0.1:${closedPort}` });

    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(new RegExp(`^schedules: cannot reach Temporal at 127\\.0\\.0\\.1:${closedPort}: `))]);
  });

  test('a triggered daily schedule starts dailyHealthCheck on the task queue, and the run completes', async () => {
    const config = configWith();
    await ensureSchedules(client, config);
    const daily = client.schedule.getHandle(scheduleIdFor(config.temporal.taskQueue, 'dailyHealthCheck'));

    await withWorker(config, async () => {
      await daily.trigger();
      let started: { workflowId: string; firstExecutionRunId: string } | undefined;
      await waitUntil("the triggered run in the schedule's recent actions", async () => {
        started = (await daily.describe()).info.recentActions[0]?.action.workflow;
        return started !== undefined;
      });
      const run = client.workflow.getHandle(started!.workflowId, started!.firstExecutionRunId);
      try {
        const result = (await run.result()) as ChecklistResult;
        expect(started!.workflowId).toMatch(/^dailyHealthCheck\/scheduled-/);
        const described = await run.describe();
        expect(described).toMatchObject({ type: 'dailyHealthCheck', taskQueue: config.temporal.taskQueue, status: { name: 'COMPLETED' } });
        expect(result.checks.length).toBeGreaterThan(0);
      } finally {
        await run.terminate('test cleanup').catch(() => undefined); // already finished
      }
    });
  });
});
