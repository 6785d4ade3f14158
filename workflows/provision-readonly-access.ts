import type { KubernetesObject } from '@kubernetes/client-node';
import type { AccessCheck, AccessCheckResult, SecurityObjectResult } from '../activities/kubernetes-access';
import type { z } from 'zod';
import { type ProvisionReadonlyAccessInput, type provisionReadonlyAccessInput, type ReadonlyRule } from '../common/inputs/provision-readonly-access';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { changeText } from './field-changes';
import { nothingChanged, planOnly, RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { catalog } from '../common/catalog';
import { failure } from '../common/failures';
import { tunnelChecks, tunnelVerbs } from '../common/rbac-tunnels';
import { patched } from '@temporalio/workflow';

export interface AccessReport {
  /** system:serviceaccount:<namespace>:<name> */
  user: string;
  checks: Array<AccessCheckResult & { expected: 'allowed' | 'denied' }>;
  /** Every check came out as expected: the rules are granted and nothing beyond reading is. */
  asExpected: boolean;
}

export interface ProvisionReadonlyAccessResult extends RunbookResultBase {
  namespace: string;
  serviceAccount: string;
  role: string;
  roleBinding: string;
  rules: ReadonlyRule[];
  /** The three objects as last planned (dry run): created, configured with the field changes, or unchanged. */
  objects?: SecurityObjectResult[];
  /** What the ServiceAccount could do before the run. */
  accessBefore: AccessReport;
  /** After the change (execute mode): verified by the API server's authorizer. */
  accessAfter?: AccessReport;
  /** Execute mode: the objects are in place and the access is exactly as expected. */
  verified?: boolean;
}

/** Asked besides the granted rules: a read-only account must not change pods or workloads, nor read Secrets. */
const mustBeDenied: AccessCheck[] = [
  { verb: 'delete', group: '', resource: 'pods' },
  { verb: 'create', group: '', resource: 'pods', subresource: 'exec' },
  { verb: 'patch', group: 'apps', resource: 'deployments' },
  { verb: 'get', group: '', resource: 'secrets' },
];

/** Every subresource that runs a command or tunnels, for get and create (exec over websockets is a GET). */
const tunnelsDenied: AccessCheck[] = tunnelChecks.flatMap((t) => tunnelVerbs.map((verb) => ({ verb, ...t })));
/** Runs before this patch asked only mustBeDenied; they replay so. */
const tunnelsPatch = 'readonly-access-denies-tunnels';

const checkName = (c: AccessCheck) => `${c.verb} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}${c.group ? `.${c.group}` : ''}`;
const rulesText = (rules: ReadonlyRule[]) =>
  rules.map((r) => `${r.verbs.join(', ')} on ${r.resources.map((res) => r.apiGroups.map((g) => (g ? `${res}.${g}` : res)).join(', ')).join(', ')}`).join('; ');
/** Checks grouped as people write them: "get/list/watch pods, services, delete pods". */
function grouped(checks: AccessCheck[]): string {
  const verbsOf = new Map<string, string[]>();
  for (const c of checks) {
    const resource = checkName({ ...c, verb: '' }).trim();
    verbsOf.set(resource, [...(verbsOf.get(resource) ?? []), c.verb]);
  }
  const byVerbs = new Map<string, string[]>();
  for (const [resource, verbs] of verbsOf) byVerbs.set(verbs.join('/'), [...(byVerbs.get(verbs.join('/')) ?? []), resource]);
  return [...byVerbs].map(([verbs, resources]) => `${verbs} ${resources.join(', ')}`).join(', ');
}

function describeAccess(a: AccessReport): string {
  const pick = (expected: 'allowed' | 'denied', allowed: boolean) => a.checks.filter((c) => c.expected === expected && c.allowed === allowed);
  const missing = pick('allowed', false);
  const excess = pick('denied', true);
  return [
    a.asExpected ? 'as expected' : 'NOT as expected',
    pick('allowed', true).length && `may ${grouped(pick('allowed', true))}`,
    pick('denied', false).length && `may not ${grouped(pick('denied', false))}`,
    missing.length && `missing: ${grouped(missing)}`,
    ...excess.map((c) => `UNEXPECTEDLY may ${checkName(c)}${c.reason ? ` (${c.reason})` : ''}`),
  ]
    .filter(Boolean)
    .join('; ');
}

type Input = z.infer<typeof provisionReadonlyAccessInput>;

/** What `kubectl create serviceaccount/role/rolebinding` would make, as one desired state. */
function desiredObjects(input: Input): KubernetesObject[] {
  const { namespace, serviceAccount, role, roleBinding, rules } = input;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, namespace } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: role, namespace }, rules } as KubernetesObject,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: roleBinding, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role },
      subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
    } as KubernetesObject,
  ];
}

