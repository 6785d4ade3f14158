import { patched, workflowInfo } from '@temporalio/workflow';
import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import type { PasswordSecretState, RoleInfo } from '../activities/password-rotation';
import { previousKeyOf, stagedKeyOf, type RotateDatabasePasswordInput } from '../common/inputs/rotate-database-password';
import type { RunbookResultBase } from '../common/runbook';
import { podCounts } from './deployment-spec';
import { RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read } from './activity-proxies';
import { failure } from '../common/failures';
import { catalog } from '../common/catalog';
import { rotationFindings, rotationParts, rotationStep, rotationSummary, type AppPods, type Outcomes, type Restored, type Rotation, type RotationFacts } from './rotate-database-password-plans';
import { alterRoleStep, promotePasswordStep, restartAppStep, restoreUnfinished, rotatedBy, stagePasswordStep, touched } from './rotate-database-password-steps';
import { rotateOnce } from './rotate-database-password-once';

export type { AppPods } from './rotate-database-password-plans';

export interface RotateDatabasePasswordResult extends RunbookResultBase {
  namespace: string;
  secret: string;
  key: string;
  role: string;
  database: string;
  appDeployment: string;
  /** This run's password version (annotation value on the Secret); never the password. */
  version: string;
  restartedAt: string;
  roleBefore: RoleInfo;
  secretBefore: PasswordSecretState;
  appBefore: AppPods;
  /** Every step applied: the role, the Secret and the app's pods use the new password. */
  rotated: boolean;
  rollout?: RolloutStatus & { waitedMs: number };
  appAfter?: AppPods;
  restored?: Restored;
}

export type Before = Awaited<ReturnType<typeof readBefore>>;

/**
 * 定期轮换密钥. What it does: catalog.rotateDatabasePassword.
 * Activities take and return key names and a version decided here, never a password, so none
 * enters the history.
 */
export async function rotateDatabasePassword(raw: RotateDatabasePasswordInput): Promise<RotateDatabasePasswordResult> {
  const input = validateInput(catalog.rotateDatabasePassword, raw);
  const { namespace, secret, key, database, appDeployment } = input;
  // Runs started before it approved each of the four steps on its own; they replay that way.
  const singlePlan = patched('rotation-single-plan');
  const run = await RunbookRun.begin(catalog.rotateDatabasePassword, input, ['database-role', 'secret', 'app-pods', ...(singlePlan ? [rotationStep] : rotationParts), 'verify']);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    databases: [database],
    names: [
      { name: secret, what: 'secret' },
      { name: appDeployment, what: 'deployment' },
    ],
  });

  // Decided once by the run, so a retried or replayed step stages and restarts nothing new.
  const { workflowId, startTime } = workflowInfo();
  const restartedAt = startTime.toISOString();
  const version = `${workflowId}@${restartedAt}`.replace(/[^A-Za-z0-9._:/@+-]/g, '_').slice(-256);
  const r: Rotation = { run, input, where: `${namespace}/${secret}`, app: `${namespace}/${appDeployment}`, staged: stagedKeyOf(key), previous: previousKeyOf(key), version, restartedAt, after: {} };

  const before = await readBefore(r);
  if (before.secretBefore.sealedSecret) r.sealed = before.secretBefore.sealedSecret;
  if (singlePlan) return rotateOnce(r, (outcomes, restored) => reportRotation(r, before, outcomes, restored, true));
  await stagePasswordStep(r);
  await alterRoleStep(r);
  await promotePasswordStep(r);
  await restartAppStep(r);
  const outcomes: Outcomes = Object.fromEntries(rotationParts.map((id) => [id, run.outcomeOf(id)]));
  const restored = await restoreUnfinished(r, outcomes);
  return reportRotation(r, before, outcomes, restored);
}

