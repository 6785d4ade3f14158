import { isDeepStrictEqual } from 'node:util';
import { scheduleIdFor } from '../common/schedule-ids';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  type CalendarSpecDescription,
  type Client,
  type DayOfWeek,
  type ScheduleDescription,
  type ScheduleDescriptionStartWorkflowAction,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
  type Workflow,
} from '@temporalio/client';
import { durationMs } from '../common/duration';
import { priorityOf, type Severity } from '../common/runbook';

/** A duration as a schedule description gives it (milliseconds) or as configuration writes it (90s, 1h). */
const msToNumber = (duration: number | string): number => (typeof duration === 'number' ? duration : durationMs(duration));
import type { RunbookConfig } from '../config/schema';
import { defaultLanguage } from '../common/texts';

/** The maintenance checklists (日常运维) that Temporal Schedules start, by their catalog workflow types. */
export const scheduledChecklists = [
  { checklist: 'daily', workflowType: 'dailyHealthCheck', title: '每日检查清单 (daily checklist)' },
  { checklist: 'weekly', workflowType: 'weeklyReview', title: '每周检查清单 (weekly checklist)' },
  { checklist: 'monthly', workflowType: 'monthlyReview', title: '每月检查清单 (monthly checklist)' },
  // Optional, off by default: reported only when it exists or is enabled.
  { checklist: 'databaseOptimization', workflowType: 'databaseOptimization', title: '数据库优化 (monthly database optimization)' },
] as const;

/** Schedules that are off by default: while off and absent they are left out of reports. */
const optionalSchedules: ReadonlySet<ChecklistName> = new Set(['databaseOptimization']);

export type ChecklistName = (typeof scheduledChecklists)[number]['checklist'];
export type ChecklistWorkflowType = (typeof scheduledChecklists)[number]['workflowType'];

/** What ensure/delete did to one schedule. `absent`: disabled (or being deleted) and there was none. */
export type ScheduleOutcome = 'created' | 'updated' | 'unchanged' | 'deleted' | 'absent';

export interface ScheduleReport {
  checklist: ChecklistName;
  workflowType: ChecklistWorkflowType;
  scheduleId: string;
  outcome: ScheduleOutcome;
  /** When it runs, in words, e.g. "daily at 08:00 Asia/Shanghai". */
  when: string;
  /** For `updated`: the fields that differed from the configuration. */
  changed: string[];
  /** An operator may pause a schedule; ensure keeps it paused. */
  paused: boolean;
  /** The next run, when the schedule exists. */
  nextRunAt?: Date;
}

export interface SchedulesReport {
  /** The configured time zone, in which the schedules fire and times are shown. */
  timezone: string;
  schedules: ScheduleReport[];
}

/** The SDK sends an action's priority (schedule-helpers compiles it) though its option type leaves it out. */
type ChecklistStartAction = ScheduleOptionsStartWorkflowAction<Workflow> & Pick<ScheduleDescriptionStartWorkflowAction, 'priority'>;

export interface DesiredSchedule {
  checklist: ChecklistName;
  workflowType: ChecklistWorkflowType;
  scheduleId: string;
  enabled: boolean;
  when: string;
  /** Exactly what `create` receives; spec.calendars are spelled out in full, the way describe() returns them, so the two compare. */
  options: ScheduleOptions<ChecklistStartAction> & { spec: { calendars: CalendarSpecDescription[]; timezone: string } };
}

type SchedulesConfig = Pick<RunbookConfig, 'temporal' | 'schedules'> & Partial<Pick<RunbookConfig, 'language'>>;

export { scheduleIdFor };

const only = <T>(value: T) => [{ start: value, end: value, step: 1 }];
const anyDayOfMonth = [{ start: 1, end: 31, step: 1 }];
const anyMonth: CalendarSpecDescription['month'] = [{ start: 'JANUARY', end: 'DECEMBER', step: 1 }];
const anyDayOfWeek: CalendarSpecDescription['dayOfWeek'] = [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }];

function calendarAt(at: string, days: Pick<CalendarSpecDescription, 'dayOfMonth' | 'dayOfWeek'>, comment: string): CalendarSpecDescription {
  const [hour, minute] = at.split(':').map(Number) as [number, number];
  return { second: only(0), minute: only(minute), hour: only(hour), ...days, month: anyMonth, year: [], comment };
}

