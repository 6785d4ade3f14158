import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import type { RollbackDeploymentInput } from '../common/inputs/rollback-deployment';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { nothingChanged, planModeImpact, planOnly, RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { waitForRollout, type CompletedRollout } from './rollout-wait';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { catalog } from '../common/catalog';
import {
  age,
  availability,
  describeAvailability,
  imagesText,
  resolveTarget,
  rollbackTarget,
  type AgedHistory,
  type Input,
  type Availability,
  type RevisionInfo,
  type RollbackTarget,
} from './rollback-deployment-plans';

export type { Availability, RevisionInfo, RollbackTarget } from './rollback-deployment-plans';

export interface RollbackDeploymentResult extends RunbookResultBase {
  namespace: string;
  deployment: string;
  /** The revision current when the run started. */
  currentRevision?: number;
  /** The rollout history as read at the start, oldest first. */
  revisions: RevisionInfo[];
  before: Availability;
  /** The rollback as last planned; absent when there is nothing to roll back to. */
  rollback?: RollbackTarget;
  /** The finished rollout (execute mode, once applied). */
  rollout?: RolloutStatus & { waitedMs: number };
  /** State after the rollback (execute mode); available: every pod of the new revision ready. */
  after?: Availability & { available: boolean };
}

/** The rollback step's outcome, what it planned last and the rollout it waited for. */
interface RollbackDone {
  outcome: ChangeOutcome;
  planned?: RollbackTarget;
  rollout?: CompletedRollout;
}

/** The run's steps in order; helpers take a run typed by them, so a step id is checked by tsc. */
const rollbackDeploymentSteps = ['rollout-history', 'availability', 'rollback', 'verify'] as const;
export type RollbackDeploymentStep = (typeof rollbackDeploymentSteps)[number];

/**
 * 快速回滚. What it does: catalog.rollbackDeployment.
 * Planned by a server-side dry run, so a run already on that template has nothing to do (idempotent).
 */
export async function rollbackDeployment(raw: RollbackDeploymentInput): Promise<RollbackDeploymentResult> {
  const input = validateInput(catalog.rollbackDeployment, raw);
  const { namespace, deployment } = input;
  const where = `${namespace}/${deployment}`;
  const run = await RunbookRun.begin(catalog.rollbackDeployment, input, rollbackDeploymentSteps);
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: deployment, what: 'deployment' }] });

  // Diagnosis (read-only).
  const history = await run.read(
    'rollout-history',
    `Rollout history of ${where}`,
    async () => {
      const h = await read.getRolloutHistory({ namespace, deployment });
      const now = Date.now();
      return { ...h, revisions: h.revisions.map((r): RevisionInfo => ({ ...r, ...(r.createdAt ? { ageSeconds: Math.max(0, Math.round((now - Date.parse(r.createdAt)) / 1000)) } : {}) })) };
    },
    (h) =>
      `current revision ${h.currentRevision ?? 'unknown'}; ${h.revisions.map((r) => `${r.revision}: ${imagesText(r.images)}, change-cause ${r.changeCause ?? 'none'}, ${age(r.ageSeconds)}${r.current ? ' (current)' : ''}`).join('; ') || 'no revisions'}`,
  );
  // Refused before anything is asked of anyone: the revision named is not in the history.
  const initialTarget = resolveTarget(input, history);
  const before = await run.read(
    'availability',
    `Pods of ${where} (by its selector)`,
    async () => availability(history, (await read.listPodSummaries({ namespace, deployment })).pods),
    describeAvailability,
  );

  const done = await rollbackStep(run, input);
  const after = await verifyRollback(run, input, done);
  // The step's last plan; a run cancelled before planning shows what the history pointed to.
  const target: RollbackTarget | undefined = done.planned ?? (initialTarget && rollbackTarget(history, initialTarget));
  const result = await reportRollback(run, input, { history, before, target, done, after });
  return {
    ...result,
    namespace,
    deployment,
    ...(history.currentRevision !== undefined ? { currentRevision: history.currentRevision } : {}),
    revisions: history.revisions,
    before,
    ...(target ? { rollback: target } : {}),
    ...(done.rollout ? { rollout: done.rollout } : {}),
    ...(after ? { after } : {}),
  };
}

