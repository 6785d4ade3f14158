import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

/** 定期轮换密钥: the manual's Secret, key, database and app are the defaults. */
export const rotateDatabasePasswordInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The Secret the app reads its database password from. */
    secret: kubeName.default('app-secrets'),
    /** Its key; the rotation also writes `<key>_NEXT` (staged) and `<key>_PREVIOUS` (the old value, for restoring). */
    key: z
      .string()
      .regex(/^[-._a-zA-Z0-9]{1,240}$/, { message: 'expected a Secret key (letters, digits, "-", "_", ".", at most 240 characters)' })
      .default('DATABASE_PASSWORD'),
    /**
     * The PostgreSQL login role whose password this is. Required: the manual's Secret is also the
     * image's POSTGRES_PASSWORD (a superuser), which is never rotated here, so there is no safe default.
     */
    role: z
      .string({ message: "the app's PostgreSQL login role is required, e.g. short_drama_app (superusers are refused)" })
      .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, { message: 'expected a PostgreSQL role name (letters, digits, _ and $, at most 63 characters)' })
      .refine((role) => !role.toLowerCase().startsWith('pg_'), { message: 'pg_* roles are reserved by PostgreSQL' }),
    /** The database the role must be able to log in to after the change. */
    database: z
      .string()
      .regex(/^[a-z_][a-z0-9_$]{0,62}$/, { message: 'expected a database name (lowercase letters, digits, _)' })
      .default('short_drama_prod'),
    /** The Deployment restarted so its pods read the new password. */
    appDeployment: kubeName.default('short-drama-app'),
    /** How long the restarted app may take to become ready before the old password is restored. */
    waitTimeoutSeconds: z.number().int({ message: 'expected whole seconds' }).min(5, { message: 'at least 5 seconds' }).max(3600, { message: 'at most 3600 seconds (1 hour)' }).default(300),
  })
  .strict();

/** Where a rotation keeps the new password until it is promoted, and the old one after. */
export const stagedKeyOf = (key: string) => `${key}_NEXT`;
export const previousKeyOf = (key: string) => `${key}_PREVIOUS`;

/** Which run staged the `<key>_NEXT` value: a retry or replay of that run finds it and stages nothing new. */
export const nextVersionAnnotation = 'runbooks.example/password-next-version';
/** Which run's staged value was promoted into `<key>`: makes promotion and its revert idempotent. */
export const versionAnnotation = 'runbooks.example/password-version';

export type RotateDatabasePasswordInput = z.input<typeof rotateDatabasePasswordInput>;
