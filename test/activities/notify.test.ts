import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { testbedEnv } from '../helpers/testbed';

interface Received {
  path: string;
  body: { text: string; blocks: unknown[]; metadata: { event_payload: { dedupeKey: string; severity: string } } };
}

async function received(dedupeKey: string): Promise<Received[]> {
  const all = (await (await fetch(`${testbedEnv().TESTBED_WEBHOOK_URL}/messages`)).json()) as Received[];
  return all.filter((m) => m.body.metadata?.event_payload?.dedupeKey === dedupeKey);
}

describe('notify (real HTTP webhook receiver of the test bed)', () => {
  let harness: ActivityHarness;
  beforeAll(() => {
    harness = activityHarness();
  });
  afterAll(() => harness.close());

  test('posts a Slack-compatible message with the dedupe key', async () => {
    const dedupeKey = `test-${randomUUID()}`;
    const result = await harness.run('notify', { title: 'podCrashLoop needs approval', text: 'raise memory limit', severity: 'P1', fields: { target: 'short-drama-prod/short-drama-app' }, dedupeKey });
    expect(result).toEqual({ sent: true, status: 200, attempt: 1 });
    const messages = await received(dedupeKey);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.path).toBe('/notify');
    expect(messages[0]!.body.text).toBe('[P1] podCrashLoop needs approval');
    expect(JSON.stringify(messages[0]!.body.blocks)).toContain('*target:* short-drama-prod/short-drama-app');
  });

  test('a 5xx answer fails the attempt as Transient, so Temporal retries it; the retry gets through', async () => {
    const dedupeKey = `test-${randomUUID()}`;
    await fetch(`${testbedEnv().TESTBED_WEBHOOK_URL}/fail-next?count=1`, { method: 'POST' });
    const error = await harness.run('notify', { title: 'retry me', dedupeKey }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect((error as ApplicationFailure).type).toBe('Transient');
    expect((error as ApplicationFailure).nonRetryable).toBe(false);
    expect(await received(dedupeKey)).toHaveLength(0);
    expect((await harness.run('notify', { title: 'retry me', dedupeKey })).sent).toBe(true);
    expect(await received(dedupeKey)).toHaveLength(1);
  });

  test('bad notifications are refused; without a webhook nothing is sent and it says why', async () => {
    const error = await harness.run('notify', { title: ' ', dedupeKey: 'x' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((error as ApplicationFailure).type).toBe('InvalidInput');
    const none = activityHarness({ NOTIFY_WEBHOOK_URL: undefined });
    try {
      expect(await none.run('notify', { title: 'nobody listens', dedupeKey: 'y' })).toEqual({ sent: false, reason: 'no webhook configured (NOTIFY_WEBHOOK_URL)', attempt: 1 });
    } finally {
      await none.close();
    }
  });
});
