import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import type { CertificateSummary } from '../activities/kubernetes-certificates';
import type { EventSummary } from '../activities/kubernetes-pods';
import { type CertificateExpiryInput } from '../common/inputs/certificate-expiry';
import type { RunbookResultBase } from '../common/runbook';
import { RunbookRun } from './kernel/runbook-run';
import { deadlineWait, waitWithinDeadline } from './rollout-wait';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { catalog } from '../common/catalog';

export type CertificateState = 'missing' | 'expired' | 'expiring' | 'not-ready' | 'healthy';

export interface CertificateExpiryResult extends RunbookResultBase {
  state: CertificateState;
  before?: CertificateSummary;
  after?: CertificateSummary;
}

function describeCert(c: CertificateSummary | undefined): string {
  if (!c) return 'does not exist';
  return `Ready ${c.ready ? 'True' : 'False'}${c.readyReason ? ` (${c.readyReason}${c.readyMessage ? `: ${c.readyMessage}` : ''})` : ''}; notAfter ${c.notAfter ?? 'unknown'}${c.daysUntilExpiry !== undefined ? ` (${c.daysUntilExpiry} days left)` : ''}; secret ${c.secretName ?? '?'}; issuer ${c.issuer ?? '?'}`;
}

function describeEvents(events: EventSummary[]): string {
  if (events.length === 0) return 'no events';
  return events
    .slice(-5)
    .map((e) => `${e.type} ${e.reason}${e.count > 1 ? ` x${e.count}` : ''}: ${e.message}`)
    .join(' | ');
}

function isNotFound(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'NotFound';
}

/**
 * 场景5 证书过期: the Certificate's Ready condition, days until notAfter, its events, the Ingress
 * (and cert-manager's logs when configured); ⚠ delete the Certificate, ⚠ re-apply the Ingress
 * (server-side apply) so cert-manager's ingress-shim issues it again. The wait for Ready (up to
 * readyTimeoutSeconds) is part of the re-apply step: Ready never coming fails that step, and so
 * the run (outcome 'failed'), with the Certificate's conditions and events in the report.
 */
