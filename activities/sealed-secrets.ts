import { constants, createCipheriv, publicEncrypt, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { failure, refused } from './errors';
import { dryRunParam, fieldManager, kcall, mergePatch, pollUntil, type KubeClients } from './kubernetes-common';

/**
 * 使用Sealed Secrets (github.com/bitnami-labs/sealed-secrets): a Secret owned by a SealedSecret is
 * rewritten by the controller from the SealedSecret's `spec.encryptedData` whenever either changes,
 * so a change goes into the SealedSecret, sealed with the controller's public certificate, and the
 * controller unseals it into the Secret. Values here are ciphertexts (public by design); nothing
 * returned from here holds one.
 */

export const sealedSecretsGroup = 'bitnami.com';
export const sealedSecretsVersion = 'v1alpha1';
export const sealedSecretsPlural = 'sealedsecrets';
const clusterWideAnnotation = 'sealedsecrets.bitnami.com/cluster-wide';
const namespaceWideAnnotation = 'sealedsecrets.bitnami.com/namespace-wide';

export interface SealedSecret {
  metadata?: { name?: string; namespace?: string; generation?: number; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: {
    encryptedData?: Record<string, string>;
    /** The legacy single-blob form (v1): not rotated here. */
    data?: string;
    template?: { metadata?: { annotations?: Record<string, string> }; immutable?: boolean; type?: string; data?: Record<string, string | null> };
  };
  status?: { observedGeneration?: number; conditions?: Array<{ type?: string; status?: string; message?: string }> };
}

/** The SealedSecret that owns this Secret (ownerReferences, as the controller sets them), if any. */
export function sealedOwnerOf(secret: V1Secret): string | undefined {
  return secret.metadata?.ownerReferences?.find((o) => o.kind === 'SealedSecret' && o.apiVersion.split('/')[0] === sealedSecretsGroup)?.name;
}

/**
 * The OAEP label a value of this SealedSecret is sealed under: the controller binds it to the
 * SealedSecret's namespace and name (strict, the default), to the namespace, or to nothing
 * (cluster-wide), by the SealedSecret's own annotations. Never to the data key: a ciphertext may
 * move from one key to another of the same SealedSecret.
 */
export function sealingLabel(namespace: string, name: string, annotations: Record<string, string> = {}): Buffer {
  if (annotations[clusterWideAnnotation] === 'true') return Buffer.alloc(0);
  if (annotations[namespaceWideAnnotation] === 'true') return Buffer.from(namespace, 'utf8');
  return Buffer.from(`${namespace}/${name}`, 'utf8');
}

/**
 * The hybrid scheme `kubeseal` uses: a random AES-256 session key sealed with RSA-OAEP (SHA-256,
 * the scope label), the value with AES-256-GCM under that key and a zero nonce (each key seals one
 * value); out: 2-byte big-endian length of the RSA part, the RSA part, the GCM ciphertext and tag; base64.
 */
export function seal(publicKey: KeyObject, plaintext: Buffer, label: Buffer): string {
  const sessionKey = randomBytes(32);
  const sealedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label }, sessionKey);
  const gcm = createCipheriv('aes-256-gcm', sessionKey, Buffer.alloc(12));
  const body = Buffer.concat([gcm.update(plaintext), gcm.final(), gcm.getAuthTag()]);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(sealedKey.length);
  return Buffer.concat([length, sealedKey, body]).toString('base64');
}

/**
 * The controller's certificate from `certUrl` (its /v1/cert.pem), checked: one X.509 certificate,
 * an RSA key of at least 2048 bits, valid now. Anything else is refused with a sentence.
 */
