import type { V1ContainerStatus } from '@kubernetes/client-node';
import { restartingAfterFailures } from '../../activities/kubernetes-pods';

const now = Date.parse('2026-12-07T10:00:00Z');
const secondsAgo = (s: number) => new Date(now - s * 1000);
const status = (fields: Partial<V1ContainerStatus>): V1ContainerStatus => ({ name: 'app', image: 'app', imageID: '', ready: false, restartCount: 3, ...fields });
const oomKilled = { terminated: { exitCode: 137, reason: 'OOMKilled' } };

describe('restartingAfterFailures: a crash loop wherever the kubelet is in its cycle', () => {
  test.each([
    ['waiting in CrashLoopBackOff', status({ state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: oomKilled }), true],
    ['just died, before the back-off shows', status({ state: oomKilled }), true],
    ['just restarted after a failure, not ready yet', status({ state: { running: { startedAt: secondsAgo(2) } }, lastState: oomKilled }), true],
    ['running for minutes since its last failure', status({ state: { running: { startedAt: secondsAgo(300) } }, lastState: oomKilled }), false],
    ['ready again after a failure', status({ ready: true, state: { running: { startedAt: secondsAgo(2) } }, lastState: oomKilled }), false],
    ['never restarted (its first death)', status({ restartCount: 0, state: oomKilled }), false],
    ['restarted after exiting 0', status({ state: { running: { startedAt: secondsAgo(2) } }, lastState: { terminated: { exitCode: 0, reason: 'Completed' } } }), false],
    ['waiting for another reason', status({ restartCount: 0, state: { waiting: { reason: 'CreateContainerConfigError' } } }), false],
  ])('%s: %s', (_what, container, expected) => {
    expect(restartingAfterFailures(container, now)).toBe(expected);
  });
});
