import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName, redisKeyPattern, relativeDir, s3Folder } from './fields';

/** What every checklist looks at: the manual's names are the defaults. */
const checklistTargets = {
  namespace: kubeName.default('short-drama-prod'),
  appDeployment: kubeName.default('short-drama-app'),
  databaseDeployment: kubeName.default('postgres'),
  redisDeployment: kubeName.default('redis'),
  database: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, { message: 'expected a PostgreSQL database name (lowercase letters, digits, _)' })
    .default('short_drama_prod'),
  backupPrefix: s3Folder.default('database/'),
};

/** The daily checklist's sections, in the order they run: the manual's 每日检查清单. */
export const dailyChecks = ['pods', 'services', 'ingress', 'hpa', 'pvc', 'usage', 'database-volume', 'logs', 'backups'] as const;
/** Not part of the daily list; an alert may ask for it (API响应时间慢: resource usage + slow queries). */
export const extraDailyChecks = ['slow-statements'] as const;
export type DailyCheck = (typeof dailyChecks)[number] | (typeof extraDailyChecks)[number];

/** 每日检查清单. */
export const dailyHealthCheckInput = z
  .object({
    ...runbookInputBase,
    ...checklistTargets,
    /** Only these checks (e.g. ["usage", "slow-statements"] for a latency alert); default: the manual's daily list. */
    only: z
      .array(z.enum([...dailyChecks, ...extraDailyChecks], { message: `expected some of ${[...dailyChecks, ...extraDailyChecks].join(', ')}` }))
      .min(1, { message: 'name at least one check, or leave only out for all of them' })
      .optional(),
    /** The database volume's mount in the database pod, relative to the container's work dir: `df -h` runs on it. */
    dataDir: relativeDir.default('var/lib/postgresql'),
    /** The manual reads the app's last 100 log lines and the database's and Redis' last 50. */
    appLogLines: z.number().int().min(1).max(10_000).default(100),
    serviceLogLines: z.number().int().min(1).max(10_000).default(50),
    /** How many of the newest backups the report lists (the manual: `tail -5`). */
    newestBackups: z.number().int().min(1).max(100).default(5),
  })
  .strict();
export type DailyHealthCheckInput = z.input<typeof dailyHealthCheckInput>;

/** 每周检查清单. */
export const weeklyReviewInput = z
  .object({
    ...runbookInputBase,
    ...checklistTargets,
    certificate: kubeName.default('app-tls-cert'),
    /** Prometheus rate window for the performance review. */
    window: z
      .string()
      .regex(/^\d+[smhd]$/, { message: 'expected a PromQL duration such as 5m' })
      .default('5m'),
    /** `sessions` rows expired longer ago than this are deleted (the manual: 7 days). */
    sessionsExpiredDays: z.number().int().min(1).max(3650).default(7),
    /** At most this many rows are deleted in one run. */
    maxSessionsDeleted: z.number().int().min(1).max(10_000_000).default(1_000_000),
    /** Redis优化 → 设置过期时间: the (allowlisted) pattern of the Redis keys that should all have a TTL. */
    sessionPattern: redisKeyPattern.default('session:*'),
  })
  .strict();
export type WeeklyReviewInput = z.input<typeof weeklyReviewInput>;

/** 每月检查清单. */
export const monthlyReviewInput = z
  .object({
    ...runbookInputBase,
    ...checklistTargets,
    pvc: kubeName.default('postgres-pvc'),
    /** Capacity planning: how much history the trend is fitted on, and how far it is projected. */
    lookbackDays: z.number().int().min(2, { message: 'at least 2 days' }).max(365, { message: 'at most 365 days' }).default(30),
    horizonDays: z.number().int().min(1, { message: 'at least 1 day' }).max(730, { message: 'at most 730 days' }).default(90),
    /** Run the disaster-recovery drill (restore the newest backup into a scratch database). */
    drill: z.boolean().default(true),
  })
  .strict();
export type MonthlyReviewInput = z.input<typeof monthlyReviewInput>;
