import { ApplicationFailure } from '@temporalio/workflow';
import type { DeleteExpiredSessionsResult } from '../activities/postgres-maintenance';
import type { CheckRow, CheckStatus } from '../common/checklist';
import type { Checklist, RowBuilder } from './kernel/checklist';
import type { ChangeOutcome } from './kernel/runbook-run';
import { read, wait } from './activity-proxies';

const batches = (n: number) => `${n} batch${n === 1 ? '' : 'es'}`;

/**
 * ⚠ DELETE FROM sessions WHERE expires_at < NOW() - INTERVAL '7 days', as a change step: the dry
 * run counts, the count may move by itself (observed, outside the plan hash), the delete runs in
 * batches after approval. Wrapped in a check so a database that cannot be reached is a WARN row.
 */
export async function checkExpiredSessions(checklist: Checklist, section: string, expectedDatabase: string, olderThanDays: number, maxRows: number): Promise<CheckRow[]> {
  const stepId = 'delete-expired-sessions';
  const title = `Delete sessions expired more than ${olderThanDays} days ago`;
  return checklist.check('expired-sessions', section, title, async (row: RowBuilder) => {
    let planned: DeleteExpiredSessionsResult | undefined;
    let done: DeleteExpiredSessionsResult | undefined;
    const outcome = await checklist.run.change({
      stepId,
      title,
      plan: async () => {
        const dry = await read.deleteExpiredSessions({ olderThanDays, maxRows, dryRun: true });
        // The activity deletes in the connected database; it must be the one this run reviews.
        if (dry.database !== expectedDatabase) {
          throw ApplicationFailure.nonRetryable(`the database connection is to ${dry.database}, not ${expectedDatabase}: DATABASE_URL and the input's database disagree`, 'InvalidInput');
        }
        planned = dry;
        return {
          summary: `delete rows of ${dry.database}.public.sessions that expired more than ${olderThanDays} days ago, in batches, at most ${maxRows}`,
          details: { database: dry.database, olderThanDays, maxRows },
          needed: dry.before > 0,
          observed: { expired: dry.before, cutoff: dry.cutoff, capped: dry.capped },
        };
      },
      apply: async () => {
        done = await wait.deleteExpiredSessions({ olderThanDays, maxRows });
        return `deleted ${done.deleted} sessions expired before ${done.cutoff} in ${batches(done.batches)}; ${done.after} left`;
      },
    });
    const r = sessionsRow(outcome, checklist, stepId, olderThanDays, planned, done);
    checklist.noteChange(`${stepId}: ${outcome}: ${r.value}; ${r.detail}`);
    return [row({ id: 'database.expired-sessions', title, threshold: `expired more than ${olderThanDays} days ago`, ...r })];
  });
}

function sessionsRow(
  outcome: ChangeOutcome,
  checklist: Checklist,
  stepId: string,
  olderThanDays: number,
  planned: DeleteExpiredSessionsResult | undefined,
  done: DeleteExpiredSessionsResult | undefined,
): { status: CheckStatus; value: string; detail: string } {
  const timeline = checklist.run.timelineOf(stepId);
  const last = (event: string) => timeline.filter((e) => e.event === event).pop();
  const expired = planned?.before ?? 0;
  switch (outcome) {
    case 'applied': {
      const decided = last('decided');
      const left = done!.after;
      return {
        status: left > 0 ? 'WARN' : 'PASS',
        value: `${done!.deleted} deleted`,
        detail: `in ${batches(done!.batches)}, approved by ${decided?.by ?? 'unknown'}${left > 0 ? `; ${left} left (cap reached): run again` : ''}`,
      };
    }
    case 'not-needed':
      return { status: 'PASS', value: `${expired} expired`, detail: `no sessions expired more than ${olderThanDays} days ago` };
    case 'planned':
      return { status: 'PASS', value: `${planned!.deleted} to delete`, detail: `plan mode: nothing deleted (${expired} expired before ${planned!.cutoff}); an execute run asks for approval` };
    case 'failed':
      return { status: 'FAIL', value: 'delete failed', detail: last('failed')?.detail ?? 'the delete failed' };
    case 'rejected': {
      const decided = last('decided');
      return { status: 'WARN', value: `${expired} not deleted`, detail: decided ? `rejected by ${decided.by}: ${decided.reason ?? 'no reason'}` : `rejected: ${last('skipped')?.detail ?? ''}` };
    }
    default:
      // expired, cancelled, dependency-skipped: the rows stay for next week.
      return { status: 'WARN', value: `${expired} not deleted`, detail: `${outcome}: ${last('skipped')?.detail ?? outcome}` };
  }
}
