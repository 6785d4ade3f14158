import { failure } from './errors';
import { dryRunParam, guarded, kcall, pollUntil, readOptional, type KubeScope, type PollOptions } from './kubernetes-common';

const group = 'cert-manager.io';
const version = 'v1';
const plural = 'certificates';

interface CertificateObject {
  metadata?: { name?: string; uid?: string; deletionTimestamp?: string };
  spec?: { secretName?: string; dnsNames?: string[]; issuerRef?: { name?: string; kind?: string } };
  status?: {
    conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string; observedGeneration?: number }>;
    notAfter?: string;
    notBefore?: string;
    renewalTime?: string;
  };
}

export interface CertificateSummary {
  name: string;
  /** This object's uid: a Certificate made again under the same name (ingress-shim) has another. */
  uid?: string;
  ready: boolean;
  readyReason?: string;
  readyMessage?: string;
  secretName?: string;
  dnsNames: string[];
  issuer?: string;
  notAfter?: string;
  notBefore?: string;
  renewalTime?: string;
  /** Whole days until notAfter (negative once expired). */
  daysUntilExpiry?: number;
}

function summarise(c: CertificateObject): CertificateSummary {
  const ready = c.status?.conditions?.find((x) => x.type === 'Ready');
  const s: CertificateSummary = { name: c.metadata?.name ?? '', ready: ready?.status === 'True', dnsNames: c.spec?.dnsNames ?? [] };
  if (c.metadata?.uid) s.uid = c.metadata.uid;
  if (ready?.reason) s.readyReason = ready.reason;
  if (ready?.message) s.readyMessage = ready.message.slice(0, 500);
  if (c.spec?.secretName) s.secretName = c.spec.secretName;
  if (c.spec?.issuerRef?.name) s.issuer = `${c.spec.issuerRef.kind ?? 'Issuer'}/${c.spec.issuerRef.name}`;
  if (c.status?.notAfter) {
    s.notAfter = c.status.notAfter;
    s.daysUntilExpiry = Math.floor((new Date(c.status.notAfter).getTime() - Date.now()) / 86_400_000);
  }
  if (c.status?.notBefore) s.notBefore = c.status.notBefore;
  if (c.status?.renewalTime) s.renewalTime = c.status.renewalTime;
  return s;
}

export interface DeleteCertificateResult {
  changed: boolean;
  dryRun: boolean;
  /** The certificate as it was; absent when it did not exist. */
  before?: CertificateSummary;
  message: string;
}

export function createKubernetesCertificateActivities(scope: KubeScope) {
  async function read(namespace: string, name: string): Promise<CertificateObject> {
    const { custom } = guarded(scope, namespace, { name });
    const { body } = await kcall('get', `certificates.cert-manager.io/${name}`, namespace, () => custom.getNamespacedCustomObject(group, version, namespace, plural, name));
    return body as CertificateObject;
  }

  return {
    /** A cert-manager Certificate: Ready, validity, secret, DNS names. */
    async getCertificate(input: { namespace: string; name: string }): Promise<CertificateSummary> {
      return summarise(await read(input.namespace, input.name));
    },

    /**
     * Deletes a Certificate (cert-manager re-issues it when an Ingress still asks for it); absent
     * already: no change. Given `uid`, only that object: ingress-shim makes the Certificate again
     * within a second of its deletion, and a retried delete (a worker lost after the first one)
     * must not delete the new one too. The API checks the uid (a precondition), so no race.
     */
    async deleteCertificate(input: { namespace: string; name: string; uid?: string; dryRun?: boolean }): Promise<DeleteCertificateResult> {
      const { namespace, name, uid, dryRun } = input;
      const { custom } = guarded(scope, namespace, { name });
      const what = `certificates.cert-manager.io/${name}`;
      const existing = await readOptional('get', what, namespace, () => custom.getNamespacedCustomObject(group, version, namespace, plural, name));
      if (!existing) return { changed: false, dryRun: dryRun === true, message: 'no change (certificate does not exist)' };
      const before = summarise(existing as CertificateObject);
      const replaced = (now: string | undefined) => ({
        changed: false,
        dryRun: dryRun === true,
        before,
        message: `no change (${what} ${uid} is already deleted; the one there now${now ? `, ${now},` : ''} was made after it)`,
      });
      if (uid && before.uid !== uid) return replaced(before.uid);
      try {
        await custom.deleteNamespacedCustomObject(group, version, namespace, plural, name, undefined, undefined, undefined, dryRunParam(dryRun), uid ? { preconditions: { uid } } : undefined);
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404) return { changed: false, dryRun: dryRun === true, before, message: 'no change (certificate does not exist)' };
        // The uid precondition failed: deleted and made again between our read and our delete.
        if (status === 409 && uid) return replaced(undefined);
        await kcall('delete', what, namespace, () => Promise.reject(err));
      }
      return { changed: true, dryRun: dryRun === true, before, message: `${dryRun ? 'would delete' : 'deleted'} ${what}` };
    },

    /** Waits until the Certificate is Ready (heartbeating each poll) or the deadline passes. */
    async waitForCertificateReady(input: { namespace: string; name: string } & PollOptions): Promise<CertificateSummary & { waitedMs: number }> {
      const { namespace, name } = input;
      guarded(scope, namespace, { name });
      const started = Date.now();
      let last: CertificateSummary | undefined;
      const ready = await pollUntil(
        `wait for certificates.cert-manager.io/${name}`,
        input,
        async () => {
          try {
            last = summarise(await read(namespace, name));
          } catch (err) {
            // Deleted and not yet re-created by cert-manager: keep waiting.
            if ((err as { type?: string }).type === 'NotFound') return undefined;
            throw err;
          }
          return last.ready ? last : undefined;
        },
        () => ({ certificate: name, ready: last?.ready ?? false, reason: last?.readyReason, elapsedMs: Date.now() - started }),
        () =>
          failure(
            'Transient',
            `certificates.cert-manager.io/${name} in namespace ${namespace} not Ready after ${input.timeoutSeconds ?? 300}s${last ? ` (${last.readyReason ?? 'no Ready condition'}${last.readyMessage ? `: ${last.readyMessage}` : ''})` : ' (does not exist)'}`,
          ),
      );
      return { ...ready, waitedMs: Date.now() - started };
    },
  };
}
