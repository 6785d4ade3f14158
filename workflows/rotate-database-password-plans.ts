import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import type { RoleInfo } from '../activities/password-rotation';
import type { z } from 'zod';
import type { rotateDatabasePasswordInput } from '../common/inputs/rotate-database-password';
import type { IncidentFindings, TimelineEntry } from '../common/runbook';
import { planOnly, type ChangeOutcome, type RunbookRun } from './kernel/runbook-run';

// rotateDatabasePassword's shared shapes and its report: what the run did, undid and left, in words.

export type Input = z.infer<typeof rotateDatabasePasswordInput>;

/** The one step approved since 'rotation-single-plan', and its parts in order (before, each was a step of its own). */
export const rotationStep = 'rotate-password';
export const rotationParts = ['stage-password', 'alter-role', 'update-secret', 'restart-app'] as const;
export type RotationPart = (typeof rotationParts)[number];
/** How far the one approved plan got: a part is `attempted` from its start (it may have changed something), `done` once it returned. */
export type Progress = Partial<Record<RotationPart, 'attempted' | 'done'>>;
/** Each step's outcome; with one approved plan, each part of it (stage-password, alter-role, update-secret, restart-app). */
export type Outcomes = Record<string, ChangeOutcome | undefined>;

/** What one run's steps share: the run, the Secret, role and app it rotates, and the version it decided. */
export interface Rotation {
  run: RunbookRun;
  input: Input;
  /** `<namespace>/<secret>` and `<namespace>/<appDeployment>`, as the texts name them. */
  where: string;
  app: string;
  staged: string;
  previous: string;
  version: string;
  restartedAt: string;
  /** The SealedSecret that owns the Secret (使用Sealed Secrets), from the Secret read before: the commands by hand change it, not the Secret. */
  sealed?: string;
  /** What the restart saw once its rollout completed. */
  after: { rollout?: RolloutStatus & { waitedMs: number }; appAfter?: AppPods };
}

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
  /** When an automatic restore gave up: the commands that restore consistency by hand (no secret in them). */
  manual?: string[];
}

/** What the report speaks of: the run's input and names, what was read before, each step's outcome and what was undone. */
export interface RotationFacts {
  input: Input;
  /** Approved once as one plan (runs since 'rotation-single-plan'), not step by step. */
  singlePlan?: boolean;
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
  const manual = restored?.manual?.length ? ` NOT consistent yet: restore it by hand, in this order: ${restored.manual.map((c, i) => `(${i + 1}) ${c}`).join(' ')}` : '';
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
        ? planOnly(`stage a new password, ALTER ROLE, promote it in the Secret, restart the app; ${f.singlePlan ? 'approved once, as one plan' : 'each step approved'}`)
        : `Not rotated${undone || ': nothing was changed'}.${manual}`,
    prevention:
      'Rotate on a schedule (e.g. quarterly); the rotation is approved as one plan so no approval wait sits between ALTER ROLE and the restart; to have no window at all, alternate two login roles (blue/green) so the old password works until every pod has restarted; keep secrets out of Git (Sealed Secrets, as the manual suggests).',
  };
}
