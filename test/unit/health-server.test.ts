import type { State } from '@temporalio/worker';
import { startHealthServer } from '../../workers/health-server';

describe("the worker's health endpoints (deploy/kubernetes probes)", () => {
  test.each<[State, number, number]>([
    ['INITIALIZED', 503, 200],
    ['RUNNING', 200, 200],
    ['DRAINING', 503, 200],
    ['STOPPING', 503, 200],
    ['FAILED', 503, 503],
  ])('%s: /readyz %i, /livez %i', async (state, ready, live) => {
    const server = await startHealthServer('127.0.0.1:0', () => state);
    try {
      const readyz = await fetch(`${server.url}/readyz`);
      expect([readyz.status, await readyz.json()]).toEqual([ready, { ok: ready === 200, state }]);
      expect((await fetch(`${server.url}/livez`)).status).toBe(live);
      expect((await fetch(`${server.url}/`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
