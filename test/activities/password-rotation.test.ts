import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Client, Pool } from 'pg';
import { createPasswordRotationActivities, nextVersionAnnotation, redact, redacting, scramSha256Verifier, versionAnnotation } from '../../activities/password-rotation';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { failureOf } from '../helpers/failures';
import { adminKubeConfig, kubernetesNamespace as ns, statusOf } from '../helpers/kube-cluster';
import { uniqueSuffix, withAdmin } from '../helpers/postgres-scratch';
import { logsIn } from '../helpers/postgres-login';
import { testbedEnv } from '../helpers/testbed';
import { rotatableGroup } from '../../scripts/testbed/seed-postgres';

/**
 * The password-rotation activities against the test bed's real PostgreSQL 15 and Kubernetes API.
 * Each test makes its own LOGIN role and Secret (never the seeded app-secrets or postgres) and
 * drops them after.
 */
const env = testbedEnv();
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const key = 'DATABASE_PASSWORD';
let h: ActivityHarness;
const cleanups: Array<() => Promise<unknown>> = [];

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: string | undefined) => (text === undefined ? undefined : Buffer.from(text, 'base64').toString('utf8'));

/** Names of the roles the tests make, in the rotation allowlist (with postgres and a missing role, so those reach their own refusals). */
const rotatable = Array.from({ length: 16 }, () => `rot_${uniqueSuffix()}`);
const missingRole = `rot_missing_${uniqueSuffix()}`;

