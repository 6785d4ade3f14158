import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, PatchUtils, Watch, type KubeConfig } from '@kubernetes/client-node';
import { applyObjects } from '../../scripts/testbed/kubernetes-apply';
import { certificateSignedBy } from '../../scripts/testbed/kubernetes-pki';
import { certManagerNamespace, clusterIssuer, clusterIssuerCaSecret, clusterIssuerObject } from '../../scripts/testbed/kubernetes-seed';
import { waitUntil } from '../../scripts/testbed/processes';
import { statusOf } from './kube-cluster';

/**
 * The sandbox's real cert-manager (controller, ingress-shim and a CA ClusterIssuer) as tests drive
 * it: they never write a Certificate's status. They break its issuer, or put into a Secret what
 * production's clock would have put there (a certificate that ran out), and wait for what
 * cert-manager does about it.
 */

export interface CertificateObject {
  metadata: { name: string; uid: string; deletionTimestamp?: string; ownerReferences?: Array<{ kind: string; name: string }> };
  spec: { secretName: string; dnsNames?: string[]; duration?: string; renewBefore?: string; issuerRef: { name: string; kind?: string } };
  status?: {
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    notAfter?: string;
    lastFailureTime?: string;
    failedIssuanceAttempts?: number;
  };
}

const day = 86_400_000;
/** The issuer's CA certificate beside a key that is not its own: what a botched CA key rotation leaves. */
const wrongKeyCaSecret = `${clusterIssuerCaSecret}-wrong-key`;
/** A CA Secret that does not exist: the issuer is not Ready, and requests wait for it. */
const missingCaSecret = `${clusterIssuerCaSecret}-missing`;

export const isReady = (c: CertificateObject | undefined): boolean => c?.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') === true;
export const daysLeft = (c: CertificateObject | undefined): number | undefined => (c?.status?.notAfter ? (Date.parse(c.status.notAfter) - Date.now()) / day : undefined);