/** Every verb the rules grant, one check per verb, group and resource. */
function grantedChecks(rules: ReadonlyRule[]): AccessCheck[] {
  return rules.flatMap((r) =>
    r.apiGroups.flatMap((group) =>
      r.resources.flatMap((res) => {
        const [resource, subresource] = res.split('/') as [string, string | undefined];
        return r.verbs.map((verb) => ({ verb, group, resource, ...(subresource ? { subresource } : {}) }));
      }),
    ),
  );
}

/** Asks the API server's authorizer what the ServiceAccount may do: the granted verbs, then those it must be denied. */
async function checkAccess(input: Input, granted: AccessCheck[], denied: AccessCheck[]): Promise<AccessReport> {
  const { namespace, serviceAccount } = input;
  const { user, results } = await read.checkServiceAccountAccess({ namespace, serviceAccount, checks: [...granted, ...denied] });
  const checks = results.map((r, i) => ({ ...r, expected: i < granted.length ? ('allowed' as const) : ('denied' as const) }));
  return { user, checks, asExpected: checks.every((c) => c.allowed === (c.expected === 'allowed')) };
}

function describeObjects(input: Input, planned: SecurityObjectResult[]): string {
  const { serviceAccount, role, rules } = input;
  return planned
    .map((o) => {
      if (o.action === 'unchanged') return `${o.kind} ${o.name} already as wanted`;
      if (o.action === 'created') {
        if (o.kind === 'Role') return `create Role ${o.name} (${rulesText(rules)})`;
        if (o.kind === 'RoleBinding') return `create RoleBinding ${o.name} (Role ${role} -> ServiceAccount ${serviceAccount})`;
        return `create ${o.kind} ${o.name}`;
      }
      return `update ${o.kind} ${o.name}: ${o.changes.map(changeText).join(', ')}`;
    })
    .join('; ');
}

/** The run's steps in order; helpers take a run typed by them, so a step id is checked by tsc. */
const provisionReadonlyAccessSteps = ['access-before', 'ensure-access', 'verify-access'] as const;
export type ProvisionReadonlyAccessStep = (typeof provisionReadonlyAccessSteps)[number];

/**
 * RBAC配置. What it does: catalog.provisionReadonlyAccess.
 * The manual's three kubectl commands as one idempotent server-side apply: a second run asks nobody.
 */
export async function provisionReadonlyAccess(raw: ProvisionReadonlyAccessInput): Promise<ProvisionReadonlyAccessResult> {
  const input = validateInput(catalog.provisionReadonlyAccess, raw);
  const { namespace, serviceAccount, role, roleBinding, rules } = input;
  const where = `${namespace}/${serviceAccount}`;
  const run = await RunbookRun.begin(catalog.provisionReadonlyAccess, input, provisionReadonlyAccessSteps);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    names: [
      { name: serviceAccount, what: 'serviceAccount' },
      { name: role, what: 'role' },
      { name: roleBinding, what: 'roleBinding' },
    ],
  });

  const granted = grantedChecks(rules);
  const checkTunnels = patched(tunnelsPatch);
  const denied = checkTunnels ? [...mustBeDenied, ...tunnelsDenied.filter((t) => !mustBeDenied.some((m) => checkName(m) === checkName(t)))] : mustBeDenied;
  const accessBefore = await run.read('access-before', `What ${where} may do now (SubjectAccessReview)`, () => checkAccess(input, granted, denied), describeAccess);
  const { outcome, objectsPlanned } = await ensureAccessStep(run, input, checkTunnels);
  let accessAfter: AccessReport | undefined;
  if (input.mode === 'execute' && (outcome === 'applied' || outcome === 'not-needed' || outcome === 'failed')) {
    // Applied or already in place, the promise is the same: the account may read what the rules say, and nothing more.
    const promised = outcome === 'applied' || outcome === 'not-needed';
    accessAfter = await run.verify('verify-access', `What ${where} may do after the change (SubjectAccessReview)`, {
      read: () => checkAccess(input, granted, denied),
      describe: describeAccess,
      effects: promised ? [{ promised: `${where} may ${rulesText(rules)} and nothing more`, holds: (a) => a.asExpected, found: (a) => `the authorizer answers: ${describeAccess(a)}` }] : [],
      before: 'same read',
    });
  }
  const verified = input.mode === 'execute' ? (outcome === 'applied' || outcome === 'not-needed') && accessAfter?.asExpected === true : undefined;

  const result = await reportAccess(run, input, { outcome, objectsPlanned, accessBefore, accessAfter, verified });
  return {
    ...result,
    namespace,
    serviceAccount,
    role,
    roleBinding,
    rules,
    ...(objectsPlanned ? { objects: objectsPlanned } : {}),
    accessBefore,
    ...(accessAfter ? { accessAfter } : {}),
    ...(verified !== undefined ? { verified } : {}),
  };
}

