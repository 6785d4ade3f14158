import { z } from 'zod';
import { runbookInputBase } from '../runbook';

/** 性能优化 → 数据库优化: the manual's database is the default; thresholds are inputs with safe floors. */
export const databaseOptimizationInput = z
  .object({
    ...runbookInputBase,
    /** The database the worker is connected to (DATABASE_URL) and allowlisted (ALLOWED_DATABASES). */
    database: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, { message: 'expected a database name (lowercase letters, digits, underscores)' })
      .default('short_drama_prod'),
    /** How many of the slowest statements (pg_stat_statements, by mean time) are shown, with plans for SELECTs. */
    slowStatements: z.number().int().min(1).max(50).default(10),
    /** The statement timeout of each EXPLAIN. */
    explainTimeoutMs: z.number().int().min(100).max(30_000).default(2000),
    /**
     * An index is rebuilt (REINDEX CONCURRENTLY) when its estimated bloat is at least this share of
     * its size. At least 0.2: below that the estimate's own error would rebuild nearly every index.
     */
    reindexBloatAbove: z.number().min(0.2, { message: 'at least 0.2 (a lower threshold would rebuild nearly every index: the estimate is not that precise)' }).max(0.95).default(0.4),
    /** Indexes smaller than this are never rebuilt (64 kB at least; default 10 MB). */
    reindexMinBytes: z
      .number()
      .int()
      .min(65_536, { message: 'at least 65536 bytes (8 pages): smaller indexes have no meaningful bloat estimate' })
      .default(10 * 1024 * 1024),
    /** At most this many indexes are rebuilt in one run, the most bloated first. */
    maxReindex: z.number().int().min(1).max(10).default(3),
  })
  .strict();

export type DatabaseOptimizationInput = z.input<typeof databaseOptimizationInput>;
