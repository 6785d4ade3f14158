import type { z } from 'zod';
import type { BloatEstimate, BloatEstimates, EnsureIndexesResult, ExplainedStatement, ExplainedStatements, ReindexedIndex } from '../activities/postgres';
import type { databaseOptimizationInput, DatabaseOptimizationInput } from '../common/inputs/database-optimization';
import type { IncidentFindings, RunbookResultBase } from '../common/runbook';
import { catalog } from '../common/catalog';
import { planModeImpact, planOnly, RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { indexBuild, read } from './activity-proxies';
import { oneLine } from './slow-statements-check';

type Input = z.infer<typeof databaseOptimizationInput>;

/** One of the manual's indexes in the report: its state, what it costs and which slow statements it may serve. */
export interface IndexCost {
  name: string;
  table: string;
  state: string;
  after?: string;
  bytesBefore: number | null;
  bytesAfter: number | null;
  /** Slow statements (one line each) whose text names the index's table and its leading column. */
  mayServe: string[];
}

export interface DatabaseOptimizationResult extends RunbookResultBase {
  database: string;
  indexes: IndexCost[];
  statements: Array<Pick<ExplainedStatement, 'query' | 'meanMs' | 'calls' | 'plan' | 'textOnly'>>;
  bloat: { tables: BloatEstimate[]; indexes: BloatEstimate[] };
  reindexed: ReindexedIndex[];
  analyzed: string[];
}

const steps = ['indexes', 'slow-statements', 'bloat', 'create-indexes', 'reindex-bloated', 'analyze', 'verify'] as const;
export type DatabaseOptimizationStep = (typeof steps)[number];
type Run = RunbookRun<DatabaseOptimizationStep>;

const word = (w: string) => new RegExp(`\\b${w}\\b`, 'i');
const size = (bytes: number | null) => (bytes === null ? '-' : bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.round(bytes / 1024)} kB`);
const percent = (ratio: number | null) => (ratio === null ? '-' : `${Math.round(ratio * 100)}%`);

/** Statements that look rows up (not DDL, not a plain INSERT). */
const readsRows = /^\s*(SELECT|WITH|UPDATE|DELETE)\b/i;

/** Statements that read rows and whose text names the table and the index's leading column: the index may serve them (a hint, not a plan). */
export function mayServe(index: { table: string; leading?: string }, statements: ReadonlyArray<Pick<ExplainedStatement, 'query'>>): string[] {
  const column = index.leading;
  return statements.filter((s) => readsRows.test(s.query) && word(index.table).test(s.query) && (!column || word(column).test(s.query))).map((s) => oneLine(s.query, 120));
}

/** Indexes to rebuild: valid btree indexes the worker may maintain, at or above the threshold and size, the most bloat first, capped. */
function bloatedIndexes(input: Input, bloat: BloatEstimates): BloatEstimate[] {
  return bloat.indexes
    .filter((i) => i.maintainable && i.bloatRatio !== null && i.bloatRatio >= input.reindexBloatAbove && i.bytes >= input.reindexMinBytes)
    .sort((a, b) => (b.bloatBytes ?? 0) - (a.bloatBytes ?? 0))
    .slice(0, input.maxReindex);
}

/**
 * 性能优化 → 数据库优化. What it does: catalog.databaseOptimization. Reads first (indexes,
 * slow statements with plans, bloat), then two approved steps, then ANALYZE of the tables touched
 * and a check that every index it built or rebuilt is valid.
 */
export async function databaseOptimization(raw: DatabaseOptimizationInput): Promise<DatabaseOptimizationResult> {
  const input = validateInput(catalog.databaseOptimization, raw);
  const { database } = input;
  const run = await RunbookRun.begin(catalog.databaseOptimization, input, steps);
  await read.assertTargetsAllowed({ databases: [database] });

  const indexes = await run.read(
    'indexes',
    "The manual's indexes",
    () => read.ensureRecommendedIndexes({ database, dryRun: true }),
    (r) => r.indexes.map((i) => `${i.name} ${i.before}${i.bytesBefore === null ? '' : ` (${size(i.bytesBefore)})`}`).join(', '),
  );
  const slow = await run.read(
    'slow-statements',
    `The ${input.slowStatements} slowest statements, plans of SELECTs`,
    () => read.explainSlowStatements({ database, limit: input.slowStatements, timeoutMs: input.explainTimeoutMs }),
    (r: ExplainedStatements) =>
      `${r.statements.length} statements, ${r.statements.filter((s) => s.plan).length} with a plan; slowest ${r.statements[0] ? `${r.statements[0].meanMs} ms mean` : 'none'}`,
  );
  const bloat = await run.read(
    'bloat',
    'Table and index bloat (estimated from pg_stats)',
    () => read.bloatEstimates({ database, limit: 50 }),
    (b) => {
      const top = (list: BloatEstimate[]) =>
        list
          .filter((e) => e.bloatRatio !== null)
          .slice(0, 3)
          .map((e) => `${e.index ?? e.table} ${percent(e.bloatRatio)} of ${size(e.bytes)}`)
          .join(', ') || 'none estimated';
      return `tables: ${top(b.tables)}; indexes: ${top(b.indexes)}`;
    },
  );

  const built = await createIndexesStep(run, input);
  const reindexed = await reindexStep(run, input, bloat);
  const builtTables = built?.indexes.filter((i) => i.action !== 'none' && i.action !== 'skipped: table missing').map((i) => ({ schema: 'public', table: i.table })) ?? [];
  const analyzed = await analyzeStep(run, input, [...builtTables, ...reindexed.tables]);
  const after = input.mode === 'execute' && (built || reindexed.done.length > 0) ? await verifyIndexes(run, input, built) : undefined;
  return report(run, input, { indexes: after ?? built ?? indexes, before: indexes, slow, bloat, reindexed: reindexed.done, analyzed });
}

/** ⚠ the missing indexes created CONCURRENTLY; an INVALID leftover dropped and rebuilt. */
async function createIndexesStep(run: Run, input: Input): Promise<EnsureIndexesResult | undefined> {
  const { database } = input;
  let result: EnsureIndexesResult | undefined;
  await run.change({
    stepId: 'create-indexes',
    title: "Create the manual's missing indexes CONCURRENTLY",
    plan: async () => {
      const dry = await read.ensureRecommendedIndexes({ database, dryRun: true });
      const todo = dry.indexes.filter((i) => i.action === 'would create' || i.action === 'would rebuild');
      if (todo.length === 0) {
        const skipped = dry.indexes.filter((i) => i.before === 'table missing').map((i) => i.name);
        return { summary: `the manual's indexes are all valid${skipped.length ? ` (${skipped.join(', ')}: table missing)` : ''}; none to create`, needed: false };
      }
      const what = todo.map((i) => (i.action === 'would rebuild' ? `${i.name} (INVALID leftover: DROP INDEX CONCURRENTLY, then build)` : i.name)).join(', ');
      return { summary: `CREATE INDEX CONCURRENTLY on ${database}: ${what}`, details: { indexes: todo.map((i) => [i.name, i.before]) }, needed: true };
    },
    apply: async () => {
      result = await indexBuild.ensureRecommendedIndexes({ database });
      const acted = result.indexes.filter((i) => i.action !== 'none' && i.action !== 'skipped: table missing');
      return acted.map((i) => `${i.name} ${i.action} (${i.after}, ${size(i.bytesAfter)})`).join('; ') || 'nothing left to build';
    },
  });
  return result;
}