/** ⚠ the three objects server-side applied in one step; planned by a dry run listing what would be created or changed. */
async function ensureAccessStep(run: RunbookRun<ProvisionReadonlyAccessStep>, input: Input, checkTunnels: boolean): Promise<{ outcome: ChangeOutcome; objectsPlanned?: SecurityObjectResult[] }> {
  const { namespace, serviceAccount, role, roleBinding, rules } = input;
  const objects = desiredObjects(input);
  let objectsPlanned: SecurityObjectResult[] | undefined;
  const outcome = await run.change({
    stepId: 'ensure-access',
    title: `Create or update ServiceAccount ${serviceAccount}, Role ${role} and RoleBinding ${roleBinding} in ${namespace}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      // Planned again right before apply: an edit since approval changes the plan.
      const dry = await read.applySecurityObjects({ namespace, objects, dryRun: true });
      objectsPlanned = dry.objects;
      const details = { objects: dry.objects };
      if (!dry.changed) return { summary: `ServiceAccount ${serviceAccount}, Role ${role} and RoleBinding ${roleBinding} in ${namespace} already match (${rulesText(rules)})`, details, needed: false };
      return { summary: `${namespace}: ${describeObjects(input, dry.objects)}`, details, needed: true };
    },
    apply: async () => {
      const done = await write.applySecurityObjects({ namespace, objects });
      // Another binding may grant exec or a tunnel: then the account is not read-only, and the step fails.
      const open = checkTunnels ? (await read.checkServiceAccountAccess({ namespace, serviceAccount, checks: tunnelsDenied })).results.filter((r) => r.allowed) : [];
      if (open.length > 0) {
        const what = open.map((r) => `${checkName(r)}${r.reason ? ` (${r.reason})` : ''}`).join(', ');
        throw failure('Refused', `objects applied, but the authorizer lets ${namespace}/${serviceAccount} ${what}: a grant outside Role ${role} runs commands or tunnels; remove it`);
      }
      return `${namespace}: ${done.objects.map((o) => `${o.kind} ${o.name} ${o.action}`).join(', ')} (server-side apply, field manager runbook-automation)`;
    },
  });
  return { outcome, ...(objectsPlanned ? { objectsPlanned } : {}) };
}

/** The report: the access before and after, the drift put back. */
function reportAccess(
  run: RunbookRun<ProvisionReadonlyAccessStep>,
  input: Input,
  r: { outcome: ChangeOutcome; objectsPlanned?: SecurityObjectResult[]; accessBefore: AccessReport; accessAfter?: AccessReport; verified?: boolean },
) {
  const { namespace, serviceAccount, role, roleBinding, rules } = input;
  const where = `${namespace}/${serviceAccount}`;
  const { outcome, objectsPlanned, accessBefore, accessAfter, verified } = r;
  const planText = run.plannedStep('ensure-access')?.change.summary ?? 'no plan';
  const drifted = objectsPlanned?.filter((o) => o.action === 'configured') ?? [];
  const summary =
    input.mode === 'plan'
      ? `plan: ${planText}`
      : outcome === 'applied' || outcome === 'not-needed'
        ? `${outcome === 'applied' ? planText : `nothing to change: ${planText}`}; access ${accessAfter ? describeAccess(accessAfter) : 'not checked'}`
        : `read-only access for ${where} not provisioned (${outcome})${accessAfter ? `; access ${describeAccess(accessAfter)}` : ''}`;
  return run.finish(summary, {
    impact:
      input.mode === 'plan'
        ? `None (plan mode): nothing was created or changed. ${where} now: ${describeAccess(accessBefore)}.`
        : outcome === 'applied'
          ? `RBAC objects in ${namespace} changed (${planText}); no workload was touched. Before: ${describeAccess(accessBefore)}. After: ${accessAfter ? describeAccess(accessAfter) : 'not checked'}.`
          : `${nothingChanged} ${where}: ${describeAccess(accessAfter ?? accessBefore)}.`,
    rootCause: `Access request (安全管理 / RBAC配置) by ${input.startedBy}; not a fault.${drifted.length ? ` Drift: ${drifted.map((o) => `${o.kind} ${o.name} differed from the wanted state (${o.changes.map(changeText).join(', ')})`).join('; ')}.` : ''}`,
    solution:
      input.mode === 'plan'
        ? planOnly(planText)
        : outcome === 'applied' || outcome === 'not-needed'
          ? `ServiceAccount ${serviceAccount}, Role ${role} (${rulesText(rules)}) and RoleBinding ${roleBinding} in ${namespace} ${outcome === 'applied' ? 'applied (server-side, field manager runbook-automation)' : 'already in place'}; ${verified ? 'verified by SubjectAccessReview' : 'verification FAILED'}: ${accessAfter ? describeAccess(accessAfter) : 'not checked'}.`
          : `Not provisioned (${outcome}): ${planText}.`,
    prevention:
      'Keep RBAC objects in Git and apply them through this runbook, so a hand edit shows up as a diff and is put back only with approval; grant read verbs only and never Secrets; give people short-lived tokens of the account (kubectl create token) rather than long-lived Secrets; review RoleBindings quarterly.',
  });
}
