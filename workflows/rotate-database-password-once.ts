import { CancellationScope, CancelledFailure, isCancellation } from '@temporalio/workflow';
import { read, write } from './activity-proxies';
import { errorText, failure } from '../common/failures';
import { rolesFrom } from '../common/runbook';
import type { ChangeOutcome, ChangeStep } from './kernel/runbook-run';
import { rotationParts, rotationStep, type Outcomes, type Progress, type Restored, type Rotation, type RotationPart } from './rotate-database-password-plans';
import { restartAndVerify } from './rotate-database-password-steps';
import { restoreRotation } from './rotate-database-password-restore';

// rotateDatabasePassword since 'rotation-single-plan': the four parts approved once, as one plan,
// so no approval wait sits between ALTER ROLE and the app's restart.

/**
 * Cancellation from Temporal (the UI's Cancel). Before the apply it cancels the approval wait as
 * usual (nothing changed yet). Once the apply started it interrupts only the part being applied:
 * the kernel (its lock release) and the restore run on in a scope that is not cancelled.
 */
class CancelWatch {
  requested = false;
  private applying: CancellationScope | undefined;
  private started = false;

  constructor(root: CancellationScope, outside: CancellationScope) {
    root.cancelRequested.catch(() => {
      this.requested = true;
      if (this.applying) this.applying.cancel();
      else if (!this.started) outside.cancel();
    });
  }

  async applyWithin<T>(fn: () => Promise<T>): Promise<T> {
    this.started = true;
    this.applying = new CancellationScope();
    try {
      return await this.applying.run(fn);
    } finally {
      this.applying = undefined;
    }
  }
}

/**
 * The rotation as one approved step, then the restore of whatever it left half done, then the
 * report. A run cancelled from Temporal before it finished ends cancelled, after its restore.
 */
export async function rotateOnce<T>(r: Rotation, report: (outcomes: Outcomes, restored: Restored | undefined) => Promise<T>): Promise<T> {
  const root = CancellationScope.current();
  return CancellationScope.nonCancellable(async () => {
    const outside = new CancellationScope();
    const watch = new CancelWatch(root, outside);
    const progress: Progress = {};
    // Cancelled before the apply: nothing was changed, the cancellation ends the run.
    const outcome = await outside.run(() => r.run.change(rotationChange(r, progress, watch)));
    const restored = await restoreRotation(r, progress, outcome === 'applied');
    const result = await report(partOutcomes(r, outcome, progress), restored);
    if (watch.requested && outcome !== 'applied') throw new CancelledFailure(`cancelled from Temporal; ${restored?.manual ? 'NOT restored: see the report' : 'the old password was restored'}`);
    return result;
  });
}

/** Each part's outcome, as the four steps had them: the step's own when nothing was applied, else how far the apply got. */
function partOutcomes({ run }: Rotation, outcome: ChangeOutcome, progress: Progress): Outcomes {
  const started = Object.keys(progress).length > 0 || outcome === 'applied';
  return Object.fromEntries(
    rotationParts.map((part): [string, ChangeOutcome | undefined] => {
      if (!started) return [part, run.outcomeOf(rotationStep)];
      const state = progress[part];
      return [part, state === 'done' ? 'applied' : state === 'attempted' ? 'failed' : undefined];
    }),
  );
}

/** ⚠ the whole rotation as one plan: planned by dry runs (the Secret can be staged, the app restarted), applied part by part. */
function rotationChange(r: Rotation, progress: Progress, watch: CancelWatch): ChangeStep {
  const { input, where, app, staged, previous, version, restartedAt } = r;
  const { namespace, secret, key, role, appDeployment } = input;
  return {
    stepId: rotationStep,
    title: `Rotate the password of PostgreSQL role ${role} through ${where} and restart ${app}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const stage = await read.stageSecretPassword({ namespace, secret, key, version, dryRun: true });
      const restart = await read.restartRollout({ namespace, deployment: appDeployment, restartedAt, dryRun: true });
      // 使用Sealed Secrets: the Secret is the controller's output; the SealedSecret is what changes.
      const sealed = stage.sealedSecret;
      const parts = [
        sealed
          ? `(1) generate a new password (32 random bytes, in the worker), seal it with the Sealed Secrets controller's certificate and stage it as ${staged} of sealedsecrets/${sealed}${stage.replacedVersion ? `, replacing one staged by ${stage.replacedVersion}` : ''}; secrets/${secret} is sealed (owned by the SealedSecret) and never patched: the controller unseals each change into it, waited for`
          : `(1) generate a new password (32 random bytes, in the worker) and stage it as ${staged} of secrets/${secret}${stage.replacedVersion ? `, replacing one staged by ${stage.replacedVersion}` : ''}`,
        `(2) ALTER ROLE ${role} PASSWORD to ${staged} (a SCRAM-SHA-256 verifier computed in the worker): open sessions stay, new logins need the new password until ${app} restarts`,
        sealed
          ? `(3) in sealedsecrets/${sealed}: ${key} <- the sealed ${staged}, ${previous} <- the sealed old ${key}, ${staged} removed (ciphertexts moved, never decrypted); waited for until unsealed`
          : `(3) ${key} <- ${staged}, ${previous} <- the old ${key}, ${staged} removed`,
        `(4) rolling restart of ${app} (restartedAt ${restartedAt}${restart.changed ? '' : ', already set'}), up to ${input.waitTimeoutSeconds}s for every pod to be ready`,
        `if a part after (2) fails or the run is cancelled, the old password is put back in PostgreSQL and the ${sealed ? 'SealedSecret (its previous sealed value, exactly)' : 'Secret'}`,
      ];
      return { summary: parts.join('; '), details: { stage: staged, role, promote: { key, previous }, restartedAt, ...(sealed ? { sealedSecret: sealed } : {}) }, observed: { version }, needed: true };
    },
    apply: () => watch.applyWithin(() => applyParts(r, progress, watch)),
  };
}

/** The four parts in order; a cancellation (Temporal's or the runbook's) stops before the next part. */
async function applyParts(r: Rotation, progress: Progress, watch: CancelWatch): Promise<string> {
  const { run, input, staged, version } = r;
  const { namespace, secret, key, role, database } = input;
  const part = async (name: RotationPart, what: string, fn: () => Promise<string>): Promise<string> => {
    const after = progress['alter-role'] ? ' (after ALTER ROLE: the old password is restored)' : '';
    if (watch.requested || run.cancelled) throw failure('Cancelled', `run cancelled before ${what}${after}`);
    progress[name] = 'attempted';
    try {
      const message = await fn();
      progress[name] = 'done';
      return message;
    } catch (err) {
      if (watch.requested || isCancellation(err)) throw failure('Cancelled', `run cancelled during ${what}${after}`);
      throw failure('CommandFailed', `${what} failed${after}: ${errorText(err)}`);
    }
  };
  const messages = [
    await part('stage-password', `staging ${staged}`, async () => (await write.stageSecretPassword({ namespace, secret, key, version })).message),
    await part('alter-role', `ALTER ROLE ${role}`, async () => (await write.setRolePasswordFromSecret({ role, namespace, secret, key: staged, database })).message),
    await part('update-secret', `promoting ${staged} into ${key}`, async () => (await write.promoteStagedSecretKey({ namespace, secret, key, version })).message),
    await part('restart-app', `the restart of ${r.app}`, () => restartAndVerify(r)),
  ];
  return messages.join('; ');
}