/** The schedule each checklist should have, from configuration. */
export function desiredSchedules(config: SchedulesConfig): DesiredSchedule[] {
  const { timezone, daily, weekly, monthly, databaseOptimization, catchupWindow } = config.schedules;
  const monthlyAt = (m: { enabled: boolean; dayOfMonth: number; at: string }) => ({
    enabled: m.enabled,
    when: `day ${m.dayOfMonth} of each month at ${m.at}`,
    calendar: calendarAt(m.at, { dayOfMonth: only(m.dayOfMonth), dayOfWeek: anyDayOfWeek }, `day ${m.dayOfMonth} of each month at ${m.at}`),
  });
  const timing: Record<ChecklistName, { enabled: boolean; when: string; calendar: CalendarSpecDescription }> = {
    daily: {
      enabled: daily.enabled,
      when: `daily at ${daily.at}`,
      calendar: calendarAt(daily.at, { dayOfMonth: anyDayOfMonth, dayOfWeek: anyDayOfWeek }, `daily at ${daily.at}`),
    },
    weekly: {
      enabled: weekly.enabled,
      when: `${weekly.day}s at ${weekly.at}`,
      calendar: calendarAt(weekly.at, { dayOfMonth: anyDayOfMonth, dayOfWeek: only(weekly.day.toUpperCase() as DayOfWeek) }, `${weekly.day}s at ${weekly.at}`),
    },
    monthly: monthlyAt(monthly),
    databaseOptimization: monthlyAt(databaseOptimization),
  };
  // Checklists wait behind remediation on a busy queue.
  const checklistSeverity: Severity = 'P3';
  return scheduledChecklists.map(({ checklist, workflowType, title }) => {
    const scheduleId = scheduleIdFor(config.temporal.taskQueue, workflowType);
    const { enabled, when, calendar } = timing[checklist];
    return {
      checklist,
      workflowType,
      scheduleId,
      enabled,
      when: `${when} ${timezone}`,
      options: {
        scheduleId,
        spec: { calendars: [calendar], timezone },
        action: {
          type: 'startWorkflow',
          workflowType,
          taskQueue: config.temporal.taskQueue,
          // Temporal appends the scheduled time, so every run has an id of its own.
          workflowId: `${workflowType}/scheduled`,
          args: [
            { mode: 'execute', startedBy: `schedule:${scheduleId}`, severity: checklistSeverity, ...(config.language && config.language !== defaultLanguage ? { language: config.language } : {}) },
          ],
          priority: priorityOf(checklistSeverity),
          staticSummary: `${title}: ${workflowType} started by schedule ${scheduleId}`,
          staticDetails: `Started by the Temporal Schedule ${scheduleId} (${when} ${timezone}). Change it in configuration (schedules.*) and run npm run schedules.`,
        },
        // A checklist still running when the next is due (e.g. waiting on an approval) is not doubled.
        policies: { overlap: 'SKIP', catchupWindow, pauseOnFailure: false },
        // Memo can only be set at creation, so it holds nothing configuration can change.
        memo: { runbook: workflowType, description: title, managedBy: 'npm run schedules (client/schedules.ts)' },
      },
    };
  });
}

/** The parts of a schedule that ensure keeps equal to configuration, in one shape for both sides. */
function comparable(schedule: {
  spec: ScheduleDescription['spec'] | DesiredSchedule['options']['spec'];
  action: ScheduleDescription['action'] | DesiredSchedule['options']['action'];
  policies: { overlap?: string; catchupWindow?: number | string; pauseOnFailure?: boolean };
}): Record<string, unknown> {
  const ranges = <U>(list: Array<{ start: U; end?: U; step?: number }>) => list.map((r) => ({ start: r.start, end: r.end ?? r.start, step: r.step ?? 1 }));
  const { spec, action, policies } = schedule;
  return {
    'spec.calendars': (spec.calendars ?? []).map((c) => {
      const calendar = c as CalendarSpecDescription;
      return {
        second: ranges(calendar.second),
        minute: ranges(calendar.minute),
        hour: ranges(calendar.hour),
        dayOfMonth: ranges(calendar.dayOfMonth),
        month: ranges(calendar.month),
        year: ranges(calendar.year),
        dayOfWeek: ranges(calendar.dayOfWeek),
        comment: calendar.comment ?? '',
      };
    }),
    'spec.intervals': spec.intervals ?? [],
    'spec.skip': spec.skip ?? [],
    'spec.timezone': spec.timezone ?? 'UTC',
    'spec.startAt': spec.startAt?.getTime() ?? null,
    'spec.endAt': spec.endAt?.getTime() ?? null,
    'spec.jitter': spec.jitter ? msToNumber(spec.jitter) : 0,
    'action.workflowType': action.workflowType,
    'action.workflowId': action.workflowId,
    'action.taskQueue': action.taskQueue,
    'action.args': action.args ?? [],
    'action.staticSummary': action.staticSummary ?? '',
    'action.staticDetails': action.staticDetails ?? '',
    'action.priority': action.priority?.priorityKey ?? null,
    'action.retry': action.retry ?? null,
    'action.workflowExecutionTimeout': action.workflowExecutionTimeout ? msToNumber(action.workflowExecutionTimeout) : null,
    'action.workflowRunTimeout': action.workflowRunTimeout ? msToNumber(action.workflowRunTimeout) : null,
    'action.workflowTaskTimeout': action.workflowTaskTimeout ? msToNumber(action.workflowTaskTimeout) : null,
    'policies.overlap': policies.overlap ?? 'SKIP',
    'policies.catchupWindow': policies.catchupWindow === undefined ? null : msToNumber(policies.catchupWindow),
    'policies.pauseOnFailure': policies.pauseOnFailure ?? false,
  };
}

