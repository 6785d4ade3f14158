import { ApplicationFailure } from '@temporalio/common';
import { readPodLog } from '../../activities/kubernetes-common';

/** The kubelet's in-band answer when the runtime has already removed the container it names (seen on the real node with a crash-looping app). */
const gone = 'unable to retrieve container logs for containerd://702637a5c2e15ac49be4fb840f456c2f3bf982668ef7aac7927b609d1e2d3a50';

describe('readPodLog', () => {
  test('a log is returned as read, even one that mentions the phrase inside other lines', async () => {
    const log = `line 1\n${gone}\nline 3\n`;
    expect(await readPodLog('get logs', async () => ({ body: log }))).toBe(log);
  });

  test("the kubelet's in-band error is read again, and the next answer is the log", async () => {
    const answers = [gone, 'FATAL missing config key PAYMENT_GATEWAY_URL\n'];
    let reads = 0;
    expect(await readPodLog('get logs', async () => ({ body: answers[reads++] }))).toBe(answers[1]);
    expect(reads).toBe(2);
  });

  test('after 3 such answers it fails Transient with a sentence, never returning the error as the log', async () => {
    let reads = 0;
    const failure = await readPodLog('get logs of pods/app-1 (previous)', async () => ({ body: `${gone}\n`, reads: reads++ })).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe('Transient');
    expect((failure as ApplicationFailure).message).toBe(
      'get logs of pods/app-1 (previous): the kubelet could not read the logs of container containerd://702637a5c2e15ac49be4fb840f456c2f3bf982668ef7aac7927b609d1e2d3a50 (its runtime no longer has it; a crash-looping container was replaced)',
    );
    expect(reads).toBe(3);
  });
});