/** ⚠ REINDEX CONCURRENTLY of the indexes whose estimated bloat passes the threshold. */
type Table = { schema: string; table: string };

async function reindexStep(run: Run, input: Input, bloat: BloatEstimates): Promise<{ done: ReindexedIndex[]; tables: Table[] }> {
  const { database } = input;
  const chosen = bloatedIndexes(input, bloat);
  const done: ReindexedIndex[] = [];
  await run.change({
    stepId: 'reindex-bloated',
    title: 'REINDEX CONCURRENTLY the bloated indexes',
    plan: async () => {
      if (chosen.length === 0) {
        return {
          summary: `no index has an estimated bloat of ${percent(input.reindexBloatAbove)} or more at ${size(input.reindexMinBytes)} or more; none to rebuild`,
          needed: false,
        };
      }
      const list = chosen.map((i) => `${i.schema}.${i.index} (${percent(i.bloatRatio)} of ${size(i.bytes)} estimated bloat)`).join(', ');
      return {
        summary: `REINDEX INDEX CONCURRENTLY on ${database}: ${list}`,
        details: { indexes: chosen.map((i) => ({ schema: i.schema, index: i.index!, oid: i.oid! })) },
        needed: true,
      };
    },
    apply: async (planned) => {
      const { indexes } = planned.details as { indexes: Array<{ schema: string; index: string; oid: number }> };
      const r = await indexBuild.reindexIndexes({ database, indexes });
      done.push(...r.indexes);
      const leftovers = (i: ReindexedIndex) => (i.droppedLeftovers.length ? ` (INVALID leftover ${i.droppedLeftovers.join(', ')} dropped)` : '');
      return r.indexes.map((i) => `${i.schema}.${i.index} ${i.action}: ${size(i.bytesBefore)} -> ${size(i.bytesAfter)}${leftovers(i)}`).join('; ');
    },
  });
  const rebuilt = chosen.filter((c) => done.some((d) => d.schema === c.schema && d.index === c.index && d.action !== 'gone'));
  return { done, tables: rebuilt.map((c) => ({ schema: c.schema, table: c.table })) };
}

/** ANALYZE of the tables whose indexes were built or rebuilt (execute mode, only when something was). */
async function analyzeStep(run: Run, input: Input, tables: Table[]): Promise<string[]> {
  const unique = [...new Map(tables.map((t) => [`${t.schema}.${t.table}`, t])).values()];
  if (input.mode !== 'execute' || unique.length === 0) {
    await run.read(
      'analyze',
      'ANALYZE the tables touched',
      async () => [] as string[],
      () => (input.mode !== 'execute' ? 'plan mode: ANALYZE runs after the changes in execute mode' : 'no index was built or rebuilt: nothing to ANALYZE'),
    );
    return [];
  }
  const r = await run.read(
    'analyze',
    'ANALYZE the tables touched',
    () => indexBuild.analyzeTables({ database: input.database, tables: unique }),
    (a) => `ANALYZE ${a.analyzed.join(', ')} in ${a.durationMs} ms`,
  );
  return r.analyzed;
}