export async function certificateExpiry(raw: CertificateExpiryInput): Promise<CertificateExpiryResult> {
  const input = validateInput(catalog.certificateExpiry, raw);
  const { namespace, certificate, ingress } = input;
  const run = await RunbookRun.begin(catalog.certificateExpiry, input, input.certManager ? 7 : 6);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    names: [
      { name: certificate, what: 'certificate' },
      { name: ingress, what: 'ingress' },
    ],
  });

  const readCertificate = () => read.getCertificate({ namespace, name: certificate }).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
  const before = await run.read('certificate', `Certificate ${certificate}: status, conditions, validity`, readCertificate, describeCert);
  const events = await run.read(
    'certificate-events',
    `Events of Certificate ${certificate}`,
    () => read.getObjectEvents({ namespace, kind: 'Certificate', name: certificate, limit: 20 }),
    (e) => describeEvents(e.events),
  );
  const ing = (
    await run.read(
      'ingress',
      `Ingress ${ingress}`,
      () => read.listIngresses({ namespace, name: ingress }),
      (r) => {
        const i = r.ingresses[0];
        return i
          ? `hosts ${i.hosts.join(', ')}; tls ${i.tls.map((t) => `${t.secretName ?? '?'} for ${t.hosts.join(', ')}`).join('; ') || 'none'}; issuer annotation ${i.annotations['cert-manager.io/cluster-issuer'] ?? i.annotations['cert-manager.io/issuer'] ?? 'none'}`
          : 'not found';
      },
    )
  ).ingresses[0]!;
  if (input.certManager) {
    const { namespace: cmNamespace, deployment } = input.certManager;
    await run.read(
      'cert-manager-logs',
      `Logs of ${cmNamespace}/${deployment}`,
      () => read.getContainerLogs({ namespace: cmNamespace, deployment, tailLines: 200, maxBytes: 16_384 }),
      (l) =>
        l.text
          .split('\n')
          .filter((line) => line.includes(certificate))
          .slice(-5)
          .join(' | ') || `${l.lines} lines, none about ${certificate}`,
    );
  }

  const state: CertificateState = !before
    ? 'missing'
    : before.daysUntilExpiry !== undefined && before.daysUntilExpiry < 0
      ? 'expired'
      : before.daysUntilExpiry !== undefined && before.daysUntilExpiry <= input.renewWhenDaysLeft
        ? 'expiring'
        : !before.ready
          ? 'not-ready'
          : 'healthy';

  await run.change({
    stepId: 'delete-certificate',
    title: `Delete Certificate ${certificate}`,
    plan: async () => {
      if (state === 'healthy') return { summary: `certificate ${certificate} is Ready with ${before?.daysUntilExpiry} days left (renewal from ${input.renewWhenDaysLeft} days)`, needed: false };
      if (state === 'missing') return { summary: `certificate ${certificate} does not exist`, needed: false };
      const dry = await read.deleteCertificate({ namespace, name: certificate, dryRun: true });
      return {
        summary: `delete certificates.cert-manager.io/${certificate} in ${namespace} (${state}: notAfter ${before?.notAfter ?? 'unknown'}, Ready ${before?.ready ? 'True' : 'False'})`,
        details: { certificate, namespace, state, notAfter: before?.notAfter },
        needed: dry.changed,
      };
    },
    apply: async () => (await write.deleteCertificate({ namespace, name: certificate })).message,
  });

  // The Ingress as read, reduced to what cert-manager's ingress-shim acts on; the rules are left to
  // their current managers (the summary has no pathType, and ingress-shim does not read them).
  const manifest = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: ingress, namespace, annotations: ing.annotations },
    spec: { ...(ing.className ? { ingressClassName: ing.className } : {}), tls: ing.tls.map((t) => ({ hosts: t.hosts, ...(t.secretName ? { secretName: t.secretName } : {}) })) },
  };
  let after: CertificateSummary | undefined;
  const reapplied = await run.change({
    stepId: 'reapply-ingress',
    title: `Re-apply Ingress ${ingress} and wait for ${certificate} to be Ready`,
    dependsOn: ['delete-certificate'],
    plan: async () => {
      if (state === 'healthy') return { summary: `ingress ${ingress} left as is: certificate healthy`, needed: false };
      const dry = await read.applyManifest({ namespace, manifest, dryRun: true });
      return {
        summary: `server-side apply of ingresses/${ingress} in ${namespace} (field manager runbook-automation; tls ${ing.tls.map((t) => t.secretName ?? '?').join(', ')}, ${Object.keys(ing.annotations).length} annotations as read), then wait up to ${input.readyTimeoutSeconds}s for certificates.cert-manager.io/${certificate} to be Ready`,
        details: { manifest, readyTimeoutSeconds: input.readyTimeoutSeconds },
        observed: { action: dry.action },
        needed: true,
      };
    },
    apply: async () => {
      const applied = await write.applyManifest({ namespace, manifest });
      // A worker lost mid-wait is waited for again with what is left of the deadline; "not Ready in time" fails the step.
      const ready = await waitWithinDeadline(input.readyTimeoutSeconds, (remainingSeconds) =>
        deadlineWait.waitForCertificateReady({ namespace, name: certificate, timeoutSeconds: remainingSeconds, pollIntervalMs: 1000 }),
      );
      after = ready;
      return `ingresses/${ingress} ${applied.action} (server-side apply); ${certificate} Ready after ${Math.round(ready.waitedMs / 1000)}s, notAfter ${ready.notAfter ?? 'unknown'}`;
    },
  });

  let evidence = '';
  if (input.mode === 'execute' && reapplied === 'failed') {
    const now = await run.read('evidence-certificate', `Certificate ${certificate} after the deadline`, readCertificate, describeCert);
    const nowEvents = await run.read(
      'evidence-events',
      `Events of Certificate ${certificate} after the deadline`,
      () => read.getObjectEvents({ namespace, kind: 'Certificate', name: certificate, limit: 20 }),
      (e) => describeEvents(e.events),
    );
    evidence = `Not Ready within ${input.readyTimeoutSeconds}s. Certificate now: ${describeCert(now)}. Conditions: ${now ? `Ready=${now.ready ? 'True' : 'False'} reason ${now.readyReason ?? 'none'} message "${now.readyMessage ?? ''}"` : 'none (not re-created by cert-manager)'}. Events: ${describeEvents(nowEvents.events)}.`;
  } else if (input.mode === 'execute' && reapplied === 'applied') {
    after = await run.read('verify', `Certificate ${certificate} after re-issue`, readCertificate, describeCert);
  }

  const result = await run.finish(`certificate ${certificate} ${state}${after ? `; now ${describeCert(after)}` : ''}${evidence ? '; not Ready before the deadline' : ''}`, {
    impact:
      state === 'healthy'
        ? `Certificate ${certificate} is valid (${before?.daysUntilExpiry} days left); no impact.`
        : `HTTPS on ${ing.hosts.join(', ') || ingress} serves ${state === 'expired' ? 'an expired' : state === 'expiring' ? 'a soon-expiring' : 'a missing or unready'} certificate (${certificate}, secret ${before?.secretName ?? ing.tls[0]?.secretName ?? '?'}); clients may refuse the connection.`,
    rootCause: `Certificate ${certificate}: ${describeCert(before)}. Events: ${describeEvents(events.events)}.${evidence ? ` ${evidence}` : ''}`,
    solution:
      state === 'healthy'
        ? 'Nothing to do.'
        : `Certificate ${certificate} deleted and Ingress ${ingress} re-applied (server-side apply) so cert-manager issues it again; waited up to ${input.readyTimeoutSeconds}s for Ready: ${after?.ready ? `Ready, notAfter ${after.notAfter}` : reapplied === 'failed' ? 'never Ready (see root cause for the conditions and events); check the issuer, ACME challenges and cert-manager logs' : 'not done'}.`,
    prevention:
      'Alert when a Certificate is not Ready or has fewer than 14 days left (certmanager_certificate_expiration_timestamp_seconds); keep renewBefore well above the alert window; watch cert-manager and issuer health.',
  });
  return { ...result, state, ...(before ? { before } : {}), ...(after ? { after } : {}) };
}
