import { changesToName } from '../../common/audit-changes';

const change = (minute: number, resource: string, rollout?: string) => ({ at: `2026-12-07T18:${String(minute).padStart(2, '0')}:00.000Z`, resource, ...(rollout ? { rollout } : {}) });

describe('changesToName: the audit changes a report names', () => {
  test('rollouts first (up to half), then the newest other changes, pods last; returned oldest first', () => {
    const changes = [
      change(1, 'deployments.apps', 'app-1'),
      change(2, 'pods'),
      change(3, 'configmaps'),
      change(4, 'deployments.apps', 'app-2'),
      change(5, 'secrets'),
      change(6, 'pods'),
      change(7, 'deployments.apps'),
    ];
    expect(changesToName(changes, 4).map((c) => `${c.at.slice(14, 16)} ${c.resource}`)).toEqual(['01 deployments.apps', '04 deployments.apps', '05 secrets', '07 deployments.apps']);
    expect(changesToName(changes, 100)).toHaveLength(changes.length);
    expect(changesToName([], 5)).toEqual([]);
  });

  test('many rollouts do not hide the scale just before the incident', () => {
    const rollouts = Array.from({ length: 12 }, (_, i) => change(i, 'deployments.apps', `app-${i}`));
    const named = changesToName([...rollouts, change(30, 'deployments.apps')], 10);
    expect(named).toHaveLength(10);
    expect(named.at(-1)).toEqual(change(30, 'deployments.apps'));
    expect(named.filter((c) => c.rollout).map((c) => c.rollout)).toEqual(['app-3', 'app-4', 'app-5', 'app-6', 'app-7', 'app-8', 'app-9', 'app-10', 'app-11']);
  });
});