/** A role of its own with a known password (allowlisted unless `allowlisted: false`); pg_stat_statements is told not to keep this statement. */
async function scratchRole(options: { login?: boolean; createRole?: boolean; attributes?: string; allowlisted?: boolean } = {}): Promise<{ role: string; password: string }> {
  const role = options.allowlisted === false ? `rot_out_${uniqueSuffix()}` : rotatable.shift()!;
  const password = randomBytes(18).toString('base64url');
  await withAdmin(async (admin) => {
    await admin.query('SET pg_stat_statements.track_utility = off');
    await admin.query(
      `CREATE ROLE "${role}" ${options.login === false ? 'NOLOGIN' : 'LOGIN'} ${options.createRole ? 'CREATEROLE' : ''} ${options.attributes ?? ''} PASSWORD '${password}' IN ROLE ${rotatableGroup}`,
    );
  });
  cleanups.push(() => withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS "${role}"`)));
  return { role, password };
}

/** A Secret of its own holding the role's current password under `key`. */
async function scratchSecret(password: string, extra: Record<string, string> = {}): Promise<string> {
  const name = `rot-${uniqueSuffix()}`;
  await core.createNamespacedSecret(ns, {
    metadata: { name, labels: { 'runbook-test/scratch': 'true' } },
    type: 'Opaque',
    data: { [key]: b64(password), ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, b64(v)])) },
  });
  cleanups.push(() => core.deleteNamespacedSecret(name, ns).catch((err: unknown) => (statusOf(err) === 404 ? undefined : Promise.reject(err))));
  return name;
}

async function readSecret(name: string) {
  const { body } = await core.readNamespacedSecret(name, ns);
  return { data: Object.fromEntries(Object.entries(body.data ?? {}).map(([k, v]) => [k, unb64(v)!])), annotations: body.metadata?.annotations ?? {} };
}

beforeAll(() => {
  h = activityHarness({ ALLOWED_ROTATION_ROLES: ['postgres', missingRole, ...rotatable].join(',') });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await h?.close();
});

describe('SCRAM-SHA-256 verifier', () => {
  test('is what PostgreSQL itself stores for the same password, salt and iterations', async () => {
    const { role, password } = await scratchRole();
    const stored = await withAdmin(async (admin) => (await admin.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [role])).rows[0]!.p);
    const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored);
    expect(match).not.toBeNull();
    expect(await scramSha256Verifier(password, Number(match![1]), Buffer.from(match![2]!, 'base64'))).toBe(stored);
    expect(await scramSha256Verifier(`${password}x`, Number(match![1]), Buffer.from(match![2]!, 'base64'))).not.toBe(stored);
  });
});

describe('stageSecretPassword', () => {
  test('stages once per version (a retry keeps the value), never returns it; a dry run writes nothing', async () => {
    const { password } = await scratchRole();
    const secret = await scratchSecret(password);
    const dry = await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'run-1', dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true, version: 'run-1' });
    expect(Object.keys((await readSecret(secret)).data)).toEqual([key]);

    const first = await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'run-1' });
    expect(first).toMatchObject({ changed: true, dryRun: false, version: 'run-1' });
    const staged = await readSecret(secret);
    const value = staged.data[`${key}_NEXT`]!;
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    expect(staged.data[key]).toBe(password);
    expect(staged.annotations[nextVersionAnnotation]).toBe('run-1');

    const again = await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'run-1' });
    expect(again).toMatchObject({ changed: false, version: 'run-1' });
    expect((await readSecret(secret)).data[`${key}_NEXT`]).toBe(value);

    // Another run's version replaces a leftover staged value with a new one.
    const other = await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'run-2' });
    expect(other).toMatchObject({ changed: true, replacedVersion: 'run-1' });
    const replaced = (await readSecret(secret)).data[`${key}_NEXT`]!;
    expect(replaced).not.toBe(value);

    const text = JSON.stringify([dry, first, again, other, h.heartbeats]);
    for (const secretText of [value, replaced, password]) {
      expect(text).not.toContain(secretText);
      expect(text).not.toContain(b64(secretText));
    }
  });

  test('a Secret without the key, a missing Secret, bad keys and versions, kube-system are refused', async () => {
    const secret = await scratchSecret('x', {});
    expect((await failureOf(h.run('stageSecretPassword', { namespace: ns, secret, key: 'OTHER_KEY', version: 'v' }))).type).toBe('NotFound');
    expect((await failureOf(h.run('stageSecretPassword', { namespace: ns, secret: `rot-missing-${uniqueSuffix()}`, key, version: 'v' }))).type).toBe('NotFound');
    expect((await failureOf(h.run('stageSecretPassword', { namespace: ns, secret, key: 'bad key', version: 'v' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'has spaces' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('stageSecretPassword', { namespace: 'kube-system', secret, key, version: 'v' }))).type).toBe('Refused');
  });
});

describe('setRolePasswordFromSecret', () => {
  test('the role logs in with the Secret value and no longer with the old one; a second run changes nothing; no password reaches PostgreSQL', async () => {
    const { role, password: old } = await scratchRole();
    const secret = await scratchSecret(old);
    await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'v1' });
    const next = (await readSecret(secret)).data[`${key}_NEXT`]!;
    const input = { role, namespace: ns, secret, key: `${key}_NEXT`, database: 'short_drama_prod' };

    const dry = await h.run('setRolePasswordFromSecret', { ...input, dryRun: true });
    expect(dry).toMatchObject({ role, sourceKey: `${key}_NEXT`, changed: true, dryRun: true, alreadyCurrent: false });
    expect(await logsIn(role, old)).toBe(true);

    const set = await h.run('setRolePasswordFromSecret', input);
    expect(set).toMatchObject({ changed: true, alreadyCurrent: false });
    expect(await logsIn(role, next)).toBe(true);
    expect(await logsIn(role, old)).toBe(false);

    const again = await h.run('setRolePasswordFromSecret', input);
    expect(again).toMatchObject({ changed: false, alreadyCurrent: true });

    // From the current key (the old password) back: the same activity restores.
    const back = await h.run('setRolePasswordFromSecret', { ...input, key });
    expect(back).toMatchObject({ changed: true });
    expect(await logsIn(role, old)).toBe(true);
    expect(await logsIn(role, next)).toBe(false);

    for (const result of [dry, set, again, back]) {
      expect(JSON.stringify(result)).not.toContain(next);
      expect(JSON.stringify(result)).not.toContain(old);
    }
    // PostgreSQL got verifiers only: its catalog and pg_stat_statements (which keeps a plain
    // CREATE/ALTER ROLE ... PASSWORD verbatim) hold the ALTER ROLE statements, but no password.
    // pg_stat_statements is installed in short_drama_prod (the worker's database), which the superuser URL names.
    const admin = new Client({ connectionString: env.TESTBED_DATABASE_ADMIN_URL });
    await admin.connect();
    try {
      const stored = (await admin.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [role])).rows[0]!.p;
      expect(stored).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/);
      const statements = (await admin.query<{ query: string }>(`SELECT query FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%'`, [role])).rows.map((r) => r.query);
      expect(statements.filter((q) => q.startsWith('ALTER ROLE')).length).toBeGreaterThanOrEqual(1);
      for (const q of statements) {
        expect(q).not.toContain(next);
        expect(q).not.toContain(old);
      }
    } finally {
      await admin.end();
    }
  });

  test('refused: bad names, superusers, pg_* roles, NOLOGIN roles, missing roles and keys, databases outside the allowlist', async () => {
    const { role: nologin, password } = await scratchRole({ login: false });
    const secret = await scratchSecret(password);
    const base = { namespace: ns, secret, key };
    const bad = await failureOf(h.run('setRolePasswordFromSecret', { ...base, role: 'app"; DROP ROLE x; --' }));
    expect(bad.type).toBe('InvalidInput');
    const superuser = await failureOf(h.run('setRolePasswordFromSecret', { ...base, role: 'postgres' }));
    expect(superuser).toMatchObject({ type: 'Refused', nonRetryable: true });
    expect(superuser.message).toMatch(/role postgres is a superuser/);
    expect((await failureOf(h.run('describeRotatableRole', { role: 'postgres' }))).message).toMatch(/superuser/);
    expect((await failureOf(h.run('setRolePasswordFromSecret', { ...base, role: 'pg_monitor' }))).type).toBe('Refused');
    expect((await failureOf(h.run('setRolePasswordFromSecret', { ...base, role: nologin }))).message).toMatch(/cannot log in \(NOLOGIN\)/);
    expect((await failureOf(h.run('setRolePasswordFromSecret', { ...base, role: missingRole }))).type).toBe('NotFound');
    const { role, password: rolePassword } = await scratchRole();
    expect((await failureOf(h.run('setRolePasswordFromSecret', { ...base, role, key: 'NO_SUCH_KEY' }))).type).toBe('NotFound');
    expect((await failureOf(h.run('setRolePasswordFromSecret', { ...base, role, database: 'postgres' }))).type).toBe('Refused');
    expect(await logsIn(role, rolePassword)).toBe(true); // nothing was changed by any of these
  });

  test('errors hold neither the password nor the verifier', async () => {
    // An ALTER ROLE that really fails: the worker's connection is a role without CREATEROLE.
    const weak = await scratchRole();
    const { role, password: old } = await scratchRole();
    const secret = await scratchSecret(old);
    await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'v1' });
    const next = (await readSecret(secret)).data[`${key}_NEXT`]!;
    const weakUrl = new URL(env.DATABASE_URL!);
    weakUrl.username = weak.role;
    weakUrl.password = weak.password;
    const pool = new Pool({ connectionString: weakUrl.toString(), max: 2 });
    pool.on('error', () => undefined);
    try {
      const activities = createPasswordRotationActivities({ kube: kc, allowedNamespaces: [ns], pool, databaseUrl: weakUrl.toString(), allowedDatabases: ['short_drama_prod'], allowedRoles: [role] });
      const environment = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const failed = await failureOf(environment.run(activities.setRolePasswordFromSecret, { role, namespace: ns, secret, key: `${key}_NEXT` }));
      expect(failed.type).toBe('Forbidden');
      expect(failed.message).toMatch(new RegExp(`ALTER ROLE ${role}: permission denied`));
      for (const text of [failed.message, failed.stack ?? '', JSON.stringify(failed)]) {
        expect(text).not.toContain(next);
        expect(text).not.toContain(b64(next));
        expect(text).not.toContain('SCRAM-SHA-256$');
      }
      expect(failed.cause).toBeUndefined();
    } finally {
      await pool.end();
    }
    expect(await logsIn(role, old)).toBe(true);

    // A password PostgreSQL would SASLprep is refused without being named.
    const odd = 'pässwörd-ß-✓';
    const oddSecret = await scratchSecret(odd);
    const refusedOdd = await failureOf(h.run('setRolePasswordFromSecret', { role, namespace: ns, secret: oddSecret, key }));
    expect(refusedOdd.type).toBe('InvalidInput');
    expect(refusedOdd.message).not.toContain(odd);

    // And should any client error quote a secret, it leaves redacted (raw, base64 and URL-encoded forms).
    const value = 'p@ss/w0rd+secret';
    const quoted = await failureOf(
      redacting([value], 'connect', async () => {
        throw Object.assign(new Error(`auth failed for ${value} (${b64(value)}) at postgres://u:${encodeURIComponent(value)}x@h`), { code: 'XX000' });
      }),
    );
    expect(quoted.message).not.toContain(value);
    expect(quoted.message).not.toContain(b64(value));
    expect(quoted.message).not.toContain(encodeURIComponent(value));
    expect(quoted.message).toContain('connect: auth failed for [redacted]');
    expect(redact('a b', [''])).toBe('a b');
  });
});

