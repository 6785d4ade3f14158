/**
 * Which of the API audit log's changes a report names (审计日志): a person's rollout before the
 * incident is the first thing an SRE looks for, then the other changes to workloads and
 * configuration (a scale, a ConfigMap or Secret written), then pods (which controllers acting as
 * a user, such as the test bed's kwok, also delete).
 */
export interface RankedChange {
  at: string;
  resource: string;
  rollout?: string;
}

const newestFirst = (a: RankedChange, b: RankedChange) => b.at.localeCompare(a.at);

/**
 * At most `count` changes, returned oldest first (a timeline): the newest rollouts, up to half of
 * them, then the newest other changes but to pods, then the rest of the rollouts, then pods. So
 * many rollouts do not hide the scale just before the incident, nor many edits an earlier rollout.
 */
export function changesToName<T extends RankedChange>(changes: readonly T[], count: number): T[] {
  const rollouts = changes.filter((c) => c.rollout).sort(newestFirst);
  const others = changes.filter((c) => !c.rollout && c.resource !== 'pods').sort(newestFirst);
  const pods = changes.filter((c) => !c.rollout && c.resource === 'pods').sort(newestFirst);
  const half = Math.ceil(count / 2);
  const chosen = [...rollouts.slice(0, half), ...others, ...rollouts.slice(half), ...pods].slice(0, count);
  return chosen.sort((a, b) => a.at.localeCompare(b.at));
}
