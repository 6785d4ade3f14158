import type { KubernetesObject } from '@kubernetes/client-node';
import type { FieldChange, LiveComparison, SecurityObjectResult } from '../activities/kubernetes-access';
import type { z } from 'zod';
import { type ApplyNetworkPolicyInput, type applyNetworkPolicyInput } from '../common/inputs/apply-network-policy';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { livePods } from './deployment-spec';
import { changeText } from './field-changes';
import { nothingChanged, planOnly, RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { catalog } from '../common/catalog';

/** How many pods of the namespace each of the policy's selectors matches right now. */
export interface SelectedPods {
  app: number;
  ingressController: number;
  postgres: number;
  redis: number;
}

export interface ApplyNetworkPolicyResult extends RunbookResultBase {
  namespace: string;
  policy: string;
  /** The NetworkPolicy this run applies (the manual's, with the inputs' names, labels and ports). */
  desired: KubernetesObject;
  selectedPods: SelectedPods;
  /** The dry run as last planned: created, configured (with the field changes) or unchanged. */
  planned?: SecurityObjectResult;
  /** Execute mode: the live NetworkPolicy against the desired one after the step. */
  live?: LiveComparison;
  /** Execute mode: the live spec is exactly the desired one. */
  verified?: boolean;
}

const selectorText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

type Input = z.infer<typeof applyNetworkPolicyInput>;

/** The policy's four selectors as label selectors, and the policy in one sentence. */
function policyTexts(input: Input) {
  const app = selectorText(input.appLabels);
  const ingressController = selectorText(input.ingressControllerLabels);
  const postgres = selectorText(input.postgresLabels);
  const redis = selectorText(input.redisLabels);
  const policyText = `pods ${app} accept ingress only from ${ingressController} on TCP ${input.appPort}; egress only to ${postgres} on TCP ${input.postgresPort} and ${redis} on TCP ${input.redisPort}`;
  return { app, ingressController, postgres, redis, policyText };
}
type PolicyTexts = ReturnType<typeof policyTexts>;

/** The manual's object, field for field; only names, labels and ports come from the input. */
function desiredPolicy(input: Input): KubernetesObject {
  const { namespace, policy } = input;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: policy, namespace },
    spec: {
      podSelector: { matchLabels: input.appLabels },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: input.ingressControllerLabels } }], ports: [{ protocol: 'TCP', port: input.appPort }] }],
      egress: [
        { to: [{ podSelector: { matchLabels: input.postgresLabels } }], ports: [{ protocol: 'TCP', port: input.postgresPort }] },
        { to: [{ podSelector: { matchLabels: input.redisLabels } }], ports: [{ protocol: 'TCP', port: input.redisPort }] },
      ],
    },
  } as KubernetesObject;
}

/** Selectors matching no pod: the policy would restrict nothing, or cut the app off. */
function selectorWarnings(namespace: string, t: PolicyTexts, selectedPods: SelectedPods): string[] {
  const { app, ingressController, postgres, redis } = t;
  return [
    selectedPods.app === 0 && `no pod matches ${app}: the policy restricts nothing yet`,
    selectedPods.ingressController === 0 &&
      `no pod in ${namespace} matches ${ingressController}: the app would accept no ingress traffic (the manual's podSelector only matches pods of the same namespace)`,
    selectedPods.postgres === 0 && `no pod matches ${postgres}`,
    selectedPods.redis === 0 && `no pod matches ${redis}`,
  ].filter((w): w is string => typeof w === 'string');
}

/** The run's steps in order; helpers take a run typed by them, so a step id is checked by tsc. */
const applyNetworkPolicySteps = ['selected-pods', 'apply-policy', 'verify-policy'] as const;
export type ApplyNetworkPolicyStep = (typeof applyNetworkPolicySteps)[number];

/**
 * 网络策略. What it does: catalog.applyNetworkPolicy.
 * Applied with our field manager; a matching policy plans nothing, so a second run asks nobody,
 * and a hand-edited one shows as a diff and is put back on approval.
 */