describe('promoteStagedSecretKey and revertSecretRotation', () => {
  test('promote: <key> <- staged, <key>_PREVIOUS <- old, staged dropped, idempotent; revert puts it back', async () => {
    const secret = await scratchSecret('old-value', { OTHER: 'kept' });
    await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'v1' });
    const next = (await readSecret(secret)).data[`${key}_NEXT`]!;

    const dry = await h.run('promoteStagedSecretKey', { namespace: ns, secret, key, version: 'v1', dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true });
    expect((await readSecret(secret)).data[key]).toBe('old-value');

    const promoted = await h.run('promoteStagedSecretKey', { namespace: ns, secret, key, version: 'v1' });
    expect(promoted).toMatchObject({ changed: true, version: 'v1' });
    const after = await readSecret(secret);
    expect(after.data).toEqual({ [key]: next, [`${key}_PREVIOUS`]: 'old-value', OTHER: 'kept' });
    expect(after.annotations[versionAnnotation]).toBe('v1');
    expect(after.annotations[nextVersionAnnotation]).toBeUndefined();

    expect(await h.run('promoteStagedSecretKey', { namespace: ns, secret, key, version: 'v1' })).toMatchObject({ changed: false });
    expect(await h.run('promoteStagedSecretKey', { namespace: ns, secret, key })).toMatchObject({ changed: false });
    expect((await failureOf(h.run('promoteStagedSecretKey', { namespace: ns, secret, key, version: 'v2' }))).type).toBe('NotFound');
    expect(JSON.stringify([dry, promoted])).not.toContain(next);

    // Another version does not touch it; this version's revert restores the old value.
    expect(await h.run('revertSecretRotation', { namespace: ns, secret, key, version: 'v2' })).toMatchObject({ changed: false });
    const reverted = await h.run('revertSecretRotation', { namespace: ns, secret, key, version: 'v1' });
    expect(reverted).toMatchObject({ changed: true });
    const restored = await readSecret(secret);
    expect(restored.data).toEqual({ [key]: 'old-value', OTHER: 'kept' });
    expect(restored.annotations[versionAnnotation]).toBeUndefined();
    expect(await h.run('revertSecretRotation', { namespace: ns, secret, key, version: 'v1' })).toMatchObject({ changed: false });
  });

  test('revert of a run that only staged drops the staged key; a staged value of another run is not promoted', async () => {
    const secret = await scratchSecret('old-value');
    await h.run('stageSecretPassword', { namespace: ns, secret, key, version: 'v1' });
    expect((await failureOf(h.run('promoteStagedSecretKey', { namespace: ns, secret, key, version: 'v9' }))).type).toBe('Refused');
    expect(await h.run('revertSecretRotation', { namespace: ns, secret, key, version: 'v1' })).toMatchObject({ changed: true });
    const s = await readSecret(secret);
    expect(s.data).toEqual({ [key]: 'old-value' });
    expect(s.annotations[nextVersionAnnotation]).toBeUndefined();
  });
});

