import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Client, type Pool } from 'pg';
import { classifyError, failure, invalidInput, refused } from './errors';
import { assertDatabaseAllowed, quoteIdentifier } from './guards';
import { dryRunParam, fieldManager, guarded, kcall, mergePatch, type KubeClients, type KubeScope } from './kubernetes-common';
import { nextVersionAnnotation, previousKeyOf, stagedKeyOf, versionAnnotation } from '../common/inputs/rotate-database-password';
import { databaseName, requirePool, withClient } from './postgres-common';
import { fetchSealingKey, patchSealedSecret, readSealedSecret, seal, sealedOwnerOf, sealingLabel, waitUnsealed, type SealedSecret } from './sealed-secrets';

/**
 * 定期轮换密钥 without the password ever leaving the worker's memory except into the Kubernetes
 * Secret and (as a SCRAM verifier) into PostgreSQL: it is generated here, kept in the Secret as a
 * staged key, and read back from there by the activity that needs it. Inputs, results, heartbeats
 * and errors carry key names and versions only, so nothing secret reaches the workflow history.
 */

export interface PasswordRotationDeps {
  kube?: KubeConfig;
  allowedNamespaces: string[];
  /** The worker's own (privileged) connection: role checks and ALTER ROLE. */
  pool?: Pool;
  /** Host, port and TLS settings for logging in as the rotated role. */
  databaseUrl?: string;
  allowedDatabases: string[];
  /** The login roles a rotation may change (configuration allowlists.rotationRoles); any other is refused before a query. */
  allowedRoles: string[];
  /** 使用Sealed Secrets: the controller's certificate URL and the bound on each unseal wait. */
  sealedSecrets?: { certUrl?: string; unsealTimeoutSeconds: number };
}

export { nextVersionAnnotation, versionAnnotation };

/** Room for the _PREVIOUS suffix within the 253 characters Kubernetes allows for a data key. */
const secretKeyPattern = /^[-._a-zA-Z0-9]{1,240}$/;
/** Decided by the workflow (e.g. workflow id and start time); stored as an annotation value. */
const versionPattern = /^[A-Za-z0-9._:/@+-]{1,256}$/;
const rolePattern = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
/** The form PostgreSQL stores (and accepts pre-hashed in ALTER ROLE ... PASSWORD): nothing that could end the literal. */
const verifierPattern = /^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/;

const pbkdf2Async = promisify(pbkdf2);

/**
 * The narrow route deploy/postgres/runbook-worker.sql installs: a SECURITY DEFINER function that sets
 * the password of members of runbook_rotatable only. Without it the worker needs CREATEROLE (or is a
 * superuser) and runs ALTER ROLE itself.
 */
export const setPasswordFunction = 'runbook.set_role_password(name,text)';

/**
 * The SCRAM-SHA-256 verifier PostgreSQL keeps in pg_authid.rolpassword (RFC 5802/7677):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64. Computed here so that
 * ALTER ROLE sends the verifier, never the password (statement logs and pg_stat_statements
 * then hold no password). PostgreSQL leaves a pure-ASCII password unchanged by SASLprep, which
 * is why non-ASCII passwords are refused rather than hashed differently from the server.
 */
export async function scramSha256Verifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): Promise<string> {
  const salted = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Every form a secret could take in an error text (raw, base64 as in Secret data, URL-encoded) replaced. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, Buffer.from(secret, 'utf8').toString('base64'), encodeURIComponent(secret)])) out = out.split(form).join('[redacted]');
  }
  return out;
}

/**
 * Runs an activity body so that whatever it throws leaves as a fresh ApplicationFailure (no cause,
 * no stack of the original) whose message has every secret of `secrets` redacted. `secrets` is
 * filled while the body runs, as values are read or made.
 */
export async function redacting<T>(secrets: string[], action: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof CancelledFailure) throw err;
    const classified = classifyError(err, { action, system: 'PostgreSQL' });
    if (classified instanceof CancelledFailure) throw classified;
    throw ApplicationFailure.create({ type: classified.type ?? 'Unclassified', message: redact(classified.message, secrets), nonRetryable: classified.nonRetryable === true });
  }
}

