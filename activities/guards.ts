import { forbiddenNamespaces, type AllowLists } from '../config/schema';
import { invalidInput, refused } from './errors';

/**
 * Defence in depth: every mutating activity checks the allowlists itself, whatever the
 * workflow already checked. A refusal is non-retryable and says what was asked and what is allowed.
 */
export function assertNamespaceAllowed(namespace: string, allowlists: Pick<AllowLists, 'namespaces'>): void {
  if (forbiddenNamespaces.includes(namespace)) throw refused(`namespace ${namespace} is never touched by runbooks`);
  if (!allowlists.namespaces.includes(namespace)) {
    throw refused(`namespace ${namespace} is not in the allowlist (${allowlists.namespaces.join(', ') || 'empty'})`);
  }
}

export function assertDatabaseAllowed(database: string, allowlists: Pick<AllowLists, 'databases'>): void {
  if (!allowlists.databases.includes(database)) {
    throw refused(`database ${database} is not in the allowlist (${allowlists.databases.join(', ') || 'empty'})`);
  }
}

/** Only patterns listed verbatim are allowed; `*` alone (everything) never. */
export function assertRedisPatternAllowed(pattern: string, allowlists: Pick<AllowLists, 'redisKeyPatterns'>): void {
  if (/^[*?]*$/.test(pattern)) throw refused(`Redis key pattern "${pattern}" would match every key`);
  if (!allowlists.redisKeyPatterns.includes(pattern)) {
    throw refused(`Redis key pattern "${pattern}" is not in the allowlist (${allowlists.redisKeyPatterns.join(', ') || 'empty'})`);
  }
}

export function assertS3PrefixAllowed(prefix: string, allowlists: Pick<AllowLists, 's3Prefixes'>): void {
  if (!allowlists.s3Prefixes.some((allowed) => prefix.startsWith(allowed))) {
    throw refused(`S3 prefix "${prefix}" is not under an allowlisted prefix (${allowlists.s3Prefixes.join(', ') || 'empty'})`);
  }
}

/** Backups are deleted only under the backup prefix, never where runbook reports and evidence live. */
export function assertBackupDeletionPrefix(prefix: string, where: { backupPrefix: string; evidencePrefix: string } & Pick<AllowLists, 's3Prefixes'>): void {
  if (prefix.startsWith(where.evidencePrefix) || where.evidencePrefix.startsWith(prefix)) {
    throw refused(`S3 prefix "${prefix}" holds runbook reports and evidence (${where.evidencePrefix}); backups are deleted only under ${where.backupPrefix}`);
  }
  if (!prefix.startsWith(where.backupPrefix)) throw refused(`S3 prefix "${prefix}" is not under the backup prefix ${where.backupPrefix}; backups are deleted only there`);
  assertS3PrefixAllowed(prefix, where);
}

const identifierPattern = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/** A SQL identifier from input: validated, then double-quoted. Never concatenate raw input into SQL. */
export function quoteIdentifier(name: string, what = 'identifier'): string {
  if (!identifierPattern.test(name)) throw invalidInput(`invalid ${what} "${name}": expected letters, digits and underscores, at most 63 characters`);
  return `"${name.replace(/"/g, '""')}"`;
}

const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kubernetes object names (RFC 1123 labels), checked before they reach an API path. */
export function assertKubernetesName(name: string, what: string): void {
  if (name.length > 253 || !name.split('.').every((part) => dns1123.test(part))) {
    throw invalidInput(`invalid ${what} "${name}": expected a Kubernetes name (lowercase letters, digits, '-', '.')`);
  }
}
