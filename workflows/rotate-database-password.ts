import { workflowInfo } from '@temporalio/workflow';
import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import type { PasswordSecretState, RoleInfo } from '../activities/password-rotation';
import { previousKeyOf, stagedKeyOf, type RotateDatabasePasswordInput } from '../common/inputs/rotate-database-password';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { podCounts } from './deployment-spec';
import { planOnly, RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { waitForRollout } from './rollout-wait';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { failure } from '../common/failures';
import { catalog } from '../common/catalog';

export interface AppPods {
  /** Live (not terminating) pods of the app, and how many are ready. */
  pods: number;
  readyPods: number;
}

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
  /** What was undone after a failed or unfinished rotation. */
  restored?: { role?: boolean; secret?: boolean; appRestarted?: boolean };
}

const done = (outcome: ChangeOutcome | undefined) => outcome === 'applied' || outcome === 'not-needed';

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
  const { namespace, secret, key, role, database, appDeployment } = input;
  const where = `${namespace}/${secret}`;
  const app = `${namespace}/${appDeployment}`;
  const staged = stagedKeyOf(key);
  const previous = previousKeyOf(key);
  const run = await RunbookRun.begin(catalog.rotateDatabasePassword, input, 7);
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

  let rollout: RotateDatabasePasswordResult['rollout'];
  let appAfter: AppPods | undefined;
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
      rollout = await waitForRollout({ namespace, deployment: appDeployment }, input.waitTimeoutSeconds, `restarted ${app}`);
      appAfter = podCounts((await read.listPodSummaries({ namespace, deployment: appDeployment })).pods);
      // The controller's count is authoritative; the pods its selector finds must agree when there are any.
      const ready = Math.min(rollout.readyReplicas, appAfter.pods > 0 ? appAfter.readyPods : rollout.readyReplicas);
      if (ready < rollout.updatedReplicas) {
        throw failure('AppNotReady', `${app}: only ${ready} of ${rollout.updatedReplicas} pods ready after the restart`);
      }
      return `${restarted.changed ? 'restarted' : 'already restarted'} ${app}; rollout complete in ${Math.round(rollout.waitedMs / 1000)}s, ${appAfter.readyPods}/${appAfter.pods} pods ready`;
    },
  });

  const outcomes = Object.fromEntries(['stage-password', 'alter-role', 'update-secret', 'restart-app'].map((id) => [id, run.outcomeOf(id)]));
  const rotated = input.mode === 'execute' && done(outcomes['restart-app']);
  // A failed ALTER ROLE may have happened before its verification failed: undo it too (a no-op when the old password still works).
  const roleTouched = ['applied', 'failed', 'not-needed'].includes(outcomes['alter-role'] ?? '');
  const stagedHere = ['applied', 'failed', 'not-needed'].includes(outcomes['stage-password'] ?? '');
  let restored: RotateDatabasePasswordResult['restored'];
  if (input.mode === 'execute' && stagedHere && !rotated) {
    restored = {};
    let roleBack = true;
    if (roleTouched) {
      roleBack = await run.compensate('restore-role', `Restore the old password of role ${role}`, async () => {
        // Once promoted, the old password is in <key>_PREVIOUS; before, it is still <key>.
        const state = await read.describePasswordSecret({ namespace, secret, key });
        const from = state.version === version ? previous : key;
        return (await write.setRolePasswordFromSecret({ role, namespace, secret, key: from, database })).message;
      });
      restored.role = roleBack;
    }
    // The Secret must keep naming the password the role has: only reverted once the role is back.
    if (roleBack) {
      restored.secret = await run.compensate(
        'restore-secret',
        `Put ${where} back as before this rotation`,
        async () => (await write.revertSecretRotation({ namespace, secret, key, version })).message,
      );
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
    }
  }

  // The last failure of a failed step is its apply (an undelivered notification may come before it).
  const failedStep = run
    .timelineOf()
    .reverse()
    .find((e) => e.event === 'failed' && e.stepId && outcomes[e.stepId] === 'failed');
  const undone = restored
    ? `; undone: role ${restored.role === undefined ? 'untouched' : restored.role ? 'restored' : 'NOT restored'}, Secret ${restored.secret === undefined ? 'left as it is' : restored.secret ? 'restored' : 'NOT restored'}${restored.appRestarted ? `, ${app} restarted again` : ''}`
    : '';
  const summary =
    input.mode === 'plan'
      ? `plan: rotate the password of role ${role} through ${where} and restart ${app}`
      : rotated
        ? `rotated the password of role ${role}: ${key} of ${where} holds it, ${previous} the old one; ${app} restarted, ${appAfter ? `${appAfter.readyPods}/${appAfter.pods}` : '?'} pods ready`
        : `password of role ${role} not rotated (${Object.entries(outcomes)
            .map(([id, o]) => `${id} ${o ?? 'not reached'}`)
            .join(', ')})${undone}`;
  const result = await run.finish(summary, {
    impact:
      input.mode === 'plan'
        ? `None (plan mode): nothing was generated or changed. Role ${role} has ${roleBefore.sessions} open sessions; ${app} ${appBefore.readyPods}/${appBefore.pods} pods ready.`
        : !roleTouched
          ? `Role ${role} was not changed: its password still works.${restored ? ` The rotation did not finish${failedStep ? ` (${failedStep.stepId}: ${failedStep.detail})` : ''}${undone}.` : ''}`
          : `PostgreSQL keeps one password per role: from the ALTER ROLE on, the ${roleBefore.sessions} sessions of role ${role} already open kept working (passwords are checked only at login), but every new login needed the new password, so pods of ${app} with the old one in their environment could not open new connections ${
              rotated
                ? 'until the rolling restart replaced them.'
                : `until the old password was ${restored?.role ? 'restored' : 'restored by hand (the automatic restore failed)'}. The rotation did not finish${failedStep ? ` (${failedStep.stepId}: ${failedStep.detail})` : ''}${undone}.`
            }`,
    rootCause: `Scheduled credential rotation (安全管理 / 定期轮换密钥) of role ${role}, requested by ${input.startedBy}; not a fault.${failedStep ? ` The run failed at ${failedStep.stepId}: ${failedStep.detail}` : ''}`,
    solution: rotated
      ? `New password generated in the worker and staged as ${staged} of ${where}; role ${role} set to it (SCRAM-SHA-256 verifier, so no password reached PostgreSQL's statement log); ${key} now holds it and ${previous} the old one; ${app} restarted (restartedAt ${restartedAt}) and verified ready. The old password no longer works.`
      : input.mode === 'plan'
        ? planOnly('stage a new password, ALTER ROLE, promote it in the Secret, restart the app; each step approved')
        : `Not rotated${undone || ': nothing was changed'}.`,
    prevention:
      'Rotate on a schedule (e.g. quarterly) and approve alter-role, update-secret and restart-app together to keep the window short; to have no window at all, alternate two login roles (blue/green) so the old password works until every pod has restarted; keep secrets out of Git (Sealed Secrets, as the manual suggests).',
  });
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
    roleBefore,
    secretBefore,
    appBefore,
    rotated,
    ...(rollout ? { rollout } : {}),
    ...(appAfter ? { appAfter } : {}),
    ...(restored ? { restored } : {}),
  };
}