describe('which roles may be rotated', () => {
  test('a role outside the allowlist is refused; REPLICATION and BYPASSRLS roles are refused; none is changed', async () => {
    const outside = await scratchRole({ allowlisted: false });
    const replication = await scratchRole({ attributes: 'REPLICATION' });
    const bypass = await scratchRole({ attributes: 'BYPASSRLS' });
    const secret = await scratchSecret('another-password');
    const base = { namespace: ns, secret, key };

    for (const activity of ['describeRotatableRole', 'setRolePasswordFromSecret'] as const) {
      const notAllowed = await failureOf(h.run(activity, { ...base, role: outside.role }));
      expect(notAllowed).toMatchObject({ type: 'Refused', nonRetryable: true });
      expect(notAllowed.message).toMatch(new RegExp(`^role ${outside.role} is not in the rotation allowlist \\(allowlists.rotationRoles, env ALLOWED_ROTATION_ROLES: postgres, `));
      const replicationRefused = await failureOf(h.run(activity, { ...base, role: replication.role }));
      expect(replicationRefused).toMatchObject({ type: 'Refused', nonRetryable: true });
      expect(replicationRefused.message).toMatch(/has REPLICATION: runbooks never rotate a replication role's password/);
      const bypassRefused = await failureOf(h.run(activity, { ...base, role: bypass.role }));
      expect(bypassRefused).toMatchObject({ type: 'Refused', nonRetryable: true });
      expect(bypassRefused.message).toMatch(/has BYPASSRLS/);
    }
    for (const r of [outside, replication, bypass]) expect(await logsIn(r.role, r.password)).toBe(true);
  });
});