/** The role, the Secret (key names only) and the app's pods; a Secret without the key or immutable is refused. */
async function readBefore({ run, input, where, staged, app }: Rotation) {
  const { namespace, secret, key, role, appDeployment } = input;
  const roleBefore = await run.read(
    'database-role',
    `PostgreSQL role ${role}`,
    () => read.describeRotatableRole({ role }),
    (r) => `${r.role} may be rotated: ${r.sessions} open sessions${r.validUntil ? `, valid until ${r.validUntil}` : ''}`,
  );
  const secretBefore = await run.read(
    'secret',
    `Secret ${where} (key names only)`,
    () => read.describePasswordSecret({ namespace, secret, key }),
    (s) => `keys ${s.keys.join(', ') || 'none'}${s.nextVersion ? `; ${staged} staged by ${s.nextVersion}` : ''}${s.version ? `; last rotation ${s.version}` : ''}${s.immutable ? '; immutable' : ''}`,
  );
  if (!secretBefore.hasKey || secretBefore.immutable) {
    throw failure(
      secretBefore.hasKey ? 'Refused' : 'NotFound',
      secretBefore.hasKey
        ? `secrets/${secret} in namespace ${namespace} is immutable: it cannot be rotated in place`
        : `secrets/${secret} in namespace ${namespace} has no key ${key}: there is no current password to rotate (or to restore)`,
    );
  }
  const appBefore = await run.read(
    'app-pods',
    `Pods of ${app} (by its selector)`,
    async () => podCounts((await read.listPodSummaries({ namespace, deployment: appDeployment })).pods),
    (p) => `${p.readyPods}/${p.pods} ready`,
  );
  return { roleBefore, secretBefore, appBefore };
}

/**
 * What the rotation promised, read back: the role logs in with the password now in the Secret
 * (a dry run of setting it reports whether a fresh login works, and changes nothing), and the
 * app's pods, restarted on it, are Ready.
 */
async function verifyRotation({ run, input, where, app }: Rotation): Promise<void> {
  const { namespace, secret, key, role, database, appDeployment } = input;
  type After = { logsIn: boolean; pods: AppPods };
  await run.verify('verify', `Login of ${role} with ${key} of ${where}, and the pods of ${app}`, {
    read: async (): Promise<After> => {
      const [login, pods] = await Promise.all([
        read.setRolePasswordFromSecret({ role, namespace, secret, key, database, dryRun: true }),
        read.listPodSummaries({ namespace, deployment: appDeployment }),
      ]);
      return { logsIn: login.alreadyCurrent, pods: podCounts(pods.pods) };
    },
    describe: (a) => `${a.logsIn ? 'a fresh login works' : 'a fresh login is refused'}; ${a.pods.readyPods}/${a.pods.pods} pods ready`,
    effects: [
      {
        promised: `role ${role} logging in to ${database} with ${key} of secrets/${secret}`,
        holds: (a) => a.logsIn,
        found: (a) => (a.logsIn ? 'a fresh login works' : 'a fresh login with it is refused'),
      },
      { promised: `every pod of ${app} Ready on it`, holds: (a) => a.pods.pods > 0 && a.pods.readyPods === a.pods.pods, found: (a) => `${a.pods.readyPods} of ${a.pods.pods} pods are Ready` },
    ],
    before: 'no step',
  });
}

/** The incident report and the result. */
async function reportRotation(r: Rotation, before: Before, outcomes: Outcomes, restored: Restored | undefined, singlePlan = false): Promise<RotateDatabasePasswordResult> {
  const { run, input, version, restartedAt, after } = r;
  const { namespace, secret, key, role, database, appDeployment } = input;
  const { rollout, appAfter } = after;
  const rotated = rotatedBy(input, outcomes);
  const roleTouched = touched(outcomes['alter-role']);
  // The last failure of a failed step is its apply (an undelivered notification may come before it).
  const failedStep = run
    .timelineOf()
    .reverse()
    .find((e) => e.event === 'failed' && e.stepId && run.outcomeOf(e.stepId) === 'failed');
  const facts: RotationFacts = {
    ...r,
    ...before,
    singlePlan,
    ...(appAfter ? { appAfter } : {}),
    outcomes,
    rotated,
    roleTouched,
    ...(restored ? { restored } : {}),
    ...(failedStep ? { failedStep } : {}),
  };
  if (rotated) await verifyRotation(r);
  const result = await run.finish(rotationSummary(facts), rotationFindings(facts));
  return {
    ...result,
    namespace,
    secret,
    key,
    role,
    database,
    appDeployment,
    version,
    restartedAt,
    ...before,
    rotated,
    ...(rollout ? { rollout } : {}),
    ...(appAfter ? { appAfter } : {}),
    ...(restored ? { restored } : {}),
  };
}