export async function applyNetworkPolicy(raw: ApplyNetworkPolicyInput): Promise<ApplyNetworkPolicyResult> {
  const input = validateInput(catalog.applyNetworkPolicy, raw);
  const { namespace, policy } = input;
  const where = `${namespace}/${policy}`;
  const run = await RunbookRun.begin(catalog.applyNetworkPolicy, input, applyNetworkPolicySteps);
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: policy, what: 'policy' }] });

  const desired = desiredPolicy(input);
  const texts = policyTexts(input);
  const { app, ingressController, postgres, redis } = texts;
  // Who the policy would cut off is what can hurt: a selector matching no pod is worth knowing before approving.
  const selectedPods = await run.read(
    'selected-pods',
    `Pods in ${namespace} the policy's selectors match`,
    async (): Promise<SelectedPods> => {
      const count = async (labelSelector: string) => livePods((await read.listPodSummaries({ namespace, labelSelector })).pods).length;
      const [a, i, p, r] = await Promise.all([count(app), count(ingressController), count(postgres), count(redis)]);
      return { app: a, ingressController: i, postgres: p, redis: r };
    },
    (s) => `${app}: ${s.app}, ${ingressController}: ${s.ingressController}, ${postgres}: ${s.postgres}, ${redis}: ${s.redis}`,
  );
  const warnings = selectorWarnings(namespace, texts, selectedPods);

  const { outcome, planned } = await applyPolicyStep(run, input, desired, texts.policyText, warnings);
  let live: LiveComparison | undefined;
  if (input.mode === 'execute' && (outcome === 'applied' || outcome === 'not-needed' || outcome === 'failed')) {
    const liveText = (c: LiveComparison) =>
      !c.exists ? 'NetworkPolicy not found' : c.matches ? 'live spec equals the desired spec' : `live spec differs: ${c.differences.map(changeText).join(', ')}`;
    // Applied or already in place, the promise is the same: the live policy is the desired one.
    const promised = outcome === 'applied' || outcome === 'not-needed';
    live = await run.verify('verify-policy', `Live NetworkPolicy ${where} against the desired spec`, {
      read: async () => (await read.compareLiveObjects({ namespace, objects: [desired] })).objects[0]!,
      describe: liveText,
      effects: promised
        ? [{ promised: `NetworkPolicy ${where} live with the desired spec`, holds: (c) => c.exists && c.matches, found: (c) => (c.exists ? `its ${liveText(c)}` : 'it is not found') }]
        : [],
      before: 'same read',
    });
  }
  const verified = input.mode === 'execute' ? (outcome === 'applied' || outcome === 'not-needed') && live?.matches === true : undefined;

  const result = await reportPolicy(run, input, { texts, selectedPods, warnings, outcome, planned, live });
  return {
    ...result,
    namespace,
    policy,
    desired,
    selectedPods,
    ...(planned ? { planned } : {}),
    ...(live ? { live } : {}),
    ...(verified !== undefined ? { verified } : {}),
  };
}

