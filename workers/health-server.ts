import { createServer } from 'node:http';
import type { State } from '@temporalio/worker';
import { listenOn, type Listening } from '../config/http-server';

/**
 * The worker's health for Kubernetes probes. /readyz: 200 while the worker polls (RUNNING), 503
 * otherwise, so a pod that is starting or draining after SIGTERM gets no new traffic from rollouts
 * counting on it. /livez: 200 until the worker FAILED, so a draining worker is not killed before
 * its grace time. Neither says anything about the target systems: a database outage must not
 * restart every worker.
 */
export async function startHealthServer(listen: string, state: () => State): Promise<Listening> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://health').pathname;
    const now = state();
    const ok = path === '/readyz' ? now === 'RUNNING' : path === '/livez' ? now !== 'FAILED' : undefined;
    res.writeHead(ok === undefined ? 404 : ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(ok === undefined ? { error: 'GET /readyz or /livez' } : { ok, state: now })}\n`);
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 5_000;
  return listenOn(server, listen);
}
