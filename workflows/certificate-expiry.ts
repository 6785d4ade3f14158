import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import type { CertificateSummary } from '../activities/kubernetes-certificates';
import type { EventSummary } from '../activities/kubernetes-pods';
import type { IngressSummary } from '../activities/kubernetes-network';
import { type CertificateExpiryInput, type certificateExpiryInput } from '../common/inputs/certificate-expiry';
import type { RunbookResultBase } from '../common/runbook';
import { RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
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

type Input = z.infer<typeof certificateExpiryInput>;

/** The Certificate as read; undefined when it does not exist. */
const certificateOf = (input: Input) => read.getCertificate({ namespace: input.namespace, name: input.certificate }).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));

/** The Certificate's last 20 events, as a read step. */
const readEvents = (run: RunbookRun<CertificateExpiryStep>, input: Input, stepId: CertificateExpiryStep, title: string) =>
  run.read(
    stepId,
    title,
    () => read.getObjectEvents({ namespace: input.namespace, kind: 'Certificate', name: input.certificate, limit: 20 }),
    (e) => describeEvents(e.events),
  );

function certificateState(before: CertificateSummary | undefined, renewWhenDaysLeft: number): CertificateState {
  return !before
    ? 'missing'
    : before.daysUntilExpiry !== undefined && before.daysUntilExpiry < 0
      ? 'expired'
      : before.daysUntilExpiry !== undefined && before.daysUntilExpiry <= renewWhenDaysLeft
        ? 'expiring'
        : !before.ready
          ? 'not-ready'
          : 'healthy';
}

/**
 * The Ingress as read, reduced to what cert-manager's ingress-shim acts on; the rules are left to
 * their current managers (the summary has no pathType, and ingress-shim does not read them).
 */
function ingressManifest(input: Input, ing: IngressSummary) {
  const { namespace, ingress } = input;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: ingress, namespace, annotations: ing.annotations },
    spec: { ...(ing.className ? { ingressClassName: ing.className } : {}), tls: ing.tls.map((t) => ({ hosts: t.hosts, ...(t.secretName ? { secretName: t.secretName } : {}) })) },
  };
}

/** The run's step ids, with the evidence steps only a missed deadline runs (not declared at begin). */
export type CertificateExpiryStep =
  'certificate' | 'certificate-events' | 'ingress' | 'cert-manager-logs' | 'delete-certificate' | 'reapply-ingress' | 'verify' | 'evidence-certificate' | 'evidence-events';

/**
 * 场景5 证书过期. What it does: catalog.certificateExpiry.
 * The wait for Ready is part of the re-apply step, so Ready never coming fails that step (and the
 * run) with the Certificate's conditions and events in the report, rather than a run that "succeeded".
 */
export async function certificateExpiry(raw: CertificateExpiryInput): Promise<CertificateExpiryResult> {
  const input = validateInput(catalog.certificateExpiry, raw);
  const { namespace, certificate, ingress } = input;
  const run = await RunbookRun.begin<CertificateExpiryStep>(catalog.certificateExpiry, input, [
    'certificate',
    'certificate-events',
    'ingress',
    ...(input.certManager ? (['cert-manager-logs'] as const) : []),
    'delete-certificate',
    'reapply-ingress',
    'verify',
  ]);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    names: [
      { name: certificate, what: 'certificate' },
      { name: ingress, what: 'ingress' },
    ],
  });

  const before = await run.read('certificate', `Certificate ${certificate}: status, conditions, validity`, () => certificateOf(input), describeCert);
  const events = await readEvents(run, input, 'certificate-events', `Events of Certificate ${certificate}`);
  const ing = await readIngress(run, input);
  if (input.certManager) await readCertManagerLogs(run, input, input.certManager);
  const state = certificateState(before, input.renewWhenDaysLeft);

  await deleteCertificateStep(run, input, state, before);
  const reapply = await reapplyIngressStep(run, input, state, ing);
  let after = reapply.after;
  let evidence = '';
  if (input.mode === 'execute' && reapply.outcome === 'failed') {
    evidence = await evidenceAfterDeadline(run, input);
  } else if (input.mode === 'execute' && reapply.outcome === 'applied') {
    // Ready was waited for; what the re-issue promised is a certificate that is not itself due for renewal.
    const renewed = `certificate ${certificate} Ready with more than ${input.renewWhenDaysLeft} days left`;
    after = await run.verify('verify', `Certificate ${certificate} after re-issue`, {
      read: () => certificateOf(input),
      describe: describeCert,
      effects: [{ promised: renewed, holds: (c) => certificateState(c, input.renewWhenDaysLeft) === 'healthy', found: (c) => `it is ${describeCert(c)}` }],
      before: 'same read',
    });
  }
  const result = await reportCertificate(run, input, { state, before, events: events.events, ing, after, evidence, reapplied: reapply.outcome });
  return { ...result, state, ...(before ? { before } : {}), ...(after ? { after } : {}) };
}

