import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  Metrics,
  NetworkingV1Api,
  PatchUtils,
  StorageV1Api,
  VersionApi,
  type V1Deployment,
  type V1Status,
} from '@kubernetes/client-node';
import { appTlsCertificate, certManagerNamespace, clusterIssuer, clusterIssuerCaSecret, ingressAddress, onKwokNode, publishIngressAddress } from '../scripts/testbed/kubernetes-seed';
import { certManager, daysLeft } from './helpers/cert-manager';
import { waitUntil } from '../scripts/testbed/processes';
import { auditLogPath } from '../scripts/testbed/kubernetes-server';
import { adminKubeConfig, kubernetesNamespace, kwokNode, layout, readonlyKubeConfig, scratchNamespace, statusOf, waitForRollout } from './helpers/kube-cluster';
import { newRolloutRevision } from './helpers/kube-objects';
import { readyPods } from './helpers/kube-pods';
import { parseQuantity } from '../common/quantity';
import { nodeNames } from '../scripts/testbed/node/node-names';

const ns = kubernetesNamespace;
const strategic = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_STRATEGIC_MERGE_PATCH } };

function testDeployment(name: string, replicas: number, env = 'one'): V1Deployment {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          ...onKwokNode,
          containers: [{ name: 'web', image: 'registry.invalid/web:1', env: [{ name: 'FLAVOUR', value: env }], resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
        },
      },
    },
  };
}

