import { CancellationScope, log, workflowInfo } from '@temporalio/workflow';
import { read, undo } from './activity-proxies';
import { errorText } from '../common/failures';
import { versionAnnotation, nextVersionAnnotation } from '../common/inputs/rotate-database-password';
import { rotationStep, type Progress, type Restored, type Rotation } from './rotate-database-password-plans';

// rotateDatabasePassword's restore since 'rotation-single-plan': never cancelled, retried through
// outages, and when it still cannot finish, the people of the run are told which commands do it.

/** Windows of `undo` retries (up to 10 minutes each) before the restore gives up; people are told after the first. */
const windows = 3;

/**
 * After a rotation that did not finish: the old password back in PostgreSQL, then in the Secret,
 * then (when the restart began) the app's pods restarted onto it. Runs in a scope no cancellation
 * reaches. What cannot be restored comes back as `manual`: the commands that do it by hand.
 */
export async function restoreRotation(r: Rotation, progress: Progress, rotated: boolean): Promise<Restored | undefined> {
  if (rotated || r.input.mode !== 'execute' || !progress['stage-password']) return undefined;
  return CancellationScope.nonCancellable(async () => {
    const { input, where, app, previous, version, restartedAt } = r;
    const { namespace, secret, key, role, database, appDeployment } = input;
    const restored: Restored = {};
    // Whether <key> already holds the new password: known from the Secret once read, else from how far the rotation got.
    let promoted: boolean | undefined = progress['update-secret'] === 'done' ? true : progress['update-secret'] ? undefined : false;
    const steps = () => manualSteps(r, progress, { promoted, roleRestored: restored.role === true });
    const gaveUp = async (): Promise<Restored> => {
      const manual = steps();
      await tellPeople(r, manual, true);
      return { ...restored, manual };
    };
    if (progress['alter-role']) {
      restored.role = await untilRestored(r, steps, 'restore-role', `Restore the old password of role ${role}`, async () => {
        // Once promoted, the old password is in <key>_PREVIOUS; before, it is still <key>.
        const state = await undo.describePasswordSecret({ namespace, secret, key });
        promoted = state.version === version;
        const from = promoted ? previous : key;
        return (await undo.setRolePasswordFromSecret({ role, namespace, secret, key: from, database })).message;
      });
      // The Secret must keep naming the password the role has: only reverted once the role is back.
      if (!restored.role) return gaveUp();
    }
    restored.secret = await untilRestored(
      r,
      steps,
      'restore-secret',
      `Put ${where} back as before this rotation`,
      async () => (await undo.revertSecretRotation({ namespace, secret, key, version })).message,
    );
    if (!restored.secret) return gaveUp();
    if (progress['restart-app']) {
      // Pods started by this run's restart hold the new password: replace them with pods reading the old one.
      const againAt = new Date().toISOString();
      restored.appRestarted = false;
      const ok = await untilRestored(r, steps, 'restart-app-again', `Rolling restart of ${app} with the restored password`, async () => {
        const ours = await undo.restartRollout({ namespace, deployment: appDeployment, restartedAt, dryRun: true });
        if (ours.changed) return `${app} never got this run's restart: no pod has the new password, not restarted again`;
        const again = await undo.restartRollout({ namespace, deployment: appDeployment, restartedAt: againAt });
        restored.appRestarted = true;
        return `${again.message} (restartedAt ${againAt}); not waited for`;
      });
      if (!ok) return gaveUp();
    }
    return restored;
  });
}

/** One compensation, tried again window after window; the run's people are told after the first window fails. */
async function untilRestored(r: Rotation, steps: () => string[], stepId: string, title: string, fn: () => Promise<string>): Promise<boolean> {
  for (let window = 1; window <= windows; window++) {
    if (await compensateOnce(r, stepId, window === 1 ? title : `${title} (window ${window} of ${windows})`, fn)) return true;
    if (window === 1) await tellPeople(r, steps(), false);
  }
  return false;
}

/** One window; a lock request that fails (before the kernel records anything) counts as a failed window, not as the end of the restore. */
async function compensateOnce(r: Rotation, stepId: string, title: string, fn: () => Promise<string>): Promise<boolean> {
  try {
    return await r.run.compensate(stepId, title, fn);
  } catch (err) {
    log.warn('a restore window of the rotation could not start', { stepId, error: errorText(err) });
    return false;
  }
}

