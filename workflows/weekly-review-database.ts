import type { z } from 'zod';
import { listed, type CheckRow } from '../common/checklist';
import type { weeklyReviewInput } from '../common/inputs/checklists';
import type { Checklist } from './kernel/checklist';
import { read, wait } from './activity-proxies';

/** weeklyReview's 数据库维护 section: size, largest tables and VACUUM (the slow statements and the sessions delete have files of their own). */

export type WeeklyInput = z.infer<typeof weeklyReviewInput>;

export const database = '数据库维护';

/** 数据库维护: the database's size. */
export function checkDatabaseSize(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  return checklist.check('database-size', database, `Size of database ${input.database}`, async (row) => {
    const size = await read.databaseSize({ database: input.database });
    return [row({ id: 'database.size', title: `Database ${size.database} size`, status: 'PASS', value: size.pretty, detail: `${size.bytes} bytes` })];
  });
}

/** The 10 largest tables, indexes and TOAST included. */
export function checkLargestTables(checklist: Checklist): Promise<CheckRow[]> {
  return checklist.check('largest-tables', database, 'The 10 largest tables', async (row) => {
    const { database: db, tables } = await read.largestTables({ limit: 10 });
    return [
      row({
        id: 'database.largest-tables',
        title: 'Largest tables (with indexes and TOAST)',
        status: 'PASS',
        value: tables[0] ? `${tables[0].schema}.${tables[0].table} ${tables[0].pretty}` : 'no tables',
        detail: `${db}: ${listed(
          tables.map((x) => `${x.schema}.${x.table} ${x.pretty}`),
          10,
        )}`,
      }),
    ];
  });
}

/** VACUUM ANALYZE, after the delete so the space of the deleted rows is reusable and the statistics are fresh; execute mode only. */
export function checkVacuum(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  return checklist.check('vacuum', database, 'VACUUM ANALYZE', async (row) => {
    const execute = input.mode === 'execute' && !checklist.run.cancelled;
    const v = await wait.vacuumAnalyze({ dryRun: !execute });
    const dead = (key: 'deadTuplesBefore' | 'deadTuplesAfter') => v.tables.reduce((n, x) => n + x[key], 0);
    return [
      row({
        id: 'database.vacuum',
        title: `VACUUM ANALYZE ${v.database}`,
        status: 'PASS',
        value: execute ? `done in ${v.durationMs} ms` : 'not run',
        detail: execute
          ? `dead tuples ${dead('deadTuplesBefore')} -> ${dead('deadTuplesAfter')} in ${v.tables.length} tables`
          : `${input.mode === 'plan' ? 'plan mode' : 'run cancelled'}: runs in execute mode; ${dead('deadTuplesBefore')} dead tuples in ${v.tables.length} tables now`,
      }),
    ];
  });
}