/** ⚠ back to the resolved revision (planned by a server-side dry run), then waits for the rollout. */
async function rollbackStep(run: RunbookRun<RollbackDeploymentStep>, input: Input): Promise<RollbackDone> {
  const { namespace, deployment, toRevision } = input;
  const where = `${namespace}/${deployment}`;
  let planned: RollbackTarget | undefined;
  let rollout: CompletedRollout | undefined;
  const outcome = await run.change<{ to: { revision: number } }>({
    stepId: 'rollback',
    title: `Roll back ${where} to ${toRevision !== undefined ? `revision ${toRevision}` : 'the previous revision'}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      // Read again each time: right before apply, a rollout since approval changes the plan.
      const h = await read.getRolloutHistory({ namespace, deployment });
      const to = resolveTarget(input, h);
      if (!to) {
        planned = undefined;
        return { summary: `no rollback: ${where} has no revision before revision ${h.currentRevision ?? 'unknown'}`, needed: false };
      }
      const dry = await read.rollbackDeployment({ namespace, deployment, toRevision: to.revision, dryRun: true });
      planned = rollbackTarget(h, to);
      const details = { from: { revision: h.currentRevision, images: planned.fromImages }, to: { revision: to.revision, replicaSet: to.replicaSet, images: to.images } };
      if (!dry.changed) return { summary: `no rollback: ${where} already runs the template of revision ${to.revision} (${imagesText(to.images)})`, details, needed: false };
      return {
        summary: `roll back ${where} from revision ${h.currentRevision ?? '?'} (${imagesText(planned.fromImages)}) to revision ${to.revision} (${imagesText(to.images)})`,
        details,
        needed: true,
      };
    },
    apply: async (approved) => {
      // The revision people approved, by number: "previous" is not resolved again after the patch.
      const target = approved.details!.to.revision;
      const done = await write.rollbackDeployment({ namespace, deployment, toRevision: target });
      rollout = await waitForRollout({ namespace, deployment }, input.waitTimeoutSeconds, `rolled back to revision ${target}`);
      return `${done.changed ? `rolled back to revision ${target} (now revision ${rollout.revision ?? '?'})` : `already on the template of revision ${target}`}; rollout complete in ${Math.round(rollout.waitedMs / 1000)}s (${rollout.readyReplicas} ready, ${rollout.availableReplicas}/${rollout.updatedReplicas} available)`;
    },
  });
  return { outcome, ...(planned ? { planned } : {}), ...(rollout ? { rollout } : {}) };
}

/**
 * After the rollback (execute mode, once the step touched the Deployment): what it promised read
 * back from the cluster, the planned images on the current revision and every pod of it Ready.
 */
async function verifyRollback(run: RunbookRun<RollbackDeploymentStep>, input: Input, done: RollbackDone): Promise<RollbackDeploymentResult['after']> {
  const { namespace, deployment } = input;
  const where = `${namespace}/${deployment}`;
  const { outcome, planned, rollout } = done;
  if (input.mode !== 'execute' || (outcome !== 'applied' && outcome !== 'failed')) return undefined;
  const sameImages = (a: Availability) => planned !== undefined && a.images.join('\n') === planned.toImages.join('\n');
  const allReady = (a: Availability) => a.pods > 0 && a.readyPods === a.pods && a.pods >= (rollout?.updatedReplicas ?? 1);
  return run.verify('verify', `Rollout and pods of ${where} after the rollback`, {
    read: async () => {
      const [h, p] = await Promise.all([read.getRolloutHistory({ namespace, deployment }), read.listPodSummaries({ namespace, deployment })]);
      const a = availability(h, p.pods);
      return { ...a, available: outcome === 'applied' && sameImages(a) && allReady(a) };
    },
    describe: (a) => `${describeAvailability(a)}; ${a.available ? 'available' : 'NOT available'}`,
    // A failed rollback already fails the run: the state after it is only read.
    effects:
      outcome === 'applied' && planned
        ? [
            {
              promised: `${where} on the images of revision ${planned.toRevision} (${imagesText(planned.toImages)})`,
              holds: sameImages,
              found: (a) => `revision ${a.revision ?? '?'} runs ${imagesText(a.images)}`,
            },
            { promised: `every pod of that revision Ready`, holds: allReady, found: (a) => `${a.readyPods} of ${a.pods} pods of revision ${a.revision ?? '?'} are Ready` },
          ]
        : [],
    before: 'same read',
  });
}

/** The incident report: the revision left, the one gone back to, the pods before and after. */
function reportRollback(
  run: RunbookRun<RollbackDeploymentStep>,
  input: Input,
  r: { history: AgedHistory; before: Availability; target?: RollbackTarget; done: RollbackDone; after: RollbackDeploymentResult['after'] },
) {
  const { namespace, deployment } = input;
  const where = `${namespace}/${deployment}`;
  const { history, before, target, after } = r;
  const { outcome: rolledBack, rollout } = r.done;
  const current = history.revisions.find((rev) => rev.revision === history.currentRevision);
  const planText = run.plannedStep('rollback')?.change.summary ?? 'no plan';
  const outcomeText: Record<string, string> = {
    planned: `plan: ${planText}`,
    'not-needed': planText,
    applied: `rolled back from revision ${target?.fromRevision ?? '?'} to the template of revision ${target?.toRevision ?? '?'}${after ? `; now ${describeAvailability(after)}, ${after.available ? 'available' : 'NOT available'}` : ''}`,
    failed: `rollback failed${after ? `; now ${describeAvailability(after)}` : ''}`,
  };
  const solution =
    rolledBack === 'applied'
      ? `${where} rolled back from revision ${target?.fromRevision ?? '?'} (${imagesText(target?.fromImages ?? [])}) to the template of revision ${target?.toRevision} (${imagesText(target?.toImages ?? [])}), now revision ${after?.revision ?? rollout?.revision ?? '?'}; rollout complete in ${rollout ? Math.round(rollout.waitedMs / 1000) : '?'}s; ${after ? `${after.readyPods}/${after.pods} pods ready` : 'not verified'}.`
      : rolledBack === 'planned'
        ? planOnly(planText)
        : `Not rolled back (${rolledBack}): ${planText}.`;
  return run.finish(`${where}: ${outcomeText[rolledBack] ?? `rollback ${rolledBack}: ${planText}`}`, {
    impact:
      input.mode === 'plan'
        ? planModeImpact(`Before: ${describeAvailability(before)}.`)
        : `Before: ${describeAvailability(before)}. ${rolledBack === 'applied' || rolledBack === 'failed' ? `The pods of ${where} were replaced by a rolling update; after: ${after ? describeAvailability(after) : 'unknown'}.` : nothingChanged}`,
    rootCause: `Not diagnosed by this runbook: ${input.startedBy} asked (${input.severity}) to take ${where} off revision ${history.currentRevision ?? '?'} (${imagesText(current?.images ?? [])}, change-cause ${current?.changeCause ?? 'none'}, rolled out ${age(current?.ageSeconds)}). Use podCrashLoop or postIncidentReview for the cause.`,
    solution,
    prevention:
      'Record a change-cause (kubernetes.io/change-cause) with every release so the history says what each revision is; keep revisionHistoryLimit >= 2; canary or staged rollouts with readiness checks; rehearse this rollback monthly (monthlyReview runs it in plan mode).',
  });
}