function secretKeyName(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || !secretKeyPattern.test(key)) throw invalidInput(`invalid ${what}: expected 1-240 letters, digits, "-", "_" or "."`);
  return key;
}

function roleName(role: unknown): string {
  if (typeof role !== 'string' || !rolePattern.test(role))
    throw invalidInput(`invalid role ${JSON.stringify(String(role).slice(0, 80))}: expected a PostgreSQL role name (letters, digits, _ and $, at most 63 characters)`);
  if (role.toLowerCase().startsWith('pg_')) throw refused(`role ${role}: pg_* roles are reserved by PostgreSQL and never rotated`);
  return role;
}

function versionOf(version: unknown): string {
  if (typeof version !== 'string' || !versionPattern.test(version))
    throw invalidInput('version must be 1-256 characters of letters, digits and ._:/@+- (decided by the workflow, e.g. its id and start time)');
  return version;
}

const decode = (data: string | undefined) => (data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8'));

/** The password values a patch of these keys carries: redacted from any error it causes. */
function valuesOf(s: V1Secret, key: string): string[] {
  return [key, stagedKeyOf(key), previousKeyOf(key)].flatMap((k) => decode(s.data?.[k]) ?? []);
}

export interface PasswordSecretState {
  secret: string;
  /** Every data key of the Secret (names only). */
  keys: string[];
  hasKey: boolean;
  hasNext: boolean;
  hasPrevious: boolean;
  /** The run that staged `<key>_NEXT`, from the annotation. */
  nextVersion?: string;
  /** The run whose staged value was last promoted into `<key>`. */
  version?: string;
  immutable: boolean;
  /** The SealedSecret that owns the Secret (使用Sealed Secrets): the state above is its, and it is what a rotation changes. */
  sealedSecret?: string;
}

export interface RoleInfo {
  role: string;
  /** Sessions of the role now: they stay connected through a password change. */
  sessions: number;
  connectionLimit: number;
  validUntil?: string;
}

export interface SetRolePasswordResult {
  role: string;
  /** The Secret key the password was read from. */
  sourceKey: string;
  /** True when the role already logged in with that password (nothing to do). */
  alreadyCurrent: boolean;
  changed: boolean;
  dryRun: boolean;
  message: string;
}

export interface SecretKeyChange {
  secret: string;
  changed: boolean;
  dryRun: boolean;
  version?: string;
  message: string;
}

export function createPasswordRotationActivities(deps: PasswordRotationDeps) {
  const scope: KubeScope = { kube: deps.kube, allowedNamespaces: deps.allowedNamespaces };

  function secretScope(input: { namespace: string; secret: string }): KubeClients {
    return guarded(scope, input?.namespace, { secret: input?.secret });
  }

  async function readSecret(c: KubeClients, namespace: string, secret: string): Promise<V1Secret> {
    return (await kcall('get', `secrets/${secret}`, namespace, () => c.core.readNamespacedSecret(secret, namespace))).body;
  }

  function stateOf(secret: string, s: V1Secret, key: string): PasswordSecretState {
    return shapeState(secret, s.data ?? {}, s.metadata?.annotations ?? {}, s.immutable === true, key);
  }

  /** A SealedSecret's encryptedData and template stand for the Secret it unseals into. */
  function sealedStateOf(secret: string, ss: SealedSecret, key: string): PasswordSecretState {
    const spec = ss.spec ?? {};
    return { ...shapeState(secret, spec.encryptedData ?? {}, spec.template?.metadata?.annotations ?? {}, spec.template?.immutable === true, key), sealedSecret: ss.metadata?.name ?? secret };
  }

  function shapeState(secret: string, data: Record<string, string>, annotations: Record<string, string>, immutable: boolean, key: string): PasswordSecretState {
    return {
      secret,
      keys: Object.keys(data).sort(),
      hasKey: data[key] !== undefined,
      hasNext: data[stagedKeyOf(key)] !== undefined,
      hasPrevious: data[previousKeyOf(key)] !== undefined,
      ...(annotations[nextVersionAnnotation] ? { nextVersion: annotations[nextVersionAnnotation] } : {}),
      ...(annotations[versionAnnotation] ? { version: annotations[versionAnnotation] } : {}),
      immutable,
    };
  }

  /** The Secret and, when a SealedSecret owns it, that SealedSecret (a legacy single-blob one is refused). */
  async function readSource(c: KubeClients, namespace: string, secret: string): Promise<{ current: V1Secret; sealed?: SealedSecret }> {
    const current = await readSecret(c, namespace, secret);
    const owner = sealedOwnerOf(current);
    if (owner === undefined) return { current };
    if (owner !== secret) throw refused(`secrets/${secret} in namespace ${namespace} is owned by SealedSecret ${owner} of another name: not rotated here`);
    const sealed = await readSealedSecret(c, namespace, owner);
    if (sealed.spec?.data) throw refused(`sealedsecrets/${owner} in namespace ${namespace} uses the legacy single-blob form (spec.data): reseal it with kubeseal first`);
    return { current, sealed };
  }

  /**
   * Where a change of the password keys goes: the Secret (a merge patch), or, when a SealedSecret
   * owns it, the SealedSecret's encryptedData and template annotations, after which the controller's
   * unseal is waited for. `data` holds the values to move between keys: the Secret's base64 values,
   * or the SealedSecret's ciphertexts (moved as they are, never decrypted: the scope label binds a
   * ciphertext to the SealedSecret, not to its key).
   */
  async function keySource(c: KubeClients, namespace: string, secret: string, key: string) {
    const { current, sealed } = await readSource(c, namespace, secret);
    const data = (sealed ? sealed.spec?.encryptedData : current.data) ?? {};
    return {
      state: sealed ? sealedStateOf(secret, sealed, key) : stateOf(secret, current, key),
      data,
      /** Plain values to redact from errors (none for a SealedSecret: it holds ciphertexts only). */
      values: sealed ? [] : valuesOf(current, key),
      where: sealed ? `sealedsecrets/${secret}` : `secrets/${secret}`,
      async write(patch: { data: Record<string, string | null>; annotations: Record<string, string | null> }, dryRun: boolean): Promise<string> {
        if (!sealed) {
          await patchSecret(c, namespace, secret, current, patch, dryRun);
          return '';
        }
        if (sealed.spec?.template?.immutable) throw refused(`sealedsecrets/${secret} in namespace ${namespace} unseals into an immutable Secret`);
        await patchSealedSecret(c, namespace, sealed, { encryptedData: patch.data, annotations: patch.annotations }, dryRun);
        return dryRun ? '' : `; the controller unsealed it into secrets/${secret} in ${(await unsealed(c, namespace, secret)).waitedMs} ms`;
      },
      /** A no-op on a SealedSecret still waits until the Secret shows it (a retry after the patch, before the unseal). */
      async settled(dryRun: boolean): Promise<void> {
        if (sealed && !dryRun) await unsealed(c, namespace, secret);
      },
    };
  }

  /** Waits until the controller unsealed the SealedSecret into the Secret (the password keys and version annotations match). */
  function unsealed(c: KubeClients, namespace: string, secret: string) {
    return waitUnsealed(c, namespace, secret, [nextVersionAnnotation, versionAnnotation], deps.sealedSecrets?.unsealTimeoutSeconds ?? 40, () => readSecret(c, namespace, secret));
  }

  /** A JSON merge patch guarded by the resourceVersion read: a concurrent writer makes it a (retried) Conflict. */
  async function patchSecret(
    c: KubeClients,
    namespace: string,
    secret: string,
    current: V1Secret,
    patch: { data?: Record<string, string | null>; annotations?: Record<string, string | null> },
    dryRun: boolean | undefined,
  ): Promise<void> {
    if (current.immutable) throw refused(`secrets/${secret} in namespace ${namespace} is immutable`);
    const body = { metadata: { resourceVersion: current.metadata?.resourceVersion, ...(patch.annotations ? { annotations: patch.annotations } : {}) }, ...(patch.data ? { data: patch.data } : {}) };
    await kcall('patch', `secrets/${secret}`, namespace, () => c.core.patchNamespacedSecret(secret, namespace, body, undefined, dryRunParam(dryRun), fieldManager, undefined, undefined, mergePatch));
  }

  /** Refuses what must never be rotated here; the reason is in the message. Outside the allowlist: refused before any query. */
  async function checkRole(db: Pool, role: string): Promise<RoleInfo> {
    if (!deps.allowedRoles.includes(role))
      throw refused(`role ${role} is not in the rotation allowlist (allowlists.rotationRoles, env ALLOWED_ROTATION_ROLES: ${deps.allowedRoles.join(', ') || 'empty'})`);
    return withClient(db, `read role ${role}`, async (client) => {
      const { rows } = await client.query<{
        rolsuper: boolean;
        rolreplication: boolean;
        rolbypassrls: boolean;
        rolcanlogin: boolean;
        valid_until: string | null;
        expired: boolean;
        rolconnlimit: number;
        own: boolean;
        sessions: string;
      }>(
        `SELECT r.rolsuper, r.rolreplication, r.rolbypassrls, r.rolcanlogin, to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS valid_until,
                coalesce(r.rolvaliduntil < now(), false) AS expired, r.rolconnlimit,
                r.rolname IN (current_user, session_user) AS own,
                (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) AS sessions
           FROM pg_roles r WHERE r.rolname = $1`,
        [role],
      );
      const row = rows[0];
      if (!row) throw failure('NotFound', `role ${role} does not exist`);
      if (row.rolsuper) throw refused(`role ${role} is a superuser: runbooks never rotate a superuser's password (do it by hand, with a second session open)`);
      // Such a role reads or copies every row whatever the policies: its password is rotated by hand, with a person watching.
      if (row.rolreplication) throw refused(`role ${role} has REPLICATION: runbooks never rotate a replication role's password (standbys and slots log in with it)`);
      if (row.rolbypassrls) throw refused(`role ${role} has BYPASSRLS: runbooks never rotate the password of a role that bypasses row-level security`);
      if (row.own) throw refused(`role ${role} is the role the worker connects as: rotating it would lock the worker out`);
      if (!row.rolcanlogin) throw refused(`role ${role} cannot log in (NOLOGIN): it has no login password to rotate`);
      if (row.expired) throw refused(`role ${role} expired at ${row.valid_until} (VALID UNTIL): no password would let it log in; renew it by hand`);
      return { role, sessions: Number(row.sessions), connectionLimit: row.rolconnlimit, ...(row.valid_until ? { validUntil: row.valid_until } : {}) };
    });
  }

  /** The database the role logs in to: the given one (allowlisted), else the one of the worker's URL. */
  function loginDatabase(database: unknown): string {
    if (!deps.databaseUrl) throw refused('PostgreSQL is not configured (no DATABASE_URL)');
    const name = database === undefined ? decodeURIComponent(new URL(deps.databaseUrl).pathname.slice(1)) : databaseName(database);
    assertDatabaseAllowed(name, { databases: deps.allowedDatabases });
    return name;
  }

  /**
   * Logs in as the role with the password on a fresh connection (host, port and TLS from the
   * worker's URL). A wrong password (28P01) is false; anything else (server down, pg_hba) is thrown.
   */
  async function canLogIn(role: string, password: string, database: string): Promise<boolean> {
    const url = new URL(deps.databaseUrl!);
    url.username = encodeURIComponent(role);
    url.password = encodeURIComponent(password);
    url.pathname = `/${encodeURIComponent(database)}`;
    const client = new Client({ connectionString: url.toString(), connectionTimeoutMillis: 5000, application_name: 'runbook-password-check' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code === '28P01') return false;
      throw classifyError(err, { action: `log in as role ${role} to database ${database}`, system: 'PostgreSQL' });
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async function readPassword(c: KubeClients, namespace: string, secret: string, key: string): Promise<string> {
    const s = await readSecret(c, namespace, secret);
    const value = decode(s.data?.[key]);
    if (value === undefined) throw failure('NotFound', `secrets/${secret} in namespace ${namespace} has no key ${key}`);
    if (value === '') throw invalidInput(`key ${key} of secrets/${secret} is empty`);
    // eslint-disable-next-line no-control-regex -- the whole ASCII range, NUL included, is what SCRAM here handles
    if (!/^[\x00-\x7f]*$/.test(value))
      throw invalidInput(`key ${key} of secrets/${secret} holds non-ASCII characters: PostgreSQL would SASLprep them, which this worker does not replicate; set that password by hand`);
    return value;
  }

  return {
    /** Names, keys and annotation versions of the password Secret; never a value. */
    async describePasswordSecret(input: { namespace: string; secret: string; key: string }): Promise<PasswordSecretState> {
      const c = secretScope(input);
      const key = secretKeyName(input.key);
      const { current, sealed } = await readSource(c, input.namespace, input.secret);
      return sealed ? sealedStateOf(input.secret, sealed, key) : stateOf(input.secret, current, key);
    },

    /** The role's sessions and validity; refuses (non-retryable) a role that must not be rotated: missing, superuser, the worker's own, NOLOGIN, expired, pg_*. */
    async describeRotatableRole(input: { role: string }): Promise<RoleInfo> {
      const role = roleName(input?.role);
      return checkRole(requirePool(deps.pool), role);
    },

    /**
     * Generates a new password (32 random bytes, base64url) and stores it as `<key>_NEXT` with the
     * annotation runbooks.example/password-next-version: <version>. Already staged for this version:
     * nothing changes, so a retry keeps the value. Returns no value, only whether it changed.
     */
    async stageSecretPassword(input: {
      namespace: string;
      secret: string;
      key: string;
      version: string;
      dryRun?: boolean;
    }): Promise<SecretKeyChange & { replacedVersion?: string; sealedSecret?: string }> {
      const secrets: string[] = [];
      const { namespace, secret } = input ?? {};
      return redacting(secrets, `stage a new password in secrets/${secret}`, async () => {
        const c = secretScope(input);
        const key = secretKeyName(input.key);
        const version = versionOf(input.version);
        const { current, sealed } = await readSource(c, namespace, secret);
        const state = sealed ? sealedStateOf(secret, sealed, key) : stateOf(secret, current, key);
        const dryRun = input.dryRun === true;
        const replaced = state.hasNext ? ` (replacing a value staged for ${state.nextVersion ?? 'an unknown version'})` : '';
        const result = (message: string): SecretKeyChange & { replacedVersion?: string; sealedSecret?: string } => ({
          secret,
          changed: true,
          dryRun,
          version,
          ...(state.hasNext ? { replacedVersion: state.nextVersion ?? 'unknown' } : {}),
          ...(sealed ? { sealedSecret: secret } : {}),
          message,
        });
        if (!state.hasKey) throw failure('NotFound', `secrets/${secret} in namespace ${namespace} has no key ${key}: there is no current password to rotate (or to restore)`);
        if (state.hasNext && state.nextVersion === version) {
          // A retry after the SealedSecret was changed: nothing new is sealed, the unseal is waited for again.
          if (sealed && !dryRun) await unsealed(c, namespace, secret);
          return { secret, changed: false, dryRun, version, ...(sealed ? { sealedSecret: secret } : {}), message: `no change: ${stagedKeyOf(key)} already staged for this version` };
        }
        if (sealed) {
          if (state.immutable) throw refused(`sealedsecrets/${secret} in namespace ${namespace} unseals into an immutable Secret: it cannot be rotated in place`);
          // Checked in the plan's dry run too, so a bad certificate is refused before anyone approves.
          const publicKey = await fetchSealingKey(deps.sealedSecrets?.certUrl);
          if (dryRun) return result(`would seal a new password with the Sealed Secrets controller's certificate into ${stagedKeyOf(key)} of sealedsecrets/${secret}${replaced}`);
          const value = randomBytes(32).toString('base64url');
          secrets.push(value);
          const ciphertext = seal(publicKey, Buffer.from(value, 'utf8'), sealingLabel(namespace, secret, sealed.metadata?.annotations));
          await patchSealedSecret(c, namespace, sealed, { encryptedData: { [stagedKeyOf(key)]: ciphertext }, annotations: { [nextVersionAnnotation]: version } });
          const { waitedMs } = await unsealed(c, namespace, secret);
          return result(`sealed a new password into ${stagedKeyOf(key)} of sealedsecrets/${secret}${replaced}; the controller unsealed it into secrets/${secret} in ${waitedMs} ms`);
        }
        const value = randomBytes(32).toString('base64url');
        secrets.push(value);
        await patchSecret(
          c,
          namespace,
          secret,
          current,
          { data: { [stagedKeyOf(key)]: Buffer.from(value, 'utf8').toString('base64') }, annotations: { [nextVersionAnnotation]: version } },
          input.dryRun,
        );
        return result(`${dryRun ? 'would stage' : 'staged'} a new password as ${stagedKeyOf(key)} of secrets/${secret}${replaced}`);
      });
    },

    /**
     * ALTER ROLE <role> PASSWORD '<SCRAM-SHA-256 verifier>' with the password read from the Secret's
     * key (so it never is an activity input). Already logs in with it: no change. After the change a
     * fresh login as the role must work, else it fails. Errors never hold the password or verifier.
     */
    async setRolePasswordFromSecret(input: { role: string; namespace: string; secret: string; key: string; database?: string; dryRun?: boolean }): Promise<SetRolePasswordResult> {
      const secrets: string[] = [];
      const { namespace, secret } = input ?? {};
      return redacting(secrets, `set the password of role ${String(input?.role).slice(0, 80)} from secrets/${secret}`, async () => {
        const role = roleName(input.role);
        const key = secretKeyName(input.key);
        const c = secretScope(input);
        const database = loginDatabase(input.database);
        const db = requirePool(deps.pool);
        const dryRun = input.dryRun === true;
        await checkRole(db, role);
        const password = await readPassword(c, namespace, secret, key);
        secrets.push(password);
        const base = { role, sourceKey: key, dryRun };
        if (await canLogIn(role, password, database)) return { ...base, alreadyCurrent: true, changed: false, message: `no change: role ${role} already logs in with ${key}` };
        if (dryRun) return { ...base, alreadyCurrent: false, changed: true, message: `would set the password of role ${role} to ${key} of secrets/${secret}` };
        const verifier = await scramSha256Verifier(password);
        secrets.push(verifier, ...verifier.split(/[$:]/).filter((part) => part.length >= 16));
        if (!verifierPattern.test(verifier)) throw failure('Refused', 'computed verifier has an unexpected form');
        await withClient(db, `ALTER ROLE ${role}`, async (client) => {
          const narrow = await client.query<{ ok: boolean }>(`SELECT coalesce(has_function_privilege(to_regprocedure($1), 'EXECUTE'), false) AS ok`, [setPasswordFunction]);
          if (narrow.rows[0]?.ok) await client.query('SELECT runbook.set_role_password($1, $2)', [role, verifier]);
          // Utility statements take no parameters; the verifier holds only base64, digits, '$' and ':'.
          else await client.query(`ALTER ROLE ${quoteIdentifier(role, 'role')} PASSWORD '${verifier}'`);
        });
        if (!(await canLogIn(role, password, database))) {
          throw failure('PasswordVerificationFailed', `role ${role} cannot log in to ${database} with ${key} after ALTER ROLE (check VALID UNTIL and pg_hba.conf)`);
        }
        return { ...base, alreadyCurrent: false, changed: true, message: `set the password of role ${role} to ${key} of secrets/${secret} (SCRAM-SHA-256 verifier); a fresh login works` };
      });
    },

    /**
     * `<key>` <- `<key>_NEXT`, `<key>_PREVIOUS` <- the old `<key>`, `<key>_NEXT` dropped, and the
     * promoted version recorded. Nothing staged but this version already promoted: no change.
     */
    async promoteStagedSecretKey(input: { namespace: string; secret: string; key: string; version?: string; dryRun?: boolean }): Promise<SecretKeyChange> {
      const { namespace, secret } = input ?? {};
      const secrets: string[] = [];
      return redacting(secrets, `promote the staged password of secrets/${secret}`, async () => {
        const c = secretScope(input);
        const key = secretKeyName(input.key);
        const version = input.version === undefined ? undefined : versionOf(input.version);
        const source = await keySource(c, namespace, secret, key);
        secrets.push(...source.values);
        const { state, data, where } = source;
        const dryRun = input.dryRun === true;
        if (!state.hasNext) {
          if (version === undefined) return { secret, changed: false, dryRun, message: `no change: nothing staged in ${stagedKeyOf(key)}` };
          if (state.version === version) {
            await source.settled(dryRun);
            return { secret, changed: false, dryRun, version, message: `no change: version already promoted into ${key}` };
          }
          throw failure('NotFound', `${where} in namespace ${namespace} has no staged ${stagedKeyOf(key)} to promote`);
        }
        if (version !== undefined && state.nextVersion !== version) throw refused(`${where}: ${stagedKeyOf(key)} was staged for ${state.nextVersion ?? 'an unknown version'}, not for ${version}`);
        const unsealedText = await source.write(
          {
            data: { [key]: data[stagedKeyOf(key)]!, [previousKeyOf(key)]: data[key] ?? null, [stagedKeyOf(key)]: null },
            annotations: { [nextVersionAnnotation]: null, [versionAnnotation]: state.nextVersion ?? version ?? null },
          },
          dryRun,
        );
        return {
          secret,
          changed: true,
          dryRun,
          ...(state.nextVersion ? { version: state.nextVersion } : {}),
          message: `${dryRun ? 'would promote' : 'promoted'} ${stagedKeyOf(key)} into ${key} of ${where}, the old value kept as ${previousKeyOf(key)}${unsealedText}`,
        };
      });
    },

    /**
     * Puts the Secret (or its SealedSecret) back as it was before this version's rotation: promoted
     * by this version: `<key>` <- `<key>_PREVIOUS`; staged by it: the staged key dropped. Otherwise
     * no change. On a SealedSecret the previous ciphertext goes back exactly as it was.
     */
    async revertSecretRotation(input: { namespace: string; secret: string; key: string; version: string; dryRun?: boolean }): Promise<SecretKeyChange> {
      const { namespace, secret } = input ?? {};
      const secrets: string[] = [];
      return redacting(secrets, `revert the password rotation of secrets/${secret}`, async () => {
        const c = secretScope(input);
        const key = secretKeyName(input.key);
        const version = versionOf(input.version);
        const source = await keySource(c, namespace, secret, key);
        secrets.push(...source.values);
        const { state, data, where } = source;
        const dryRun = input.dryRun === true;
        if (state.version === version) {
          // Promotion removed this version's staged key, so only <key> and <key>_PREVIOUS are involved.
          const previous = data[previousKeyOf(key)];
          if (previous === undefined) throw failure('NotFound', `${where} in namespace ${namespace} has no ${previousKeyOf(key)} to restore ${key} from`);
          const unsealedText = await source.write({ data: { [key]: previous, [previousKeyOf(key)]: null }, annotations: { [versionAnnotation]: null } }, dryRun);
          return { secret, changed: true, dryRun, version, message: `${dryRun ? 'would restore' : 'restored'} ${key} of ${where} from ${previousKeyOf(key)}${unsealedText}` };
        }
        if (state.hasNext && state.nextVersion === version) {
          const unsealedText = await source.write({ data: { [stagedKeyOf(key)]: null }, annotations: { [nextVersionAnnotation]: null } }, dryRun);
          return { secret, changed: true, dryRun, version, message: `${dryRun ? 'would drop' : 'dropped'} the staged ${stagedKeyOf(key)} of ${where}; ${key} was never changed${unsealedText}` };
        }
        await source.settled(dryRun);
        return { secret, changed: false, dryRun, version, message: `no change: ${where} holds nothing of this version` };
      });
    },
  };
}
