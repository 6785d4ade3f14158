import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Client as PgClient } from 'pg';
import { waitUntil } from '../../scripts/testbed/processes';
import { kubernetesNamespace } from '../../scripts/testbed/kubernetes-seed';

/**
 * The real short-drama-app's pods (scripts/testbed/node/short-drama-app.py), asked directly at their
 * pod addresses (the host routes the node's pod range): `kubectl logs deployment/...` reads one pod,
 * so a line the checklists must find is made on every pod. Each helper makes its lines through the
 * app's own code paths and waits until the kubelet serves them.
 */
export interface AppPods {
  /** `count` logins of unknown users per pod: "WARN login failed for ..." and "POST /login 401 ..." each. */
  failedLogins(count: number): Promise<void>;
  /** `count` requests per pod for project `projectId` with a live session of another user: "GET /api/projects/<id> 403 ...". */
  forbidden(count: number, projectId?: number): Promise<void>;
  /**
   * `count` requests per pod while `projects` is locked by another session, so each waits past the
   * app's statement timeout: "ERROR database timeout after ...ms" and a 504 line each.
   */
  databaseTimeouts(count: number, adminDatabaseUrl: string): Promise<void>;
  /**
   * `perPod` requests at a time on every pod for a project, each sent again when answered, until
   * `stop()`: while `projects` is locked, each holds one of the app's pooled database connections
   * past the statement timeout (a pile-up of slow requests).
   */
  busyRequests(perPod: number): Promise<{ stop(): Promise<void> }>;
}

/**
 * A long migration's lock on short-drama-prod's `projects` (an admin session in a transaction),
 * until `release()`: every request of the app that reads the table waits past its statement
 * timeout and answers 504. A test that dies holding it loses it after `maxSeconds`.
 */
export async function lockProjects(adminDatabaseUrl: string, maxSeconds = 300): Promise<{ release(): Promise<void> }> {
  const holder = new PgClient({ connectionString: adminDatabaseUrl, application_name: 'app-pods-lock-holder' });
  await holder.connect();
  try {
    await holder.query(`SET idle_in_transaction_session_timeout = '${maxSeconds}s'`);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE projects IN ACCESS EXCLUSIVE MODE');
  } catch (err) {
    await holder.end();
    throw err;
  }
  return {
    async release() {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    },
  };
}

const appSelector = 'app=short-drama-app';
/** A seeded live session (user 2, seed-postgres.ts) and a project of user 1: a valid login asking for what is not its own. */
const liveSession = 'live-1';
const otherUsersProject = 200;

export function appPods(kc: KubeConfig, namespace = kubernetesNamespace): AppPods {
  const core = kc.makeApiClient(CoreV1Api);
  /** The Ready pods, at least one. */
  const running = async () => {
    const pods = (await core.listNamespacedPod(namespace, undefined, undefined, undefined, 'status.phase=Running', appSelector)).body.items.filter(
      (p) => p.status?.podIP && !p.metadata?.deletionTimestamp && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    if (pods.length === 0) throw new Error(`no Ready pod of ${namespace}/${appSelector}`);
    return pods;
  };
  const logOf = async (pod: string) => String((await core.readNamespacedPodLog(pod, namespace, 'app')).body);
  /**
   * `request` on every pod, `count` times each (pods in parallel, one request at a time on each), each
   * answered with `status`; then waits until every pod's log has the line it wrote last.
   */
  const onEveryPod = async (count: number, status: number, request: (base: string, i: number) => Promise<Response>, lastLine: RegExp) => {
    const pods = await running();
    await Promise.all(
      pods.map(async (pod) => {
        for (let i = 0; i < count; i++) {
          const response = await request(`http://${pod.status!.podIP}:8000`, i);
          if (response.status !== status) throw new Error(`${pod.metadata!.name} answered ${response.status}, not ${status}: ${await response.text()}`);
        }
      }),
    );
    await waitUntil(`every app pod's log to show ${lastLine}`, async () => (await Promise.all(pods.map((p) => logOf(p.metadata!.name!)))).every((text) => lastLine.test(text)));
  };
  const timeout = () => AbortSignal.timeout(30_000);
  return {
    failedLogins: (count) =>
      onEveryPod(
        count,
        401,
        (base, i) => fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `intruder${i}@example.net` }), signal: timeout() }),
        /POST \/login 401 /,
      ),
    forbidden: (count, projectId = otherUsersProject) =>
      onEveryPod(
        count,
        403,
        (base) => fetch(`${base}/api/projects/${projectId}`, { headers: { authorization: `Bearer ${liveSession}` }, signal: timeout() }),
        new RegExp(`GET /api/projects/${projectId} 403 `),
      ),
    async databaseTimeouts(count, adminDatabaseUrl) {
      const lock = await lockProjects(adminDatabaseUrl);
      try {
        await onEveryPod(count, 504, (base) => fetch(`${base}/api/projects/1`, { headers: { authorization: `Bearer ${liveSession}` }, signal: timeout() }), /GET \/api\/projects\/1 504 /);
      } finally {
        await lock.release();
      }
    },
    async busyRequests(perPod) {
      const pods = await running();
      let stopped = false;
      const loop = async (base: string) => {
        while (!stopped) {
          const sent = Date.now();
          const response = await fetch(`${base}/api/projects/1`, { headers: { authorization: `Bearer ${liveSession}` }, signal: timeout() }).catch(() => undefined);
          await response?.arrayBuffer();
          // Pacing, not waiting for a state: answered at once (nothing locked), a request must not become a busy loop.
          if (Date.now() - sent < 500) await new Promise((resolve) => setTimeout(resolve, 500));
        }
      };
      const loops = pods.flatMap((pod) => Array.from({ length: perPod }, () => loop(`http://${pod.status!.podIP}:8000`)));
      return {
        async stop() {
          stopped = true;
          await Promise.all(loops);
        },
      };
    },
  };
}
