import { ApplicationFailure } from '@temporalio/common';
import { readPodLog } from '../../activities/kubernetes-common';

/** The kubelet's in-band answer when the runtime has already removed the container it names (seen on the real node with a crash-looping app). */
const gone = 'unable to retrieve container logs for containerd://702637a5c2e15ac49be4fb840f456c2f3bf982668ef7aac7927b609d1e2d3a50';

/** A log endpoint that answers from a list, recording which instance (previous or not) each read asked for. */
function endpoint(answers: { previous: string[]; current?: string[] }) {
  const reads: boolean[] = [];
  const read = async (previous: boolean) => {
    const list = previous ? answers.previous : (answers.current ?? []);
    const n = reads.filter((r) => r === previous).length;
    reads.push(previous);
    return { body: list[Math.min(n, list.length - 1)] };
  };
  return { read, reads };
}

describe('readPodLog', () => {
  test('a log is returned as read, even one that mentions the phrase inside other lines', async () => {
    const log = `line 1\n${gone}\nline 3\n`;
    expect(await readPodLog('get logs', endpoint({ previous: [], current: [log] }).read, { previous: false })).toBe(log);
  });

  test("the kubelet's in-band error is read again, and the next answer is the log", async () => {
    const e = endpoint({ previous: [gone, 'FATAL missing config key PAYMENT_GATEWAY_URL\n'] });
    expect(await readPodLog('get logs', e.read, { previous: true })).toBe('FATAL missing config key PAYMENT_GATEWAY_URL\n');
    expect(e.reads).toEqual([true, true]);
  });

  test('previous of a container whose current instance has ended: the current (newest ended) instance is read instead', async () => {
    const e = endpoint({ previous: [gone], current: ['allocating 600 MiB (ALLOCATE_MEMORY_MIB)\n'] });
    expect(await readPodLog('get logs (previous)', e.read, { previous: true, currentHasEnded: async () => true })).toBe('allocating 600 MiB (ALLOCATE_MEMORY_MIB)\n');
    expect(e.reads).toEqual([true, false]);
  });

  test('after 3 such answers it fails NotFound with a sentence, never returning the error as the log', async () => {
    const e = endpoint({ previous: [`${gone}\n`] });
    const failure = await readPodLog('get logs of pods/app-1 (previous)', e.read, { previous: true, currentHasEnded: async () => false }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('NotFound');
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    expect((failure as ApplicationFailure).message).toBe(
      'get logs of pods/app-1 (previous): the kubelet could not read the logs of container containerd://702637a5c2e15ac49be4fb840f456c2f3bf982668ef7aac7927b609d1e2d3a50: its runtime has already removed it (the kubelet keeps one ended instance of each container)',
    );
    expect(e.reads).toEqual([true, true, true]);
  });
});