/** Proof that the Kubernetes part of the test bed is a real control plane (apiserver, controllers, scheduler, kwok, metrics-server). */
describe('Kubernetes test bed', () => {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  let scratch: { name: string; remove: () => Promise<void> };

  beforeAll(async () => {
    scratch = await scratchNamespace(kc);
    await waitUntil(`ServiceAccount ${scratch.name}/default`, async () => {
      const { body } = await core.listNamespacedServiceAccount(scratch.name);
      return body.items.some((sa) => sa.metadata?.name === 'default');
    });
  });
  afterAll(async () => {
    await scratch?.remove();
  });

  test('the apiserver is kube-apiserver v1.37 built from source', async () => {
    const { body } = await kc.makeApiClient(VersionApi).getCode();
    expect(body.gitVersion).toBe('v1.37.2');
    expect(body.minor).toBe('37');
  });

  test('a Deployment gets ReplicaSets with revision annotations, and Running/Ready pods on the kwok node', async () => {
    const name = 'web';
    await apps.createNamespacedDeployment(scratch.name, testDeployment(name, 3));
    await waitForRollout(kc, scratch.name, name);
    const pods = await readyPods(kc, scratch.name, `app=${name}`, 3);
    for (const pod of pods) {
      expect(pod.spec?.nodeName).toBe(kwokNode);
      // kwok's simulated pods take addresses in 198.18.128.0/17 (scripts/testbed/node/node-names.ts, kwokPodCidr).
      expect(pod.status?.podIP).toMatch(/^198\.18\.(12[89]|1[3-9]\d|2[0-5]\d)\.\d+$/);
      expect(pod.status?.containerStatuses?.[0]).toEqual(expect.objectContaining({ name: 'web', ready: true, state: { running: expect.anything() } }));
    }
    // A template change is a second revision with a ReplicaSet of its own.
    await apps.patchNamespacedDeployment(
      name,
      scratch.name,
      { spec: { template: { spec: { containers: [{ name: 'web', env: [{ name: 'FLAVOUR', value: 'two' }] }] } } } },
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      strategic,
    );
    await waitForRollout(kc, scratch.name, name);
    const { body } = await apps.listNamespacedReplicaSet(scratch.name, undefined, undefined, undefined, undefined, `app=${name}`);
    const revisions = body.items.map((rs) => ({
      revision: rs.metadata?.annotations?.['deployment.kubernetes.io/revision'],
      replicas: rs.spec?.replicas,
      owner: rs.metadata?.ownerReferences?.[0]?.name,
    }));
    expect(revisions.sort((a, b) => Number(a.revision) - Number(b.revision))).toEqual([
      { revision: '1', replicas: 0, owner: name },
      { revision: '2', replicas: 3, owner: name },
    ]);
    // The test helper makes a third one.
    expect(await newRolloutRevision(kc, scratch.name, name)).toBe(3);
  });

  test("kwok's node is tainted: a pod that does not ask for it never lands there", async () => {
    await core.createNamespacedPod(scratch.name, { metadata: { name: 'stray' }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } });
    let condition: { reason?: string; message?: string } | undefined;
    await waitUntil(
      'the scheduler to give up on the stray pod',
      async () => {
        const { body } = await core.readNamespacedPod('stray', scratch.name);
        condition = body.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
        return condition !== undefined;
      },
      30_000,
    );
    expect(condition!.reason).toBe('Unschedulable');
    expect(condition!.message).toMatch(/node\(s\) had untolerated taint/);
    expect((await core.readNode(kwokNode)).body.spec?.taints).toEqual([{ key: 'runbook.testbed/kwok', value: 'true', effect: 'NoSchedule' }]);
    expect((await core.readNamespacedPod('stray', scratch.name)).body.spec?.nodeName).toBeUndefined();
  });

  test("readNamespacedPodLog returns the real app's container log", async () => {
    // short-drama-prod's app runs on the real node: its log is what the container wrote.
    const [seeded] = await readyPods(kc, ns, 'app=short-drama-app', 2);
    const current = await core.readNamespacedPodLog(seeded!.metadata!.name!, ns, 'app');
    expect(current.body).toMatch(/^short-drama-app \S+ listening on :8000$/m);
  });

  test('exec runs the command in the real postgres container and returns its output', async () => {
    const [pod] = await readyPods(kc, ns, 'app=postgres', 1);
    let stdout = '';
    let stderr = '';
    const sink = (append: (text: string) => void) =>
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          append(chunk.toString());
          done();
        },
      });
    const status = await new Promise<V1Status>((resolve, reject) => {
      new Exec(kc)
        .exec(
          ns,
          pod!.metadata!.name!,
          'postgres',
          ['sh', '-c', 'echo "as $(id -un)"; cat /var/lib/postgresql/data/pgdata/PG_VERSION; echo oops >&2'],
          sink((t) => (stdout += t)),
          sink((t) => (stderr += t)),
          null,
          false,
          resolve,
        )
        .catch(reject);
    });
    expect(status.status).toBe('Success');
    expect(stdout).toBe('as postgres\n15\n');
    expect(stderr).toBe('oops\n');
  });

  test("the apiserver audits with deploy/kubernetes/audit-policy.yaml: a Secret at Metadata (no value), a pod with its bodies, a Deployment's patch, a Service not at all", async () => {
    const value = `audit-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    const name = `audit-${Math.random().toString(36).slice(2, 8)}`;
    await core.createNamespacedSecret(scratch.name, { metadata: { name }, stringData: { TOKEN: value } });
    await core.createNamespacedService(scratch.name, { metadata: { name }, spec: { ports: [{ port: 80 }], selector: { app: name } } });
    await apps.createNamespacedDeployment(scratch.name, testDeployment(name, 0));
    await apps.patchNamespacedDeployment(name, scratch.name, { metadata: { labels: { audited: 'yes' } } }, undefined, undefined, undefined, undefined, undefined, strategic);
    await core.createNamespacedPod(scratch.name, { metadata: { name }, spec: { ...onKwokNode, containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } });
    type Event = { stage: string; level: string; verb: string; objectRef?: { resource?: string; namespace?: string; name?: string }; requestObject?: unknown; responseObject?: unknown };
    const ours = () =>
      readFileSync(auditLogPath(layout), 'utf8')
        .split('\n')
        .filter((line) => line.includes(`"namespace":"${scratch.name}"`))
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as Event];
          } catch {
            return [];
          }
        })
        .filter((e) => e.stage === 'ResponseComplete' && e.objectRef?.name === name && e.verb !== 'get');
    // An event is written once its request completed: the pod's creation, the last request, is waited for.
    await waitUntil('the pod creation in the audit log', () => ours().some((e) => e.objectRef?.resource === 'pods' && e.verb === 'create'), 30_000);
    const events = ours();
    const of = (resource: string, verb: string) => events.find((e) => e.objectRef?.resource === resource && e.verb === verb);
    expect(of('secrets', 'create')).toMatchObject({ level: 'Metadata' });
    expect(of('secrets', 'create')!.requestObject).toBeUndefined();
    expect(of('deployments', 'patch')).toMatchObject({ level: 'Metadata' });
    expect(of('pods', 'create')).toMatchObject({ level: 'RequestResponse', requestObject: expect.objectContaining({ kind: 'Pod' }), responseObject: expect.objectContaining({ kind: 'Pod' }) });
    expect(events.filter((e) => e.objectRef?.resource === 'services')).toEqual([]);
    expect(readFileSync(auditLogPath(layout), 'utf8')).not.toContain(value);
    expect(readFileSync(auditLogPath(layout), 'utf8')).not.toContain(Buffer.from(value).toString('base64'));
  });

  test('a server-side dry-run patch changes nothing', async () => {
    const before = (await apps.readNamespacedDeployment('short-drama-app', ns)).body;
    const { body: dryRun } = await apps.patchNamespacedDeployment('short-drama-app', ns, { spec: { replicas: 5 } }, undefined, 'All', undefined, undefined, undefined, strategic);
    expect(dryRun.spec?.replicas).toBe(5);
    const after = (await apps.readNamespacedDeployment('short-drama-app', ns)).body;
    expect(after.spec?.replicas).toBe(before.spec?.replicas);
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  });

  test('RBAC is enforced: the read-only ServiceAccount reads but gets 403 on patch', async () => {
    const readonly = readonlyKubeConfig();
    const roApps = readonly.makeApiClient(AppsV1Api);
    const { body } = await roApps.readNamespacedDeployment('short-drama-app', ns);
    expect(body.metadata?.name).toBe('short-drama-app');
    const error = await roApps.patchNamespacedDeployment('short-drama-app', ns, { spec: { replicas: 5 } }, undefined, undefined, undefined, undefined, undefined, strategic).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(statusOf(error)).toBe(403);
    expect((error as { body?: { message?: string } }).body?.message).toMatch(/system:serviceaccount:short-drama-prod:runbook-readonly.*cannot patch resource "deployments"/);
    // Outside its namespace it cannot even read.
    const outside = await readonly
      .makeApiClient(CoreV1Api)
      .listNamespacedPod('default')
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(statusOf(outside)).toBe(403);
  });

  test("the metrics API: metrics-server reads the real kubelet's numbers of the app's pods and of the node", async () => {
    const metrics = new Metrics(kc);
    let memory = 0;
    // metrics-server scrapes every 10 s: a pod started since has no numbers yet.
    await waitUntil(
      'metrics.k8s.io usage of a short-drama-app pod',
      async () => {
        const { items } = await metrics.getPodMetrics(ns);
        const app = items.find((p) => p.metadata.name.startsWith('short-drama-app-'));
        memory = parseQuantity(app?.containers[0]?.usage.memory) ?? 0;
        return memory > 0;
      },
      90_000,
    );
    // A Python process with its libraries: megabytes, not the kilobytes or gigabytes of a made-up number.
    expect(memory).toBeGreaterThan(5 * 2 ** 20);
    expect(memory).toBeLessThan(512 * 2 ** 20);
    const nodes = await metrics.getNodeMetrics();
    const node = nodes.items.find((n) => n.metadata.name === nodeNames(layout).nodeName);
    expect(node).toBeDefined();
    expect(parseQuantity(node!.usage.cpu)).toBeGreaterThan(0);
  });

  test("cert-manager issues the Ingress's certificate from the CA ClusterIssuer, and makes it again (ingress-shim) when it is deleted", async () => {
    const cm = certManager(kc);
    const seeded = await cm.issued(ns, appTlsCertificate);
    expect(seeded.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`)).toEqual(['Ingress/app-ingress']);
    expect(seeded.spec).toMatchObject({ secretName: appTlsCertificate, dnsNames: ['app.short-drama.example'], issuerRef: { name: clusterIssuer, kind: 'ClusterIssuer' } });
    const again = await cm.renew(ns, appTlsCertificate, { dropSecret: true });
    expect(again.metadata.uid).not.toBe(seeded.metadata.uid);
    expect(daysLeft(again)).toBeGreaterThan(89.9);
  });

  test('the seeded Ingress has an address, and its TLS Secret a certificate for its host from the sandbox CA, valid 90 days (as the daily health check needs)', async () => {
    const ingress = (await kc.makeApiClient(NetworkingV1Api).readNamespacedIngress('app-ingress', ns)).body;
    expect(ingress.status?.loadBalancer?.ingress?.map((a) => a.ip)).toEqual([ingressAddress]);
    const [tls] = ingress.spec?.tls ?? [];
    expect(tls?.hosts).toEqual(['app.short-drama.example']);
    const secret = (await core.readNamespacedSecret(tls!.secretName!, ns)).body;
    expect(secret.metadata?.name).toBe(appTlsCertificate);
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const certificate = new X509Certificate(Buffer.from(secret.data!['tls.crt']!, 'base64'));
    const ca = new X509Certificate(Buffer.from((await core.readNamespacedSecret(clusterIssuerCaSecret, certManagerNamespace)).body.data!['tls.crt']!, 'base64'));
    expect(certificate.subjectAltName).toBe('DNS:app.short-drama.example');
    // Signed by the issuer's CA, and tls.key is the certificate's key.
    expect(certificate.issuer).toBe('CN=short-drama sandbox CA');
    expect(certificate.verify(ca.publicKey)).toBe(true);
    expect(certificate.checkPrivateKey(createPrivateKey(Buffer.from(secret.data!['tls.key']!, 'base64')))).toBe(true);
    const notBefore = Date.parse(certificate.validFrom);
    const notAfter = Date.parse(certificate.validTo);
    expect(notBefore).toBeLessThanOrEqual(Date.now());
    expect(notAfter - notBefore).toBe(90 * 86_400_000);
  });

  test('publishing the Ingress address changes nothing the second time', async () => {
    const networking = kc.makeApiClient(NetworkingV1Api);
    await networking.createNamespacedIngress(scratch.name, {
      metadata: { name: 'web' },
      spec: { rules: [{ host: 'web.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] },
    });
    const readIngress = async () => (await networking.readNamespacedIngress('web', scratch.name)).body;
    expect((await readIngress()).status?.loadBalancer?.ingress ?? []).toEqual([]);
    await publishIngressAddress(kc, scratch.name, 'web');
    const published = await readIngress();
    expect(published.status?.loadBalancer?.ingress?.map((a) => a.ip)).toEqual([ingressAddress]);
    await publishIngressAddress(kc, scratch.name, 'web');
    expect((await readIngress()).metadata?.resourceVersion).toBe(published.metadata?.resourceVersion);
  });

  test("the manual's short-drama-prod is seeded", async () => {
    const deployments = (await apps.listNamespacedDeployment(ns)).body.items;
    expect(deployments.map((d) => d.metadata?.name).sort()).toEqual(['postgres', 'redis', 'short-drama-app']);
    for (const d of deployments) {
      expect(d.spec?.template.spec?.containers[0]?.resources?.limits).toEqual(expect.objectContaining({ cpu: expect.any(String), memory: expect.any(String) }));
      expect(d.status?.readyReplicas).toBe(d.spec?.replicas);
    }
    const app = deployments.find((d) => d.metadata?.name === 'short-drama-app')!;
    expect(app.spec?.replicas).toBe(2);
    expect(Number(app.metadata?.annotations?.['deployment.kubernetes.io/revision'])).toBeGreaterThanOrEqual(2);
    const appSets = (await apps.listNamespacedReplicaSet(ns, undefined, undefined, undefined, undefined, 'app=short-drama-app')).body.items;
    expect(appSets.length).toBeGreaterThanOrEqual(2);

    const services = (await core.listNamespacedService(ns)).body.items.map((s) => s.metadata?.name);
    expect(services).toEqual(expect.arrayContaining(['short-drama-app', 'postgres', 'redis']));
    const ingress = (await kc.makeApiClient(NetworkingV1Api).readNamespacedIngress('app-ingress', ns)).body;
    expect(ingress.spec?.tls).toEqual([expect.objectContaining({ secretName: appTlsCertificate })]);
    expect(Object.keys(ingress.metadata?.annotations ?? {})).toEqual(expect.arrayContaining(['nginx.ingress.kubernetes.io/ssl-redirect']));
    const hpa = (await kc.makeApiClient(AutoscalingV2Api).readNamespacedHorizontalPodAutoscaler('short-drama-app', ns)).body;
    expect(hpa.spec?.scaleTargetRef.name).toBe('short-drama-app');

    const storage = kc.makeApiClient(StorageV1Api);
    expect((await storage.readStorageClass('expandable')).body.allowVolumeExpansion).toBe(true);
    expect((await storage.readStorageClass('fixed')).body.allowVolumeExpansion).toBe(false);
    const claims = Object.fromEntries((await core.listNamespacedPersistentVolumeClaim(ns)).body.items.map((c) => [c.metadata!.name!, { class: c.spec?.storageClassName, phase: c.status?.phase }]));
    expect(claims).toEqual({ 'postgres-pvc': { class: 'expandable', phase: 'Bound' }, 'redis-data': { class: 'fixed', phase: 'Bound' } });

    const crd = (await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition('certificates.cert-manager.io')).body;
    expect(crd.spec.versions[0]?.subresources?.status).toBeDefined();
    const cert = (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject('cert-manager.io', 'v1', ns, 'certificates', 'app-tls-cert')).body as { spec: { secretName: string } };
    expect(cert.spec.secretName).toBe(appTlsCertificate);
    expect((await core.readNamespacedConfigMap('app-config', ns)).body.data?.DATABASE_HOST).toBe('postgres');
    expect(Object.keys((await core.readNamespacedSecret('app-secrets', ns)).body.data ?? {})).toEqual(['DATABASE_PASSWORD', 'REDIS_PASSWORD']);
    expect((await core.listNamespacedEvent(ns)).body.items.length).toBeGreaterThan(0);
  });
});
