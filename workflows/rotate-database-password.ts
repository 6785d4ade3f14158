import { workflowInfo } from '@temporalio/workflow';
import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import type { PasswordSecretState, RoleInfo } from '../activities/password-rotation';
import type { z } from 'zod';
import { previousKeyOf, stagedKeyOf, type RotateDatabasePasswordInput, type rotateDatabasePasswordInput } from '../common/inputs/rotate-database-password';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { podCounts } from './deployment-spec';
import { RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { waitForRollout } from './rollout-wait';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { failure } from '../common/failures';
import { catalog } from '../common/catalog';
import { rotationFindings, rotationSummary, type AppPods, type Restored, type RotationFacts } from './rotate-database-password-plans';

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

const done = (outcome: ChangeOutcome | undefined) => outcome === 'applied' || outcome === 'not-needed';

type Input = z.infer<typeof rotateDatabasePasswordInput>;

/** What one run's steps share: the run, the Secret, role and app it rotates, and the version it decided. */
interface Rotation {
  run: RunbookRun;
  input: Input;
  /** `<namespace>/<secret>` and `<namespace>/<appDeployment>`, as the texts name them. */
  where: string;
  app: string;
  staged: string;
  previous: string;
  version: string;
  restartedAt: string;
  /** What restart-app saw once its rollout completed. */
  after: { rollout?: RotateDatabasePasswordResult['rollout']; appAfter?: AppPods };
}

type Before = Awaited<ReturnType<typeof readBefore>>;
type Outcomes = Record<string, ChangeOutcome | undefined>;

/**
 * 定期轮换密钥: a new database password generated inside an activity and kept only in the
 * Kubernetes Secret (staged as `<key>_NEXT`), ⚠ ALTER ROLE to it (a SCRAM verifier computed in the
 * worker), ⚠ promote it to `<key>` (the old value kept as `<key>_PREVIOUS`), ⚠ rolling restart of the
 * app, verified ready. If the rotation does not finish after the role changed, the old password is
 * put back in PostgreSQL and the Secret. No password ever enters the history: activities take and
 * return key names and a version decided here.
 */
export async function rotateDatabasePassword(raw: RotateDatabasePasswordInput): Promise<RotateDatabasePasswordResult> {
  const input = validateInput(catalog.rotateDatabasePassword, raw);
  const { namespace, secret, key, database, appDeployment } = input;
  const run = await RunbookRun.begin(catalog.rotateDatabasePassword, input, ['database-role', 'secret', 'app-pods', 'stage-password', 'alter-role', 'update-secret', 'restart-app']);
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
  await stagePasswordStep(r);
  await alterRoleStep(r);
  await promotePasswordStep(r);
  await restartAppStep(r);
  const outcomes: Outcomes = Object.fromEntries(['stage-password', 'alter-role', 'update-secret', 'restart-app'].map((id) => [id, run.outcomeOf(id)]));
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

/** ⚠ a new password, generated in the worker, staged as `<key>_NEXT`; nothing uses it yet. */
async function stagePasswordStep({ run, input, where, staged, version }: Rotation): Promise<void> {
  const { namespace, secret, key } = input;
  await run.change({
    stepId: 'stage-password',
    title: `Generate a new password and stage it as ${staged} of ${where}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const dry = await read.stageSecretPassword({ namespace, secret, key, version, dryRun: true });
      if (!dry.changed) return { summary: `${staged} of secrets/${secret} already holds this run's new password`, needed: false };
      return {
        summary: `generate a new password (32 random bytes, in the worker) and store it as ${staged} of secrets/${secret}${dry.replacedVersion ? `, replacing one staged by ${dry.replacedVersion}` : ''}; nothing uses it yet`,
        details: { key: staged },
        // Shown, not hashed: it names the run (its workflow id), not what people approve.
        observed: { version },
        needed: true,
      };
    },
    apply: async () => (await write.stageSecretPassword({ namespace, secret, key, version })).message,
  });
}

/** ⚠ ALTER ROLE to the staged password (a SCRAM verifier computed in the worker). */
async function alterRoleStep({ run, input, app, staged }: Rotation): Promise<void> {
  const { namespace, secret, role, database } = input;
  const alterSummary = `ALTER ROLE ${role} PASSWORD to ${staged} (a SCRAM-SHA-256 verifier computed in the worker); open sessions stay, new logins need the new password until ${app} restarts with it; restored automatically if the rotation does not finish`;
  await run.change({
    stepId: 'alter-role',
    title: `Set the password of PostgreSQL role ${role} to the staged one`,
    allowedRoles: rolesFrom('l2'),
    dependsOn: ['stage-password'],
    plan: async () => {
      // In plan mode nothing is staged, so there is nothing to try a login with.
      if (input.mode === 'plan') return { summary: alterSummary, details: { role, from: staged }, needed: true };
      const dry = await read.setRolePasswordFromSecret({ role, namespace, secret, key: staged, database, dryRun: true });
      if (dry.alreadyCurrent) return { summary: `role ${role} already logs in with ${staged}`, needed: false };
      return { summary: alterSummary, details: { role, from: staged }, needed: true };
    },
    apply: async () => (await write.setRolePasswordFromSecret({ role, namespace, secret, key: staged, database })).message,
  });
}

/** ⚠ the staged password becomes `<key>`, the old one is kept as `<key>_PREVIOUS`. */
async function promotePasswordStep({ run, input, where, staged, previous, version }: Rotation): Promise<void> {
  const { namespace, secret, key } = input;
  const promoteSummary = `secrets/${secret}: ${key} <- ${staged}, ${previous} <- the old ${key} (kept for restoring), ${staged} removed`;
  await run.change({
    stepId: 'update-secret',
    title: `Promote the new password to ${key} of ${where}`,
    allowedRoles: rolesFrom('l2'),
    dependsOn: ['alter-role'],
    plan: async () => {
      if (input.mode === 'plan') return { summary: promoteSummary, details: { key, previous }, needed: true };
      const dry = await read.promoteStagedSecretKey({ namespace, secret, key, version, dryRun: true });
      if (!dry.changed) return { summary: `${key} of secrets/${secret} already holds this run's password`, needed: false };
      return { summary: promoteSummary, details: { key, previous }, needed: true };
    },
    apply: async () => (await write.promoteStagedSecretKey({ namespace, secret, key, version })).message,
  });
}

/** ⚠ rolling restart of the app so its pods read the new password, verified ready. */
async function restartAppStep({ run, input, app, restartedAt, after }: Rotation): Promise<void> {
  const { namespace, key, appDeployment } = input;
  await run.change({
    stepId: 'restart-app',
    title: `Rolling restart of ${app}`,
    allowedRoles: rolesFrom('l2'),
    dependsOn: ['update-secret'],
    plan: async () => {
      const dry = await read.restartRollout({ namespace, deployment: appDeployment, restartedAt, dryRun: true });
      return {
        summary: `rolling restart of ${app} (restartedAt ${restartedAt}) so its pods read the new ${key}; wait up to ${input.waitTimeoutSeconds}s for every pod to be ready`,
        details: { restartedAt },
        needed: dry.changed || input.mode === 'plan',
      };
    },
    apply: async () => {
      const restarted = await write.restartRollout({ namespace, deployment: appDeployment, restartedAt });
      const rollout = await waitForRollout({ namespace, deployment: appDeployment }, input.waitTimeoutSeconds, `restarted ${app}`);
      after.rollout = rollout;
      const appAfter = podCounts((await read.listPodSummaries({ namespace, deployment: appDeployment })).pods);
      after.appAfter = appAfter;
      // The controller's count is authoritative; the pods its selector finds must agree when there are any.
      const ready = Math.min(rollout.readyReplicas, appAfter.pods > 0 ? appAfter.readyPods : rollout.readyReplicas);
      if (ready < rollout.updatedReplicas) {
        throw failure('AppNotReady', `${app}: only ${ready} of ${rollout.updatedReplicas} pods ready after the restart`);
      }
      return `${restarted.changed ? 'restarted' : 'already restarted'} ${app}; rollout complete in ${Math.round(rollout.waitedMs / 1000)}s, ${appAfter.readyPods}/${appAfter.pods} pods ready`;
    },
  });
}

/** Rotated: every step applied (or already done) in execute mode. */
const rotatedBy = (input: Input, outcomes: Outcomes) => input.mode === 'execute' && done(outcomes['restart-app']);
/** The step changed something or may have: a failed ALTER ROLE may have happened before its verification failed, so it is undone too (a no-op when the old password still works). */
const touched = (outcome: ChangeOutcome | undefined) => ['applied', 'failed', 'not-needed'].includes(outcome ?? '');

/**
 * After the role changed and the rotation did not finish: the old password back in PostgreSQL,
 * then in the Secret, then (when the restart failed) the app's pods restarted onto it.
 */
async function restoreUnfinished(r: Rotation, outcomes: Outcomes): Promise<Restored | undefined> {
  const { run, input, where, app, previous, version, restartedAt } = r;
  const { namespace, secret, key, role, database, appDeployment } = input;
  if (!(input.mode === 'execute' && touched(outcomes['stage-password']) && !rotatedBy(input, outcomes))) return undefined;
  const restored: Restored = {};
  let roleBack = true;
  if (touched(outcomes['alter-role'])) {
    roleBack = await run.compensate('restore-role', `Restore the old password of role ${role}`, async () => {
      // Once promoted, the old password is in <key>_PREVIOUS; before, it is still <key>.
      const state = await read.describePasswordSecret({ namespace, secret, key });
      const from = state.version === version ? previous : key;
      return (await write.setRolePasswordFromSecret({ role, namespace, secret, key: from, database })).message;
    });
    restored.role = roleBack;
  }
  // The Secret must keep naming the password the role has: only reverted once the role is back.
  if (!roleBack) return restored;
  restored.secret = await run.compensate('restore-secret', `Put ${where} back as before this rotation`, async () => (await write.revertSecretRotation({ namespace, secret, key, version })).message);
  if (restored.secret && outcomes['restart-app'] === 'failed') {
    // Pods started by the failed rollout hold the new password: replace them with pods reading the old one.
    const againAt = new Date().toISOString();
    let restartedAgain = false;
    const ok = await run.compensate('restart-app-again', `Rolling restart of ${app} with the restored password`, async () => {
      const ours = await read.restartRollout({ namespace, deployment: appDeployment, restartedAt, dryRun: true });
      if (ours.changed) return `${app} never got this run's restart: no pod has the new password, not restarted again`;
      const again = await write.restartRollout({ namespace, deployment: appDeployment, restartedAt: againAt });
      restartedAgain = true;
      return `${again.message} (restartedAt ${againAt}); not waited for`;
    });
    if (restartedAgain || !ok) restored.appRestarted = restartedAgain;
  }
  return restored;
}

/** The incident report and the result. */
async function reportRotation(r: Rotation, before: Before, outcomes: Outcomes, restored: Restored | undefined): Promise<RotateDatabasePasswordResult> {
  const { run, input, version, restartedAt, after } = r;
  const { namespace, secret, key, role, database, appDeployment } = input;
  const { rollout, appAfter } = after;
  const rotated = rotatedBy(input, outcomes);
  const roleTouched = touched(outcomes['alter-role']);
  // The last failure of a failed step is its apply (an undelivered notification may come before it).
  const failedStep = run
    .timelineOf()
    .reverse()
    .find((e) => e.event === 'failed' && e.stepId && outcomes[e.stepId] === 'failed');
  const facts: RotationFacts = { ...r, ...before, ...(appAfter ? { appAfter } : {}), outcomes, rotated, roleTouched, ...(restored ? { restored } : {}), ...(failedStep ? { failedStep } : {}) };
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
