import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

/** 场景2 数据库连接耗尽: the manual's names are the defaults. */
export const dbConnectionExhaustionInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The database's Deployment, restarted when max_connections changes. */
    deployment: kubeName.default('postgres'),
    database: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, { message: 'expected a database name' })
      .default('short_drama_prod'),
    /** Idle connections older than this are terminated (manual: 5 minutes). */
    idleOlderThanSeconds: z.number().int().min(1, { message: 'at least 1 second' }).max(86_400).default(300),
    /** At most this many connections are terminated in one run. */
    maxTerminate: z.number().int().min(1).max(1000).default(50),
    /** Connection usage (of max_connections) from which raising it is proposed. */
    raiseWhenUsageAbove: z.number().gt(0).max(1, { message: 'a fraction of max_connections, at most 1' }).default(0.8),
    /** The new max_connections; by default 1.5 times the current, capped by maxConnectionsCap. */
    raiseMaxConnectionsTo: z.number().int().min(20).max(5000).optional(),
    maxConnectionsCap: z.number().int().min(20).max(5000).default(500),
    /** How long to wait for the restarted database to accept connections. */
    restartTimeoutSeconds: z.number().int().min(10).max(3600).default(300),
  })
  .strict();

export type DbConnectionExhaustionInput = z.input<typeof dbConnectionExhaustionInput>;
