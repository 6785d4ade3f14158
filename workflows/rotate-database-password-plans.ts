import type { RoleInfo } from '../activities/password-rotation';
import type { z } from 'zod';
import type { rotateDatabasePasswordInput } from '../common/inputs/rotate-database-password';
import type { IncidentFindings, TimelineEntry } from '../common/runbook';
import { planOnly, type ChangeOutcome } from './kernel/runbook-run';

// rotateDatabasePassword's report: what the run did, undid and left, in words.

export interface AppPods {
  /** Live (not terminating) pods of the app, and how many are ready. */
  pods: number;
  readyPods: number;
}

/** What was undone after a failed or unfinished rotation. */
export interface Restored {
  role?: boolean;
  secret?: boolean;
  appRestarted?: boolean;
}

/** What the report speaks of: the run's input and names, what was read before, each step's outcome and what was undone. */
export interface RotationFacts {
  input: z.infer<typeof rotateDatabasePasswordInput>;
  where: string;
  app: string;
  staged: string;
  previous: string;
  restartedAt: string;
  roleBefore: RoleInfo;
  appBefore: AppPods;
  appAfter?: AppPods;
  outcomes: Record<string, ChangeOutcome | undefined>;
  rotated: boolean;
  /** The role's password was or may have been changed (alter-role applied, failed or already done). */
  roleTouched: boolean;
  restored?: Restored;
  /** The failure of the step that failed, from the timeline. */
  failedStep?: TimelineEntry;
}

/** "; undone: role restored, Secret restored, <app> restarted again", or nothing when nothing was undone. */
function undoneText({ restored, app }: RotationFacts): string {
  return restored
    ? `; undone: role ${restored.role === undefined ? 'untouched' : restored.role ? 'restored' : 'NOT restored'}, Secret ${restored.secret === undefined ? 'left as it is' : restored.secret ? 'restored' : 'NOT restored'}${restored.appRestarted ? `, ${app} restarted again` : ''}`
    : '';
}

export function rotationSummary(f: RotationFacts): string {
  const { input, where, app, previous, appAfter } = f;
  const { role, key } = input;
  return input.mode === 'plan'
    ? `plan: rotate the password of role ${role} through ${where} and restart ${app}`
    : f.rotated
      ? `rotated the password of role ${role}: ${key} of ${where} holds it, ${previous} the old one; ${app} restarted, ${appAfter ? `${appAfter.readyPods}/${appAfter.pods}` : '?'} pods ready`
      : `password of role ${role} not rotated (${Object.entries(f.outcomes)
          .map(([id, o]) => `${id} ${o ?? 'not reached'}`)
          .join(', ')})${undoneText(f)}`;
}

export function rotationFindings(f: RotationFacts): IncidentFindings {
  const { input, where, app, staged, previous, restartedAt, roleBefore, appBefore, rotated, restored, failedStep } = f;
  const { role, key } = input;
  const undone = undoneText(f);
  return {
    impact:
      input.mode === 'plan'
        ? `None (plan mode): nothing was generated or changed. Role ${role} has ${roleBefore.sessions} open sessions; ${app} ${appBefore.readyPods}/${appBefore.pods} pods ready.`
        : !f.roleTouched
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
  };
}