export async function fetchSealingKey(certUrl: string | undefined, now = new Date()): Promise<KeyObject> {
  if (!certUrl)
    throw refused(
      'the Secret is owned by a SealedSecret, but no Sealed Secrets controller certificate is configured (SEALED_SECRETS_CERT_URL, e.g. http://sealed-secrets-controller.kube-system:8080/v1/cert.pem)',
    );
  const where = `the Sealed Secrets controller certificate from ${certUrl}`;
  let pem: string;
  try {
    const response = await fetch(certUrl, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    pem = await response.text();
  } catch (err) {
    throw failure('Transient', `could not read ${where}: ${(err as Error).message}`);
  }
  if (pem.length > 64 * 1024 || (pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length !== 1) throw refused(`${where} is not one PEM certificate: nothing was sealed`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw refused(`${where} cannot be read as an X.509 certificate (${(err as Error).message}): nothing was sealed`);
  }
  const key = cert.publicKey;
  if (key.asymmetricKeyType !== 'rsa') throw refused(`${where} holds an ${(key.asymmetricKeyType ?? 'unknown').toUpperCase()} key, not RSA: it is not a sealing certificate, nothing was sealed`);
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw refused(`${where} holds an RSA key under 2048 bits: refused, nothing was sealed`);
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (!(from.getTime() <= now.getTime() && now.getTime() <= to.getTime()))
    throw refused(`${where} is not valid now (valid from ${from.toISOString()} to ${to.toISOString()}): refused, nothing was sealed`);
  return key;
}

export async function readSealedSecret(c: KubeClients, namespace: string, name: string): Promise<SealedSecret> {
  return (await kcall('get', `sealedsecrets/${name}`, namespace, () => c.custom.getNamespacedCustomObject(sealedSecretsGroup, sealedSecretsVersion, namespace, sealedSecretsPlural, name)))
    .body as SealedSecret;
}

/** A JSON merge patch of encryptedData and the template's annotations, guarded by the resourceVersion read. */
export async function patchSealedSecret(
  c: KubeClients,
  namespace: string,
  current: SealedSecret,
  patch: { encryptedData: Record<string, string | null>; annotations: Record<string, string | null> },
  dryRun = false,
): Promise<void> {
  const name = current.metadata!.name!;
  const body = { metadata: { resourceVersion: current.metadata?.resourceVersion }, spec: { encryptedData: patch.encryptedData, template: { metadata: { annotations: patch.annotations } } } };
  await kcall('patch', `sealedsecrets/${name}`, namespace, () =>
    c.custom.patchNamespacedCustomObject(sealedSecretsGroup, sealedSecretsVersion, namespace, sealedSecretsPlural, name, body, dryRunParam(dryRun), fieldManager, undefined, mergePatch),
  );
}

/** Keys and the given annotations of a SealedSecret and of its Secret, to compare. */
function shapeOf(keys: string[], annotations: Record<string, string>, watched: string[]): string {
  return JSON.stringify([[...keys].sort(), watched.map((a) => annotations[a] ?? null)]);
}

/**
 * Waits (bounded, heartbeating) until the controller has unsealed the SealedSecret as it is now:
 * its status says Synced for its current generation and the Secret holds the same keys and the
 * same `watched` annotations as its template. A Synced=False for the current generation (it could
 * not decrypt: not sealed with its key) fails at once; no unseal in time fails naming the controller.
 */
export async function waitUnsealed(
  c: KubeClients,
  namespace: string,
  name: string,
  watched: string[],
  timeoutSeconds: number,
  readSecret: () => Promise<V1Secret>,
): Promise<{ generation: number; waitedMs: number }> {
  const t0 = Date.now();
  let seen = 'not read yet';
  return pollUntil(
    `unseal of sealedsecrets/${name}`,
    { timeoutSeconds, pollIntervalMs: 250 },
    async () => {
      const ss = await readSealedSecret(c, namespace, name);
      const generation = ss.metadata?.generation ?? 0;
      const synced = ss.status?.conditions?.find((cond) => cond.type === 'Synced');
      const observed = ss.status?.observedGeneration ?? 0;
      seen = `status Synced=${synced?.status ?? 'none'} for generation ${observed} of ${generation}`;
      if (observed !== generation || !synced) return undefined;
      if (synced.status === 'False') {
        throw refused(
          `the Sealed Secrets controller could not unseal sealedsecrets/${name} in namespace ${namespace} (generation ${generation}): ${String(synced.message ?? '').slice(0, 300)}; a value not sealed with its key (the certificate from SEALED_SECRETS_CERT_URL is not the controller's?)`,
        );
      }
      if (synced.status !== 'True') return undefined;
      const secret = await readSecret();
      const templated = Object.entries(ss.spec?.template?.data ?? {}).flatMap(([k, v]) => (v === null ? [] : [k]));
      const want = shapeOf([...new Set([...Object.keys(ss.spec?.encryptedData ?? {}), ...templated])], ss.spec?.template?.metadata?.annotations ?? {}, watched);
      const have = shapeOf(Object.keys(secret.data ?? {}), secret.metadata?.annotations ?? {}, watched);
      return want === have ? { generation, waitedMs: Date.now() - t0 } : undefined;
    },
    () => ({ unsealing: name, seen }),
    () =>
      failure(
        'Transient',
        `the Sealed Secrets controller did not unseal sealedsecrets/${name} in namespace ${namespace} within ${timeoutSeconds}s (${seen}): is the controller running? secrets/${name} keeps what it held`,
      ),
  );
}
