import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { errorText } from '../../common/failures';

describe('errorText: any error as one line', () => {
  test("an activity failure shows the cause that says what went wrong, without Temporal's wrapping", () => {
    const cause = ApplicationFailure.create({ type: 'Refused', message: 'namespace kube-system is never touched by runbooks' });
    const err = new ActivityFailure('Activity task failed', 'assertTargetsAllowed', '1', RetryState.NON_RETRYABLE_FAILURE, undefined, cause);
    expect(errorText(err)).toBe('namespace kube-system is never touched by runbooks');
  });

  test("a system error's code is added when the message lacks it, also on a cause (fetch)", () => {
    const refused = Object.assign(new Error('connect to 127.0.0.1:1 failed'), { code: 'ECONNREFUSED' });
    expect(errorText(new TypeError('fetch failed', { cause: refused }))).toBe('fetch failed: connect to 127.0.0.1:1 failed (ECONNREFUSED)');
  });

  test("an error from another realm (what jest gives Node's fetch) is read by its shape", () => {
    const crossRealm = { name: 'TypeError', message: 'fetch failed', cause: { message: 'connect to 127.0.0.1:1 failed', code: 'ECONNREFUSED' } };
    expect(errorText(crossRealm)).toBe('fetch failed: connect to 127.0.0.1:1 failed (ECONNREFUSED)');
  });

  test('credentials in URLs are masked, lines joined, length bounded', () => {
    const err = new Error('could not reach postgres://app:s3cret@db:5432/app\n  at connect\n');
    expect(errorText(err)).toBe('could not reach postgres://***@db:5432/app; at connect');
    expect(errorText(new Error('x'.repeat(2000)))).toHaveLength(500);
  });

  test('causes stop after two, repeats are not said twice, anything else is a string', () => {
    const deep = new Error('a', { cause: new Error('b', { cause: new Error('c', { cause: new Error('d') }) }) });
    expect(errorText(deep)).toBe('a: b: c');
    expect(errorText(new Error('same', { cause: new Error('same') }))).toBe('same');
    expect(errorText('plain')).toBe('plain');
    expect(errorText(undefined)).toBe('undefined');
  });
});
