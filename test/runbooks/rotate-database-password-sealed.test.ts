import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type V1Secret } from '@kubernetes/client-node';
import type { RunbookClient } from '../../client';
import type { RotateDatabasePasswordResult } from '../../workflows/rotate-database-password';
import { fetchSealingKey, seal, sealingLabel, type SealedSecret } from '../../activities/sealed-secrets';
import { fieldManager } from '../../activities/kubernetes-common';
import { recordHistory } from '../helpers/histories';
import { stopServer, type ServerOutage } from '../helpers/server-outage';
import { waitUntil } from '../../scripts/testbed/processes';
import { adminKubeConfig, layout, scratchNamespace, waitForRollout } from '../helpers/kube-cluster';
import { onKwokNode } from '../../scripts/testbed/kubernetes-seed';
import { sealedSecretsProcess, sealedSecretsServing } from '../../scripts/testbed/sealed-secrets';
import { rotatableLoginRole } from '../helpers/postgres-scratch';
import { pendingOf, readBucketText, terminateRuns } from '../helpers/runbook-runs';
import { logsIn } from '../helpers/postgres-login';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

const key = 'DATABASE_PASSWORD';
const step = 'rotate-password';
const secret = 'app-secrets';
const app = 'short-drama-app';
const group = 'bitnami.com';
const versionAnnotation = 'runbooks.example/password-version';
const nextVersionAnnotation = 'runbooks.example/password-next-version';

/**
 * 定期轮换密钥 where app-secrets is owned by a SealedSecret (使用Sealed Secrets), against the test
 * bed's real sealed-secrets controller, PostgreSQL, Kubernetes API and Temporal server. Each test has
 * a scratch namespace with its own app-secrets (sealed by the test with the controller's certificate,
 * unsealed by the controller), a LOGIN role and an app Deployment on kwok's node.
 */
