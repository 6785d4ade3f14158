import { activitySummary } from '../../workflows/kernel/activity-summary';

describe('activitySummary: what an activity acts on, for the UI', () => {
  test('a Kubernetes change names namespace/object and the new size', () => {
    expect(activitySummary('scaleDeployment', [{ namespace: 'short-drama-prod', deployment: 'short-drama-app', replicas: 10 }])).toBe('scaleDeployment short-drama-prod/short-drama-app → 10 replicas');
    expect(activitySummary('restartRollout', [{ namespace: 'short-drama-prod', deployment: 'postgres', restartedAt: '2026-12-06T00:00:00Z', dryRun: true }])).toBe(
      'restartRollout short-drama-prod/postgres (dry run)',
    );
  });

  test('databases, Redis keys and plain targets are named; unknown inputs give the type alone; long lines are cut', () => {
    expect(activitySummary('terminateIdleConnections', [{ database: 'short_drama', olderThanSeconds: 300 }])).toBe('terminateIdleConnections database short_drama');
    expect(activitySummary('scanKeys', [{ pattern: 'session:*' }])).toBe('scanKeys pattern session:*');
    expect(activitySummary('readTestTarget', ['cli/x'])).toBe('readTestTarget cli/x');
    expect(activitySummary('loadApprovalPolicy', [])).toBe('loadApprovalPolicy');
    expect(activitySummary('deleteKeys', [{ key: 'k'.repeat(500) }])).toHaveLength(120);
  });
});