async function readIngress(run: RunbookRun<CertificateExpiryStep>, input: Input): Promise<IngressSummary> {
  const { namespace, ingress } = input;
  const found = await run.read(
    'ingress',
    `Ingress ${ingress}`,
    () => read.listIngresses({ namespace, name: ingress }),
    (r) => {
      const i = r.ingresses[0];
      return i
        ? `hosts ${i.hosts.join(', ')}; tls ${i.tls.map((t) => `${t.secretName ?? '?'} for ${t.hosts.join(', ')}`).join('; ') || 'none'}; issuer annotation ${i.annotations['cert-manager.io/cluster-issuer'] ?? i.annotations['cert-manager.io/issuer'] ?? 'none'}`
        : 'not found';
    },
  );
  return found.ingresses[0]!;
}

/** cert-manager's last log lines about the Certificate. */
async function readCertManagerLogs(run: RunbookRun<CertificateExpiryStep>, input: Input, certManager: { namespace: string; deployment: string }): Promise<void> {
  const { namespace: cmNamespace, deployment } = certManager;
  const { certificate } = input;
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

/** ⚠ the Certificate deleted, unless it is healthy or missing. */
async function deleteCertificateStep(run: RunbookRun<CertificateExpiryStep>, input: Input, state: CertificateState, before: CertificateSummary | undefined): Promise<void> {
  const { namespace, certificate } = input;
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
    // Only the Certificate read: a retry after ingress-shim made it again leaves the new one alone.
    apply: async () => (await write.deleteCertificate({ namespace, name: certificate, ...(before?.uid ? { uid: before.uid } : {}) })).message,
  });
}

/** ⚠ the Ingress re-applied (server-side) so ingress-shim issues the Certificate again; waits for Ready. */
async function reapplyIngressStep(run: RunbookRun<CertificateExpiryStep>, input: Input, state: CertificateState, ing: IngressSummary): Promise<{ outcome: ChangeOutcome; after?: CertificateSummary }> {
  const { namespace, certificate, ingress } = input;
  const manifest = ingressManifest(input, ing);
  let after: CertificateSummary | undefined;
  const outcome = await run.change({
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
  return { outcome, ...(after ? { after } : {}) };
}

/** Ready never came: the Certificate's conditions and events now, for the report. */
async function evidenceAfterDeadline(run: RunbookRun<CertificateExpiryStep>, input: Input): Promise<string> {
  const { certificate } = input;
  const now = await run.read('evidence-certificate', `Certificate ${certificate} after the deadline`, () => certificateOf(input), describeCert);
  const nowEvents = await readEvents(run, input, 'evidence-events', `Events of Certificate ${certificate} after the deadline`);
  return `Not Ready within ${input.readyTimeoutSeconds}s. Certificate now: ${describeCert(now)}. Conditions: ${now ? `Ready=${now.ready ? 'True' : 'False'} reason ${now.readyReason ?? 'none'} message "${now.readyMessage ?? ''}"` : 'none (not re-created by cert-manager)'}. Events: ${describeEvents(nowEvents.events)}.`;
}

/** The incident report: what HTTPS served, the Certificate's state and events, what was done. */
function reportCertificate(
  run: RunbookRun<CertificateExpiryStep>,
  input: Input,
  r: {
    state: CertificateState;
    before?: CertificateSummary;
    events: EventSummary[];
    ing: IngressSummary;
    after?: CertificateSummary;
    evidence: string;
    reapplied: ChangeOutcome;
  },
) {
  const { certificate, ingress } = input;
  const { state, before, events, ing, after, evidence, reapplied } = r;
  return run.finish(`certificate ${certificate} ${state}${after ? `; now ${describeCert(after)}` : ''}${evidence ? '; not Ready before the deadline' : ''}`, {
    impact:
      state === 'healthy'
        ? `Certificate ${certificate} is valid (${before?.daysUntilExpiry} days left); no impact.`
        : `HTTPS on ${ing.hosts.join(', ') || ingress} serves ${state === 'expired' ? 'an expired' : state === 'expiring' ? 'a soon-expiring' : 'a missing or unready'} certificate (${certificate}, secret ${before?.secretName ?? ing.tls[0]?.secretName ?? '?'}); clients may refuse the connection.`,
    rootCause: `Certificate ${certificate}: ${describeCert(before)}. Events: ${describeEvents(events)}.${evidence ? ` ${evidence}` : ''}`,
    solution:
      state === 'healthy'
        ? 'Nothing to do.'
        : `Certificate ${certificate} deleted and Ingress ${ingress} re-applied (server-side apply) so cert-manager issues it again; waited up to ${input.readyTimeoutSeconds}s for Ready: ${after?.ready ? `Ready, notAfter ${after.notAfter}` : reapplied === 'failed' ? 'never Ready (see root cause for the conditions and events); check the issuer, ACME challenges and cert-manager logs' : 'not done'}.`,
    prevention:
      'Alert when a Certificate is not Ready or has fewer than 14 days left (certmanager_certificate_expiration_timestamp_seconds); keep renewBefore well above the alert window; watch cert-manager and issuer health.',
  });
}
