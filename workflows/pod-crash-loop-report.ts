import type { PodCrashCause } from './pod-crash-loop-diagnosis';
import type { CrashLoop, PodCrashLoopResult } from './pod-crash-loop';

/** podCrashLoop's incident report: the failing pod, the root cause and the solution by cause. */

/** The failing pod as the report names it. */
function podTextOf(c: CrashLoop): string {
  const { failing, failingContainer, container } = c;
  return failing
    ? `pod ${failing.name} container ${container} (${failingContainer?.waitingReason ?? failing.phase}, ${failing.restarts} restarts, last ${failingContainer?.lastTerminationReason ?? 'none'}${failingContainer?.lastExitCode !== undefined ? ` exit ${failingContainer.lastExitCode}` : ''})`
    : 'no failing pod';
}

/** The incident report's root cause, by cause. */
function rootCauses(c: CrashLoop, podText: string): Record<PodCrashCause, string> {
  const { namespace, deployment, pods, history, limit, missing, errorLines, rolloutAgeMinutes, failingContainer } = c;
  return {
    'oom-killed': `OOMKilled: ${podText} was killed at its memory limit ${limit ?? '(none)'}.`,
    'code-error': `Code error: ${podText} crashes since revision ${history.currentRevision} (rolled out ${rolloutAgeMinutes !== undefined ? `${Math.round(rolloutAgeMinutes)} min` : '?'} ago); the previous container logged: ${errorLines.slice(-3).join(' | ')}`,
    'config-error': `Config error: ${podText}; missing ${missing ?? 'configuration'}${failingContainer?.waitingReason ? ` (${failingContainer.waitingReason})` : ''}.`,
    'unknown-crash': `Unclassified crash: ${podText}; ${errorLines.length} error lines in the previous logs, newest rollout ${rolloutAgeMinutes !== undefined ? `${Math.round(rolloutAgeMinutes)} min` : 'of unknown age'} ago.`,
    healthy: `All ${pods.counts.total} pods of ${namespace}/${deployment} are healthy (${pods.counts.ready} ready).`,
  };
}

/** The incident report's solution, by cause: what the steps did or why they did not. */
function solutions(c: CrashLoop): Record<PodCrashCause, string> {
  const { run, namespace, deployment, container, limit, target, history, previous, missing } = c;
  return {
    'oom-killed': run.applied('raise-memory-limit')
      ? `Memory limit of ${namespace}/${deployment} container ${container} raised ${limit} -> ${target}.`
      : `Memory limit not changed (${run.outcomeOf('raise-memory-limit')}; ${limit ?? 'none'}${target ? `, proposed ${target}` : ''}).`,
    'code-error': run.applied('rollback')
      ? `${namespace}/${deployment} rolled back from revision ${history.currentRevision} to revision ${previous?.revision}.`
      : `Not rolled back (${run.outcomeOf('rollback')}${previous ? `; proposed revision ${previous.revision}` : '; no previous revision'}).`,
    'config-error': `No automatic change: create the missing ${missing ?? 'ConfigMap/Secret key'} and the pods start on their own.`,
    'unknown-crash': 'No automatic change: the cause needs a person (see the events and previous logs in the evidence).',
    healthy: 'Nothing to do.',
  };
}

/** The incident report and the result. */
export async function reportCrashLoop(c: CrashLoop, after: PodCrashLoopResult['after']): Promise<PodCrashLoopResult> {
  const { run, input, namespace, deployment, container, cause, failing, pods, usage, missing, limit, target, history, previous, raiseWanted, rollbackWanted } = c;
  const podText = podTextOf(c);
  const result = await run.finish(
    `${cause}${failing ? ` (${podText})` : ''}${missing ? `; missing ${missing}` : ''}${after ? `; after: ${after.ready}/${after.pods} ready, ${after.crashLooping} crash-looping` : ''}`,
    {
      impact: failing
        ? `${pods.counts.notReady} of ${pods.counts.total} pods of ${namespace}/${deployment} not ready (${pods.counts.crashLooping} in CrashLoopBackOff); usage: ${usage.available ? 'see evidence' : `metrics unavailable (${usage.reason})`}.`
        : `None: ${pods.counts.ready} of ${pods.counts.total} pods ready.`,
      rootCause: rootCauses(c, podText)[cause],
      solution: solutions(c)[cause],
      prevention:
        cause === 'oom-killed'
          ? `Size memory limits from observed peaks (alert at 85% of the limit), and profile the app for leaks; the cap is ${input.maxMemoryLimit}.`
          : cause === 'code-error'
            ? 'Canary or staged rollouts with readiness checks and automatic rollback on crash loops; test before release.'
            : cause === 'config-error'
              ? 'Validate ConfigMaps and Secrets before rollout (required keys checked in CI); use optional: false references deliberately.'
              : 'Keep liveness/readiness probes and alerts on restarts in place.',
    },
  );
  return {
    ...result,
    cause,
    ...(failing ? { pod: failing.name } : {}),
    container,
    ...(missing ? { missing } : {}),
    ...(limit ? { memoryLimit: limit } : {}),
    ...(raiseWanted && target ? { targetMemoryLimit: target } : {}),
    ...(history.currentRevision !== undefined ? { currentRevision: history.currentRevision } : {}),
    ...(rollbackWanted ? { rollbackToRevision: previous!.revision } : {}),
    ...(after ? { after } : {}),
  };
}