/** The fields of the existing schedule that differ from the desired one (empty when equal). */
export function scheduleDifferences(desired: DesiredSchedule, existing: ScheduleDescription): string[] {
  const want = comparable({ ...desired.options, policies: desired.options.policies ?? {} });
  const have = comparable(existing);
  return Object.keys(want).filter((field) => !isDeepStrictEqual(want[field], have[field]));
}

async function describeOrNothing(client: Client, scheduleId: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

function reportOf(desired: DesiredSchedule, outcome: ScheduleOutcome, description?: ScheduleDescription, changed: string[] = []): ScheduleReport {
  return {
    checklist: desired.checklist,
    workflowType: desired.workflowType,
    scheduleId: desired.scheduleId,
    outcome,
    when: desired.when,
    changed,
    paused: description?.state.paused ?? false,
    nextRunAt: description?.info.nextActionTimes[0],
  };
}

async function deleteIfPresent(client: Client, desired: DesiredSchedule): Promise<ScheduleReport> {
  try {
    await client.schedule.getHandle(desired.scheduleId).delete();
    return reportOf(desired, 'deleted');
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return reportOf(desired, 'absent');
    throw err;
  }
}

async function ensureOne(client: Client, desired: DesiredSchedule, retryOnRace = true): Promise<ScheduleReport> {
  if (!desired.enabled) return deleteIfPresent(client, desired);
  const handle = client.schedule.getHandle(desired.scheduleId);
  const existing = await describeOrNothing(client, desired.scheduleId);
  if (!existing) {
    try {
      await client.schedule.create(desired.options);
    } catch (err) {
      // Another ensure (npm start and npm run schedules at once) created it first: compare with theirs.
      if (err instanceof ScheduleAlreadyRunning && retryOnRace) return ensureOne(client, desired, false);
      throw err;
    }
    return reportOf(desired, 'created', await handle.describe());
  }
  const changed = scheduleDifferences(desired, existing);
  if (changed.length === 0) return reportOf(desired, 'unchanged', existing);
  const { spec, action, policies } = desired.options;
  // Keeps an operator's pause (and its note) and any action limit: only configured fields are ours.
  await handle.update((previous) => ({
    spec,
    action,
    policies,
    state: { paused: previous.state.paused, note: previous.state.note, remainingActions: previous.state.remainingActions },
  }));
  return reportOf(desired, 'updated', await handle.describe(), changed);
}

/** One action per checklist schedule, in order; a failure names the schedule. */
async function eachSchedule(config: SchedulesConfig, action: (desired: DesiredSchedule) => Promise<ScheduleReport>): Promise<SchedulesReport> {
  const schedules: ScheduleReport[] = [];
  for (const desired of desiredSchedules(config)) {
    try {
      const report = await action(desired);
      if (optionalSchedules.has(desired.checklist) && report.outcome === 'absent') continue;
      schedules.push(report);
    } catch (err) {
      throw new Error(`schedule ${desired.scheduleId}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  return { timezone: config.schedules.timezone, schedules };
}

/**
 * Makes the checklists' schedules match configuration: creates missing ones, updates those that
 * differ, leaves equal ones alone (so running it again changes nothing) and deletes disabled ones.
 */
export function ensureSchedules(client: Client, config: SchedulesConfig): Promise<SchedulesReport> {
  return eachSchedule(config, (desired) => ensureOne(client, desired));
}

/** Deletes the checklists' schedules of this task queue (whatever `enabled` says). */
export function deleteSchedules(client: Client, config: SchedulesConfig): Promise<SchedulesReport> {
  return eachSchedule(config, (desired) => deleteIfPresent(client, desired));
}

/** A moment as a person in that zone reads it: "Mon 2026-11-30 09:00 Asia/Shanghai". */
export function formatInTimeZone(date: Date, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(date)
      .map((part) => [part.type, part.value]),
  );
  return `${parts.weekday} ${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${timeZone}`;
}

/** One line per schedule: id, what was done, when it runs next (in the configured zone). */
export function scheduleReportLines(report: SchedulesReport): string[] {
  const idWidth = Math.max(...report.schedules.map((s) => s.scheduleId.length));
  return report.schedules.map((s) => {
    const head = `${s.scheduleId.padEnd(idWidth)}  ${s.outcome.padEnd(9)}`;
    if (s.outcome === 'deleted' || s.outcome === 'absent') return `${head}  no schedule`;
    const next = s.paused ? 'PAUSED (by an operator; unpause it in the Temporal UI)' : s.nextRunAt ? `next run ${formatInTimeZone(s.nextRunAt, report.timezone)}` : 'no next run';
    const changed = s.changed.length > 0 ? `  (changed: ${s.changed.join(', ')})` : '';
    return `${head}  ${s.when}; ${next}${changed}`;
  });
}