describe('rotateDatabasePassword on a SealedSecret', () => {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const cleanups: Array<() => Promise<unknown>> = [];
  const workflowIds: string[] = [];
  let outage: ServerOutage | undefined;

  const configFor = (namespace: string, role: string, extra: Record<string, string> = {}) =>
    testbedConfig({
      RUNBOOK_APPROVERS: JSON.stringify([
        { id: 'bob', roles: ['l2'] },
        { id: 'erin', roles: ['l2'] },
      ]),
      ALLOWED_ROTATION_ROLES: role,
      ALLOWED_NAMESPACES: `short-drama-prod,${namespace}`,
      SEALED_SECRETS_UNSEAL_TIMEOUT_SECONDS: '10',
      ...extra,
    });

  interface Fixture {
    namespace: string;
    role: string;
    old: string;
    workflowId: string;
  }

  async function readSealed(namespace: string): Promise<SealedSecret> {
    return (await custom.getNamespacedCustomObject(group, 'v1alpha1', namespace, 'sealedsecrets', secret)).body as SealedSecret;
  }

  async function readSecret(namespace: string): Promise<V1Secret> {
    return (await core.readNamespacedSecret(secret, namespace)).body;
  }

  const plain = (s: V1Secret) => Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

  /** The SealedSecret's status says Synced for its current generation (the controller unsealed it). */
  async function synced(namespace: string): Promise<boolean> {
    const ss = await readSealed(namespace).catch(() => undefined);
    return ss?.status?.observedGeneration === ss?.metadata?.generation && ss?.status?.conditions?.some((c) => c.type === 'Synced' && c.status === 'True') === true;
  }

  /** A scratch namespace with app-secrets sealed by the controller's certificate (unsealed by it), a role, an app on kwok's node. */
  async function fixture(): Promise<Fixture> {
    const ns = await scratchNamespace(kc, 'sealed');
    cleanups.push(ns.remove);
    const namespace = ns.name;
    const { role, password: old, drop } = await rotatableLoginRole('rot_sealed');
    cleanups.push(drop);
    const publicKey = await fetchSealingKey(env.SEALED_SECRETS_CERT_URL);
    const label = sealingLabel(namespace, secret);
    await custom.createNamespacedCustomObject(group, 'v1alpha1', namespace, 'sealedsecrets', {
      apiVersion: `${group}/v1alpha1`,
      kind: 'SealedSecret',
      metadata: { name: secret, namespace },
      spec: {
        encryptedData: { [key]: seal(publicKey, Buffer.from(old), label), OTHER: seal(publicKey, Buffer.from('kept'), label) },
        template: { metadata: { name: secret, namespace, labels: { app: 'short-drama' } }, type: 'Opaque' },
      },
    });
    await waitUntil('app-secrets unsealed by the controller', async () => (await synced(namespace)) && (await readSecret(namespace).catch(() => undefined)) !== undefined, 30_000);
    const labels = { app };
    await apps.createNamespacedDeployment(namespace, {
      metadata: { name: app },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { ...onKwokNode, containers: [{ name: 'app', image: 'short-drama-app:kwok', envFrom: [{ secretRef: { name: secret } }] }] },
        },
      },
    });
    await waitForRollout(kc, namespace, app, 60_000);
    const workflowId = `rotateDatabasePassword/${namespace}/${secret}`;
    workflowIds.push(workflowId, `lock/${namespace}/${secret}`);
    return { namespace, role, old, workflowId };
  }

  async function approveOnce(runbooks: RunbookClient, workflowId: string): Promise<string> {
    const pending = await pendingOf(runbooks, workflowId, step);
    await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: 'rotation, as planned' });
    return pending.change.summary;
  }

  /** A failed run's error with its causes, as one text. */
  const failureText = (err: unknown): string => {
    const texts: string[] = [];
    for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) texts.push(String(e.message));
    return texts.join(' <- ');
  };

  /** Who wrote the Secret: the managers of its managedFields. */
  const managersOf = (s: V1Secret) => [...new Set((s.metadata?.managedFields ?? []).map((m) => m.manager))];

  afterEach(async () => {
    await outage?.restore();
    outage = undefined;
    await terminateRuns(testbedConfig().temporal, workflowIds.splice(0));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  test('execute, approved: sealed with the controller certificate, unsealed by it, the role logs in with the new password, the SealedSecret holds new ciphertexts, the Secret never patched by the worker', async () => {
    const f = await fixture();
    const sealedBefore = await readSealed(f.namespace);
    const { result, plan } = await withRunbooks(configFor(f.namespace, f.role), async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', namespace: f.namespace, role: f.role }, { startedBy: 'erin' });
      expect(workflowId).toBe(f.workflowId);
      const plan = await approveOnce(runbooks, workflowId);
      const finished = await runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'sealed-secret');
      return { result: finished, plan };
    });
    expect(plan).toContain(`seal it with the Sealed Secrets controller's certificate and stage it as ${key}_NEXT of sealedsecrets/${secret}`);
    expect(plan).toContain(`secrets/${secret} is sealed (owned by the SealedSecret) and never patched`);
    expect(result.outcome).toBe('completed');
    expect(result.rotated).toBe(true);
    expect(result.secretBefore).toMatchObject({ sealedSecret: secret, keys: [key, 'OTHER'] });

    const secretAfter = await readSecret(f.namespace);
    const data = plain(secretAfter);
    const next = data[key]!;
    expect(next).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(data).toEqual({ [key]: next, [`${key}_PREVIOUS`]: f.old, OTHER: 'kept' });
    expect(secretAfter.metadata?.annotations?.[versionAnnotation]).toBe(result.version);
    expect(await logsIn(f.role, next)).toBe(true);
    expect(await logsIn(f.role, f.old)).toBe(false);

    // The SealedSecret: new ciphertext in <key>, the old one moved to <key>_PREVIOUS as it was, OTHER untouched.
    const sealedAfter = await readSealed(f.namespace);
    const before = sealedBefore.spec!.encryptedData!;
    const after = sealedAfter.spec!.encryptedData!;
    expect(Object.keys(after).sort()).toEqual([key, `${key}_PREVIOUS`, 'OTHER']);
    expect(after[`${key}_PREVIOUS`]).toBe(before[key]);
    expect(after.OTHER).toBe(before.OTHER);
    expect(after[key]).not.toBe(before[key]);
    expect(sealedAfter.spec?.template?.metadata?.annotations?.[versionAnnotation]).toBe(result.version);

    // Only the controller ever wrote the Secret; the worker wrote the SealedSecret.
    expect(managersOf(secretAfter)).not.toContain(fieldManager);
    expect(managersOf(secretAfter)).toHaveLength(1);
    expect(managersOf(sealedAfter as V1Secret)).toContain(fieldManager);

    // The restart came after the last unseal: the Deployment's restart patch is no older than the Secret's last write.
    const secretWritten = Math.max(...(secretAfter.metadata?.managedFields ?? []).map((m) => new Date(m.time!).getTime()));
    const deployment = (await apps.readNamespacedDeployment(app, f.namespace)).body;
    expect(deployment.spec?.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBe(result.restartedAt);
    const restartWritten = Math.max(...(deployment.metadata?.managedFields ?? []).filter((m) => m.manager === fieldManager).map((m) => new Date(m.time!).getTime()));
    expect(restartWritten).toBeGreaterThanOrEqual(secretWritten);

    const markdown = await readBucketText(result.report!.markdownKey);
    for (const text of [markdown, JSON.stringify(result)]) {
      expect(text).not.toContain(next);
      expect(text).not.toContain(f.old);
      expect(text).not.toContain(after[key]!.slice(0, 40));
    }
  });

  test('refused: a certificate URL serving an EC certificate (before approval), one serving an RSA certificate that is not the controller’s (its unseal fails, the staged value is dropped), a namespace not allowlisted; nothing changed', async () => {
    const f = await fixture();
    const dir = mkdtempSync(join(tmpdir(), 'sealed-cert-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cert = (name: string, keyArgs: string[]) => {
      execFileSync('openssl', ['req', '-x509', '-nodes', '-days', '30', '-subj', `/CN=${name}`, ...keyArgs, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)], {
        stdio: 'ignore',
      });
      return readFileSync(join(dir, `${name}.pem`), 'utf8');
    };
    const served: Record<string, string> = { '/ec.pem': cert('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']), '/rsa.pem': cert('rsa', ['-newkey', 'rsa:2048']) };
    const server: Server = createServer((req, res) => res.end(served[req.url ?? ''] ?? ''));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const sealedBefore = await readSealed(f.namespace);
    const secretBefore = plain(await readSecret(f.namespace));

    // Not RSA: refused by the plan's dry run, before anyone approves.
    const ec = await withRunbooks(configFor(f.namespace, f.role, { SEALED_SECRETS_CERT_URL: `${base}/ec.pem` }), async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', namespace: f.namespace, role: f.role }, { startedBy: 'erin' });
      return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId).catch((err: Error) => err);
    });
    expect(failureText(ec)).toMatch(/the Sealed Secrets controller certificate from \S+ holds an EC key, not RSA: it is not a sealing certificate, nothing was sealed/);
    expect((await readSealed(f.namespace)).metadata?.generation).toBe(sealedBefore.metadata?.generation);
    await terminateRuns(testbedConfig().temporal, [f.workflowId, `lock/${f.namespace}/${secret}`]);

    // RSA, but not the controller's: sealed, the controller cannot decrypt it (Synced=False), the staged value is dropped again.
    const rsa = await withRunbooks(configFor(f.namespace, f.role, { SEALED_SECRETS_CERT_URL: `${base}/rsa.pem` }), async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', namespace: f.namespace, role: f.role }, { startedBy: 'erin' });
      await approveOnce(runbooks, workflowId);
      return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
    });
    expect(rsa.outcome).toBe('failed');
    expect(rsa.timeline.filter((e) => e.event === 'failed').map((e) => e.detail)).toEqual([
      expect.stringMatching(/staging DATABASE_PASSWORD_NEXT failed: the Sealed Secrets controller could not unseal sealedsecrets\/app-secrets .*no key could decrypt secret.*not the controller's/),
    ]);
    expect(rsa.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['restore-secret']);
    const sealedAfter = await readSealed(f.namespace);
    expect(sealedAfter.spec?.encryptedData).toEqual(sealedBefore.spec?.encryptedData);
    expect(sealedAfter.spec?.template?.metadata?.annotations ?? {}).toEqual(sealedBefore.spec?.template?.metadata?.annotations ?? {});
    expect(await synced(f.namespace)).toBe(true);
    expect(plain(await readSecret(f.namespace))).toEqual(secretBefore);
    expect(await logsIn(f.role, f.old)).toBe(true);

    // A SealedSecret in a namespace outside the allowlist: refused before anything is read.
    const outside = await withRunbooks(configFor('short-drama-prod', f.role), async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', namespace: f.namespace, role: f.role }, { startedBy: 'erin' });
      return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId).catch((err: Error) => err);
    });
    expect(failureText(outside)).toMatch(new RegExp(`namespace ${f.namespace} is not (in the allowlist|allowed)`));
    expect((await readSealed(f.namespace)).metadata?.generation).toBe(sealedAfter.metadata?.generation);
  });

  test('the controller stopped after the seal: the wait fails naming the Sealed Secrets controller, the staged value is dropped from the SealedSecret, and once the controller is back the Secret is as before', async () => {
    const f = await fixture();
    const sealedBefore = await readSealed(f.namespace);
    const secretBefore = plain(await readSecret(f.namespace));
    // The controller's own certificate, served from elsewhere (as `kubeseal --cert <url>` can take it), so sealing works while the controller is down.
    const pem = await (await fetch(env.SEALED_SECRETS_CERT_URL!)).text();
    const server: Server = createServer((_req, res) => res.end(pem));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const certUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/cert.pem`;
    const result = await withRunbooks(configFor(f.namespace, f.role, { SEALED_SECRETS_UNSEAL_TIMEOUT_SECONDS: '3', SEALED_SECRETS_CERT_URL: certUrl }), async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', namespace: f.namespace, role: f.role }, { startedBy: 'erin' });
      await pendingOf(runbooks, workflowId, step);
      outage = await stopServer(sealedSecretsProcess, () => sealedSecretsServing(layout));
      await approveOnce(runbooks, workflowId);
      // The sealed value reached the SealedSecret; the controller is not there to unseal it.
      await waitUntil('the new password sealed into the SealedSecret', async () => (await readSealed(f.namespace)).spec?.encryptedData?.[`${key}_NEXT`] !== undefined, 30_000);
      // The restore's first attempts fail the same way; the controller comes back while it retries.
      await waitUntil('the restore dropped the staged value', async () => (await readSealed(f.namespace)).spec?.encryptedData?.[`${key}_NEXT`] === undefined, 60_000);
      await outage.restore();
      return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
    });
    expect(result.outcome).toBe('failed');
    expect(result.rotated).toBe(false);
    expect(result.timeline.filter((e) => e.event === 'failed' && e.stepId === step).map((e) => e.detail)).toEqual([
      expect.stringMatching(/staging DATABASE_PASSWORD_NEXT failed: the Sealed Secrets controller did not unseal sealedsecrets\/app-secrets in namespace \S+ within 3s .*is the controller running\?/),
    ]);
    expect(result.restored).toMatchObject({ secret: true });
    const sealedAfter = await readSealed(f.namespace);
    expect(sealedAfter.spec?.encryptedData).toEqual(sealedBefore.spec?.encryptedData);
    expect(sealedAfter.spec?.template?.metadata?.annotations?.[nextVersionAnnotation]).toBeUndefined();
    await waitUntil('the controller unsealed the restored SealedSecret', () => synced(f.namespace), 30_000);
    expect(plain(await readSecret(f.namespace))).toEqual(secretBefore);
    expect(await logsIn(f.role, f.old)).toBe(true);
  });
});