/** Every one of the manual's indexes the run built is valid, and no INVALID leftover is left. */
async function verifyIndexes(run: Run, input: Input, built: EnsureIndexesResult | undefined): Promise<EnsureIndexesResult | undefined> {
  const promised = built?.indexes.filter((i) => i.action !== 'none' && i.action !== 'skipped: table missing') ?? [];
  return run.verify('verify', "The manual's indexes after the changes", {
    read: () => read.ensureRecommendedIndexes({ database: input.database, dryRun: true }),
    describe: (r: EnsureIndexesResult) => r.indexes.map((i) => `${i.name} ${i.before}`).join(', '),
    effects: promised.map((p) => ({
      promised: `index ${p.name} valid`,
      holds: (r: EnsureIndexesResult) => r.indexes.find((i) => i.name === p.name)?.before === 'valid',
      found: (r: EnsureIndexesResult) => `${p.name} is ${r.indexes.find((i) => i.name === p.name)?.before}`,
    })),
    withinSeconds: 5,
    before: 'same read',
  });
}

async function report(
  run: Run,
  input: Input,
  r: { indexes: EnsureIndexesResult; before: EnsureIndexesResult; slow: ExplainedStatements; bloat: BloatEstimates; reindexed: ReindexedIndex[]; analyzed: string[] },
): Promise<DatabaseOptimizationResult> {
  const indexes = r.before.indexes.map((b): IndexCost => {
    const a = r.indexes.indexes.find((i) => i.name === b.name) ?? b;
    const after = r.indexes === r.before ? undefined : (a.after ?? a.before);
    return { name: b.name, table: b.table, state: b.before, ...(after ? { after } : {}), bytesBefore: b.bytesBefore, bytesAfter: a.bytesAfter, mayServe: mayServe(b, r.slow.statements) };
  });
  const costs = indexes.map((i) => `${i.name} ${size(i.bytesAfter ?? i.bytesBefore)} (may serve ${i.mayServe.length} of the slow statements)`).join('; ');
  const summary = `${input.database}: ${costs}; ${r.reindexed.length} rebuilt; ANALYZE ${r.analyzed.length} tables`;
  const base = await run.finish(summary, findings(input, indexes, r));
  return {
    ...base,
    database: input.database,
    indexes,
    statements: r.slow.statements.map(({ query, meanMs, calls, plan, textOnly }) => ({ query, meanMs, calls, plan, ...(textOnly ? { textOnly } : {}) })),
    bloat: r.bloat,
    reindexed: r.reindexed,
    analyzed: r.analyzed,
  };
}

/** The report in S3: what each index costs and which slow statements it may serve, what was rebuilt, what the plan left undone. */
function findings(input: Input, indexes: IndexCost[], r: { slow: ExplainedStatements; bloat: BloatEstimates; reindexed: ReindexedIndex[]; analyzed: string[] }): IncidentFindings {
  const cost = (i: IndexCost) =>
    `${i.name} on ${i.table}: ${i.state}${i.after && i.after !== i.state ? ` -> ${i.after}` : ''}, ${size(i.bytesBefore)} -> ${size(i.bytesAfter ?? i.bytesBefore)}; ` +
    (i.mayServe.length ? `may serve ${i.mayServe.map((q) => `"${q}"`).join(', ')}` : 'serves none of the slow statements read');
  const slowest = r.slow.statements
    .slice(0, 5)
    .map((s, n) => `${n + 1}. ${oneLine(s.query, 120)} (mean ${s.meanMs} ms, ${s.calls} calls${s.plan ? '' : `; no plan: ${s.textOnly ?? 'text only'}`})`)
    .join('; ');
  const rebuilt = r.reindexed.map((x) => `${x.index} ${x.action} (${size(x.bytesBefore)} -> ${size(x.bytesAfter)})`).join(', ');
  const done = `Indexes: ${indexes.map(cost).join('. ')}. Rebuilt: ${rebuilt || 'none'}. ANALYZE: ${r.analyzed.join(', ') || 'none'}.`;
  return {
    impact: input.mode === 'plan' ? planModeImpact(done) : done,
    rootCause: `The slowest statements in ${input.database}: ${slowest || 'none recorded by pg_stat_statements'}. Missing or INVALID indexes and bloat make such statements read more than they need.`,
    solution: input.mode === 'plan' ? planOnly('create the missing indexes CONCURRENTLY and REINDEX CONCURRENTLY the bloated ones, after approval') : done,
    prevention:
      "Keep the monthly databaseOptimization schedule on (SCHEDULE_DATABASE_OPTIMIZATION_ENABLED) and read the weekly review's slow statements; build indexes CONCURRENTLY in migrations, and check for INVALID leftovers after a failed build.",
  };
}
