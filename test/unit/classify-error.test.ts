import { ApplicationFailure } from '@temporalio/common';
import { classified, classifyError } from '../../activities/errors';

/** Node's own error for a refused connection, as pg, the Kubernetes client and fetch's cause carry it. */
const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });

describe('classifyError names the system that cannot be reached', () => {
  test('a refused connection: Transient, and the sentence names the system and keeps the reason', () => {
    const failure = classifyError(refused(), { action: 'ALTER ROLE short_drama_app', system: 'PostgreSQL' }) as ApplicationFailure;
    expect(failure.type).toBe('Transient');
    expect(failure.message).toBe('ALTER ROLE short_drama_app: PostgreSQL is unreachable (connect ECONNREFUSED 127.0.0.1:5432)');
  });

  test("clients that wrap the socket error in words of their own: ioredis' closed connection, the AWS SDK's wrapper", () => {
    expect(classifyError(new Error('Connection is closed.'), { action: 'CONFIG SET maxmemory 1073741824', system: 'Redis' }).message).toBe(
      'CONFIG SET maxmemory 1073741824: Redis is unreachable (Connection is closed.)',
    );
    const aws = Object.assign(new Error('AWS SDK error wrapper for Error: connect ECONNREFUSED 127.0.0.1:8333'), { name: 'Error' });
    expect(classifyError(aws, { action: 'put s3://runbooks/evidence/x.log', system: 'S3' }).message).toBe(
      'put s3://runbooks/evidence/x.log: S3 is unreachable (AWS SDK error wrapper for Error: connect ECONNREFUSED 127.0.0.1:8333)',
    );
  });

  test('fetch: the errno code on its cause', async () => {
    const failure = await classified('patch deployments.apps/web in namespace prod', () => Promise.reject(new TypeError('fetch failed', { cause: refused() })), 'the Kubernetes API').catch(
      (e: unknown) => e as ApplicationFailure,
    );
    expect(failure.type).toBe('Transient');
    expect(failure.message).toMatch(/^patch deployments\.apps\/web in namespace prod: the Kubernetes API is unreachable \(fetch failed/);
  });

  test('an answer from a reachable system keeps its own words, and a call without a system is phrased as before', () => {
    const denied = Object.assign(new Error('permission denied for table sessions'), { code: '42501' });
    const forbidden = classifyError(denied, { action: 'SELECT', system: 'PostgreSQL' }) as ApplicationFailure;
    expect([forbidden.type, forbidden.message]).toEqual(['Forbidden', 'SELECT: permission denied for table sessions (42501)']);
    expect(classifyError(refused(), { action: 'read' }).message).toBe('read: connect ECONNREFUSED 127.0.0.1:5432');
  });
});