/** ⚠ the policy server-side applied; planned by a dry run diffed field by field against the live object. */
async function applyPolicyStep(
  run: RunbookRun<ApplyNetworkPolicyStep>,
  input: Input,
  desired: KubernetesObject,
  policyText: string,
  warnings: string[],
): Promise<{ outcome: ChangeOutcome; planned?: SecurityObjectResult }> {
  const { namespace, policy } = input;
  const where = `${namespace}/${policy}`;
  let planned: SecurityObjectResult | undefined;
  const outcome = await run.change({
    stepId: 'apply-policy',
    title: `Server-side apply NetworkPolicy ${where}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      // Planned again right before apply: an edit since approval changes the diff, so people are asked again.
      const dry = await read.applySecurityObjects({ namespace, objects: [desired], dryRun: true });
      planned = dry.objects[0]!;
      const details = { action: planned.action, changes: planned.changes };
      const observed = warnings.length ? { warnings } : undefined;
      if (planned.action === 'unchanged') return { summary: `NetworkPolicy ${where} already matches the manual's: ${policyText}`, details, needed: false };
      const summary =
        planned.action === 'created'
          ? `create NetworkPolicy ${where}: ${policyText}`
          : `update NetworkPolicy ${where} (${planned.changes.length} field${planned.changes.length === 1 ? '' : 's'}): ${planned.changes.map(changeText).join(', ')}`;
      return { summary, details, needed: true, ...(observed ? { observed } : {}) };
    },
    apply: async () => {
      const done = await write.applySecurityObjects({ namespace, objects: [desired] });
      const o = done.objects[0]!;
      return `NetworkPolicy ${where} ${o.action} (server-side apply, field manager runbook-automation${o.changes.length ? `; ${o.changes.length} field${o.changes.length === 1 ? '' : 's'}` : ''})`;
    },
  });
  return { outcome, ...(planned ? { planned } : {}) };
}

/** The report: what the policy now allows, the drift it put back, the verification. */
function reportPolicy(
  run: RunbookRun<ApplyNetworkPolicyStep>,
  input: Input,
  r: { texts: PolicyTexts; selectedPods: SelectedPods; warnings: string[]; outcome: ChangeOutcome; planned?: SecurityObjectResult; live?: LiveComparison },
) {
  const { namespace, policy } = input;
  const where = `${namespace}/${policy}`;
  const { texts, selectedPods, warnings, outcome, planned, live } = r;
  const { app, ingressController, postgres, redis, policyText } = texts;
  const planText = run.plannedStep('apply-policy')?.change.summary ?? 'no plan';
  const drift: FieldChange[] = planned?.action === 'configured' ? planned.changes : [];
  const verification = live
    ? live.matches
      ? 'live spec verified equal to the desired spec'
      : `verification FAILED: ${live.exists ? live.differences.map(changeText).join(', ') : 'not found'}`
    : 'not verified';
  const summary =
    input.mode === 'plan'
      ? `plan: ${planText}`
      : outcome === 'applied' || outcome === 'not-needed'
        ? `${outcome === 'applied' ? planText : `nothing to change: ${planText}`}; ${verification}`
        : `NetworkPolicy ${where} not applied (${outcome})${live ? `; ${verification}` : ''}`;
  return run.finish(summary, {
    impact:
      input.mode === 'plan'
        ? `None (plan mode): nothing was changed.${warnings.length ? ` Before applying, note: ${warnings.join('; ')}.` : ''}`
        : outcome === 'applied'
          ? `From now on, where the cluster's network plugin enforces NetworkPolicies, ${selectedPods.app} pod(s) ${app} in ${namespace} accept connections only from ${ingressController} on TCP ${input.appPort} and open connections only to ${postgres} on TCP ${input.postgresPort} and ${redis} on TCP ${input.redisPort}; everything else is dropped.${warnings.length ? ` Note: ${warnings.join('; ')}.` : ''}`
          : nothingChanged,
    rootCause: `Network hardening (安全管理 / 网络策略) requested by ${input.startedBy}; not a fault.${drift.length ? ` Drift: the live NetworkPolicy differed from the manual's (${drift.map(changeText).join(', ')}).` : ''}`,
    solution:
      input.mode === 'plan'
        ? planOnly(planText)
        : outcome === 'applied' || outcome === 'not-needed'
          ? `NetworkPolicy ${where} ${outcome === 'applied' ? 'server-side applied (field manager runbook-automation)' : 'already as wanted'}: ${policyText}; ${verification}.`
          : `Not applied (${outcome}): ${planText}.`,
    prevention:
      "Keep the policy in Git and apply it through this runbook so hand edits show as a diff. The manual's policy allows no DNS egress (UDP/TCP 53 to kube-dns): pods that reach postgres and redis by Service name need such a rule where policies are enforced; an ingress controller in another namespace needs a namespaceSelector beside the podSelector.",
  });
}
