import type { SlowestStatements } from '../activities/postgres-statistics';
import type { CheckRow } from '../common/checklist';
import type { Checklist } from './kernel/checklist';
import { errorText } from '../common/failures';
import { read } from './activity-proxies';

/** A statement on one line, cut at `max` characters. */
export const oneLine = (text: string, max = 160) => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

/**
 * The 10 slowest statements by mean time from pg_stat_statements against the checklist's
 * threshold: WARN over it, and WARN (not a broken run) when the extension cannot be read.
 * Shared by weeklyReview's database maintenance and dailyHealthCheck's slow-queries subset.
 */
export function checkSlowStatements(checklist: Checklist, section: string): Promise<CheckRow[]> {
  const t = checklist.thresholds;
  return checklist.check('slow-statements', section, 'The 10 slowest statements (pg_stat_statements)', async (row) => {
    const base = { id: 'database.slow-statements', title: 'Slowest statements by mean time', threshold: `mean <= ${t.slowStatementMeanMs} ms` };
    let slowest: SlowestStatements;
    try {
      slowest = await read.slowestStatements({ limit: 10 });
    } catch (err) {
      // Without the extension there is nothing to read; that is a finding, not a broken run.
      return [row({ ...base, status: 'WARN', value: 'unavailable', detail: errorText(err) })];
    }
    const { statements } = slowest;
    const top = statements[0];
    const over = statements.filter((s) => s.meanMs > t.slowStatementMeanMs);
    // Every statement read, slowest first: the check promises the 10 slowest, not only the top one.
    const ranked = statements.map((s, i) => `${i + 1}. ${oneLine(s.query, 120)} (mean ${s.meanMs} ms, max ${s.maxMs} ms, ${s.calls} calls)`).join('; ');
    return [
      row({
        ...base,
        status: over.length > 0 ? 'WARN' : 'PASS',
        value: top ? `${top.meanMs} ms` : 'no statements',
        detail: top
          ? `${over.length > 0 ? `${over.length} over the threshold` : 'none over the threshold'}; the ${statements.length} slowest in ${slowest.database} (${slowest.timingColumns.mean}): ${ranked}`
          : `${slowest.database}: pg_stat_statements has no statements yet`,
      }),
    ];
  });
}
