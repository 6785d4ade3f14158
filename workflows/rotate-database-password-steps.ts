import { read, write } from './activity-proxies';
import { failure } from '../common/failures';
import { rolesFrom } from '../common/runbook';
import type { ChangeOutcome } from './kernel/runbook-run';
import { podCounts } from './deployment-spec';
import { waitForRollout } from './rollout-wait';
import type { Input, Outcomes, Restored, Rotation } from './rotate-database-password-plans';

// rotateDatabasePassword as runs started before 'rotation-single-plan' do it: four steps, each
// approved on its own. Kept unchanged so those runs replay; new runs use rotate-database-password-once.

const done = (outcome: ChangeOutcome | undefined) => outcome === 'applied' || outcome === 'not-needed';

/** ⚠ a new password, generated in the worker, staged as `<key>_NEXT`; nothing uses it yet. */
export async function stagePasswordStep({ run, input, where, staged, version }: Rotation): Promise<void> {
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
export async function alterRoleStep({ run, input, app, staged }: Rotation): Promise<void> {
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
export async function promotePasswordStep({ run, input, where, staged, previous, version }: Rotation): Promise<void> {
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
export async function restartAppStep(r: Rotation): Promise<void> {
  const { run, input, app, restartedAt } = r;
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
    apply: () => restartAndVerify(r),
  });
}

/** Rotated: every step applied (or already done) in execute mode. */
export const rotatedBy = (input: Input, outcomes: Outcomes) => input.mode === 'execute' && done(outcomes['restart-app']);
/** The step changed something or may have: a failed ALTER ROLE may have happened before its verification failed, so it is undone too (a no-op when the old password still works). */
export const touched = (outcome: ChangeOutcome | undefined) => ['applied', 'failed', 'not-needed'].includes(outcome ?? '');

/**
 * After the role changed and the rotation did not finish: the old password back in PostgreSQL,
 * then in the Secret, then (when the restart failed) the app's pods restarted onto it.
 */
export async function restoreUnfinished(r: Rotation, outcomes: Outcomes): Promise<Restored | undefined> {
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

/** The rolling restart of the app, its rollout waited for and every new pod verified ready; records what it saw in `after`. */
export async function restartAndVerify({ input, app, restartedAt, after }: Rotation): Promise<string> {
  const { namespace, appDeployment } = input;
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
}