export function certManager(kc: KubeConfig) {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const api = (namespace: string) => ['cert-manager.io', 'v1', namespace, 'certificates'] as const;

  async function read(namespace: string, name: string): Promise<CertificateObject | undefined> {
    try {
      return (await custom.getNamespacedCustomObject(...api(namespace), name)).body as CertificateObject;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** For deletes of what may be gone already. */
  const goneAlready = (err: unknown) => {
    if (statusOf(err) !== 404) throw err;
  };

  async function secretPem(namespace: string, name: string): Promise<{ certificate: string; privateKey: string }> {
    const data = (await core.readNamespacedSecret(name, namespace)).body.data ?? {};
    const pem = (key: string) => Buffer.from(data[key] ?? '', 'base64').toString('utf8');
    return { certificate: pem('tls.crt'), privateKey: pem('tls.key') };
  }

  /** The ClusterIssuer signing from `secretName`, once cert-manager has looked at that spec. */
  async function pointIssuerAt(secretName: string, ready: boolean): Promise<void> {
    await applyObjects(kc, [clusterIssuerObject(secretName)]);
    await waitUntil(`ClusterIssuer ${clusterIssuer} on ${secretName}, Ready ${ready}`, async () => {
      const issuer = (await custom.getClusterCustomObject('cert-manager.io', 'v1', 'clusterissuers', clusterIssuer)).body as {
        metadata: { generation: number };
        status?: { conditions?: Array<{ type: string; status: string; observedGeneration?: number }> };
      };
      const condition = issuer.status?.conditions?.find((c) => c.type === 'Ready');
      return condition?.observedGeneration === issuer.metadata.generation && condition.status === (ready ? 'True' : 'False');
    });
  }

  /** Waits for cert-manager to have issued it: Ready, with more than `minDays` left (and another object than `notUid`). */
  async function issued(namespace: string, name: string, opts: { minDays?: number; notUid?: string; timeoutMs?: number } = {}): Promise<CertificateObject> {
    let found: CertificateObject | undefined;
    await waitUntil(
      `certificates.cert-manager.io/${name} issued${opts.minDays ? ` for more than ${opts.minDays} days` : ''}`,
      async () => {
        found = await read(namespace, name);
        return !!found && !found.metadata.deletionTimestamp && found.metadata.uid !== opts.notUid && isReady(found) && (daysLeft(found) ?? 0) > (opts.minDays ?? 0);
      },
      opts.timeoutMs ?? 60_000,
    );
    return found!;
  }

  /** The issuer's CA Secret with a key that is not the CA's: the issuer stays Ready, and every signing fails ("x509: provided PrivateKey doesn't match parent's PublicKey"). */
  async function breakIssuer(): Promise<void> {
    const { certificate } = await secretPem(certManagerNamespace, clusterIssuerCaSecret);
    const wrongKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const data = { 'tls.crt': Buffer.from(certificate).toString('base64'), 'tls.key': Buffer.from(wrongKey).toString('base64') };
    await core.deleteNamespacedSecret(wrongKeyCaSecret, certManagerNamespace).catch(goneAlready);
    await core.createNamespacedSecret(certManagerNamespace, { metadata: { name: wrongKeyCaSecret }, type: 'kubernetes.io/tls', data });
    await pointIssuerAt(wrongKeyCaSecret, true);
  }

  /** The issuer as seeded. */
  const repairIssuer = () => pointIssuerAt(clusterIssuerCaSecret, true);

  return {
    read,
    issued,
    breakIssuer,
    repairIssuer,

    /** The issuer pointed at a CA Secret that does not exist: not Ready, so new requests wait (no failure, no backoff) until `repairIssuer`. */
    async pauseIssuer(): Promise<void> {
      await pointIssuerAt(missingCaSecret, false);
    },

    /**
     * What the manual's 场景5 starts from: renewal failed and the certificate ran out. The Secret gets
     * a certificate (same key, same host, the issuer's CA) that expired `daysAgo` days ago; cert-manager
     * tries to renew it while the issuer is broken and fails; the issuer is repaired, but cert-manager
     * now backs off for an hour before trying again. So the Certificate stays Ready False, expired,
     * until someone deletes it.
     */
    async expire(namespace: string, name: string, daysAgo = 2): Promise<CertificateObject> {
      const before = await issued(namespace, name);
      await breakIssuer();
      try {
        const ca = await secretPem(certManagerNamespace, clusterIssuerCaSecret);
        const { privateKey } = await secretPem(namespace, before.spec.secretName);
        const notAfter = new Date(Date.now() - daysAgo * day);
        const expired = certificateSignedBy(ca, { privateKey, host: before.spec.dnsNames![0]!, notBefore: new Date(notAfter.getTime() - 90 * day), notAfter });
        const writtenAt = Date.now() - 1000;
        await core.patchNamespacedSecret(before.spec.secretName, namespace, { data: { 'tls.crt': Buffer.from(expired).toString('base64') } }, undefined, undefined, undefined, undefined, undefined, {
          headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH },
        });
        const expiresAt = Date.parse(new X509Certificate(expired).validTo);
        await waitUntil(`cert-manager failed to renew the expired ${name}`, async () => {
          const now = await read(namespace, name);
          const lastFailure = now?.status?.lastFailureTime ? Date.parse(now.status.lastFailureTime) : 0;
          return now?.status?.notAfter !== undefined && Date.parse(now.status.notAfter) === expiresAt && lastFailure >= writtenAt && !isReady(now);
        });
      } finally {
        await repairIssuer();
      }
      return (await read(namespace, name))!;
    },

    /**
     * A new certificate, as after a successful re-issue: deleted, made again (ingress-shim, or
     * `recreate`), and issued. With `dropSecret` its Secret goes too, so the issuer signs a new one
     * even where the old one would still do (cert-manager renews at 2/3 of a certificate's lifetime
     * when renewBefore is longer than it, so a 3-day certificate stays under a 90-day spec).
     */
    async renew(namespace: string, name: string, opts: { recreate?: () => Promise<void>; dropSecret?: boolean; minDays?: number } = {}): Promise<CertificateObject> {
      const old = await read(namespace, name);
      if (old && opts.dropSecret) await core.deleteNamespacedSecret(old.spec.secretName, namespace).catch(goneAlready);
      if (old) await custom.deleteNamespacedCustomObject(...api(namespace), name).catch(goneAlready);
      await opts.recreate?.();
      return issued(namespace, name, { minDays: opts.minDays ?? 1, ...(old ? { notUid: old.metadata.uid } : {}) });
    },

    /** Counts the Certificate objects of that name created from now on (a real watch, so none is missed). */
    async watchCreations(namespace: string, name: string): Promise<{ created: () => number; stop: () => void }> {
      const list = (await custom.listNamespacedCustomObject(...api(namespace))).body as { metadata?: { resourceVersion?: string } };
      const uids = new Set<string>();
      let ended: unknown;
      let stopping = false;
      const request = (await new Watch(kc).watch(
        `/apis/cert-manager.io/v1/namespaces/${namespace}/certificates`,
        { fieldSelector: `metadata.name=${name}`, resourceVersion: list.metadata?.resourceVersion },
        (phase: string, c: CertificateObject) => {
          if (phase === 'ADDED') uids.add(c.metadata.uid);
        },
        (err: unknown) => {
          if (!stopping) ended = err ?? new Error('the watch ended early');
        },
      )) as { abort: () => void };
      return {
        created: () => uids.size,
        stop: () => {
          stopping = true;
          request.abort();
          if (ended) throw new Error(`certificate watch ended early: ${String(ended)}`);
        },
      };
    },
  };
}