/** The initiator and the approvers of the plan, by name: they hear what restores consistency by hand. */
async function tellPeople(r: Rotation, manual: string[], gaveUp: boolean): Promise<void> {
  const { run, input, where } = r;
  const people = [...new Set([input.startedBy, ...run.timelineOf(rotationStep).flatMap((e) => (e.event === 'decided' && e.by ? [e.by] : []))])];
  const { workflowId } = workflowInfo();
  const state = gaveUp ? 'the automatic restore gave up' : 'the automatic restore keeps failing and keeps trying';
  try {
    await read.notify({
      title: `rotateDatabasePassword: ${people.join(', ')}: role ${input.role} and ${where} are NOT consistent; ${state}`,
      text: `Restore by hand, in this order:\n${manual.map((c, i) => `${i + 1}. ${c}`).join('\n')}`,
      severity: 'P1',
      fields: { run: workflowId, role: input.role, secret: where, people: people.join(', ') },
      dedupeKey: `${workflowId}/restore/${gaveUp ? 'gave-up' : 'retrying'}`,
    });
  } catch (err) {
    // The report carries the same commands; a lost notification must not stop the restore.
    log.warn('could not tell people how to restore the rotation by hand', { error: errorText(err) });
  }
}

/**
 * The commands that restore consistency by hand, for how far the rotation got; no secret in them.
 * `promoted` undefined: whether `<key>` holds the new password is not known, so the commands say how to tell.
 */
export function manualSteps(r: Rotation, progress: Progress, { promoted, roleRestored }: { promoted: boolean | undefined; roleRestored: boolean }): string[] {
  const { input, staged, previous, version, sealed } = r;
  const { namespace: ns, secret, key, role, database, appDeployment } = input;
  const oldKey = promoted === false ? key : previous;
  if (sealed) return sealedManualSteps(r, progress, { promoted, roleRestored });
  return [
    `read the old password${roleRestored ? ' (the role has it again)' : ''}: kubectl -n ${ns} get secret ${secret} -o jsonpath='{.data.${oldKey}}' | base64 -d${promoted === undefined ? ` (when the annotation ${versionAnnotation} is not ${version}, it is still in ${key} and the next command is not needed)` : ''}`,
    ...(progress['alter-role'] && !roleRestored ? [`set it on the role (psql sends only a SCRAM verifier): psql "$DATABASE_URL" -c '\\password ${role}'`] : []),
    ...(promoted !== false ? [`kubectl -n ${ns} patch secret ${secret} --type=json -p '[{"op":"move","from":"/data/${previous}","path":"/data/${key}"}]'`] : []),
    `kubectl -n ${ns} patch secret ${secret} --type=json -p '[{"op":"remove","path":"/data/${staged}"}]' (fails harmlessly when it is gone)`,
    `kubectl -n ${ns} annotate secret ${secret} ${nextVersionAnnotation}-${promoted !== false ? ` ${versionAnnotation}-` : ''}`,
    ...(progress['restart-app'] ? [`kubectl -n ${ns} rollout restart deployment/${appDeployment}`] : []),
    `check: log in as ${role} to ${database} with the value of ${key} of secrets/${secret}`,
  ];
}

/**
 * The same for a Secret owned by a SealedSecret: the Secret is the controller's output (a patch of it
 * is undone), so the SealedSecret's ciphertexts are moved back and the controller unseals them.
 */
function sealedManualSteps({ input, staged, previous, version, sealed }: Rotation, progress: Progress, { promoted, roleRestored }: { promoted: boolean | undefined; roleRestored: boolean }): string[] {
  const { namespace: ns, secret, key, role, database, appDeployment } = input;
  const oldKey = promoted === false ? key : previous;
  const annotation = (name: string) => `/spec/template/metadata/annotations/${name.replace(/\//g, '~1')}`;
  return [
    `read the old password (unsealed by the controller)${roleRestored ? ' (the role has it again)' : ''}: kubectl -n ${ns} get secret ${secret} -o jsonpath='{.data.${oldKey}}' | base64 -d${promoted === undefined ? ` (when the annotation ${versionAnnotation} is not ${version}, it is still in ${key} and the next command is not needed)` : ''}`,
    ...(progress['alter-role'] && !roleRestored ? [`set it on the role (psql sends only a SCRAM verifier): psql "$DATABASE_URL" -c '\\password ${role}'`] : []),
    ...(promoted !== false
      ? [
          `kubectl -n ${ns} patch sealedsecret ${sealed} --type=json -p '[{"op":"move","from":"/spec/encryptedData/${previous}","path":"/spec/encryptedData/${key}"},{"op":"remove","path":"${annotation(versionAnnotation)}"}]' (never patch secrets/${secret}: the Sealed Secrets controller puts it back)`,
        ]
      : []),
    `kubectl -n ${ns} patch sealedsecret ${sealed} --type=json -p '[{"op":"remove","path":"/spec/encryptedData/${staged}"},{"op":"remove","path":"${annotation(nextVersionAnnotation)}"}]' (fails harmlessly when they are gone)`,
    `wait until the controller unsealed it: kubectl -n ${ns} get sealedsecret ${sealed} -o jsonpath='{.status.conditions[?(@.type=="Synced")].status}' says True`,
    ...(progress['restart-app'] ? [`kubectl -n ${ns} rollout restart deployment/${appDeployment}`] : []),
    `check: log in as ${role} to ${database} with the value of ${key} of secrets/${secret}`,
  ];
}
