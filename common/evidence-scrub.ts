import { redactUrlCredentials } from './failures';

/** What stands where a value was dropped, so a reader sees there was one. */
export const redacted = '[redacted]';

/** Holds the whole object as it was applied: every literal env value and ConfigMap value again. */
export const lastAppliedAnnotation = 'kubectl.kubernetes.io/last-applied-configuration';

/** ConfigMap keys whose values are credentials by name. */
const credentialKey = /pass(word|wd)?|pwd|secret|token|key|dsn|credential/i;
/** A URL that carries `user:password@`. */
const urlWithUserinfo = /[a-z][a-z0-9+.-]*:\/\/[^/@\s]+@/i;

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Annotations without last-applied-configuration (a copy). */
export function withoutLastApplied(annotations: Record<string, string> | undefined): Record<string, string> {
  const { [lastAppliedAnnotation]: _dropped, ...rest } = annotations ?? {};
  return rest;
}

/** A ConfigMap value that is a credential by its key or carries one in a URL; binaryData is read as text. */
function credentialValue(key: string, value: unknown, binary: boolean): boolean {
  if (credentialKey.test(key)) return true;
  if (typeof value !== 'string') return false;
  return urlWithUserinfo.test(binary ? Buffer.from(value, 'base64').toString('utf8') : value);
}

/**
 * A copy of Kubernetes objects (or anything holding them) fit for evidence: literal `env` values
 * dropped (names and `valueFrom` references kept), ConfigMap values that look like credentials
 * dropped, the last-applied-configuration annotation dropped, and `user:password@` in any URL
 * masked. Pure: the one scrub every evidence path uses.
 */
export function scrubForEvidence<T>(value: T): T {
  if (typeof value === 'string') return redactUrlCredentials(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => scrubForEvidence(v)) as T;
  if (!isRecord(value)) return value;
  const configMap = value.kind === 'ConfigMap';
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'annotations' && isRecord(v)) out[key] = scrubForEvidence(withoutLastApplied(v as Record<string, string>));
    else if (key === 'env' && Array.isArray(v)) out[key] = v.map((e: unknown) => (isRecord(e) && e.value !== undefined ? { ...scrubForEvidence(e), value: redacted } : scrubForEvidence(e)));
    else if (configMap && (key === 'data' || key === 'binaryData') && isRecord(v))
      out[key] = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, credentialValue(k, x, key === 'binaryData') ? redacted : scrubForEvidence(x)]));
    else out[key] = scrubForEvidence(v);
  }
  return out as T;
}
