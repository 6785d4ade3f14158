/**
 * The crash matrix's scenarios: each on scratch objects of its own (unique names, so other test
 * files are not disturbed), with a reset to the same starting state and a snapshot of everything the
 * runbook may change, including what shows a double effect (generations, ReplicaSets, annotations).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { AppsV1Api, AutoscalingV2Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, RbacAuthorizationV1Api, type KubeConfig, type V1ObjectMeta, type V1PodTemplateSpec } from '@kubernetes/client-node';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { rateLimitAnnotation } from '../../common/inputs/traffic-control';
import { deleteBoundClaim, deleteDeployment, outOfMemory, restartableScript, scratchApp, scratchAutoscaler, scratchBoundClaim, scratchPod, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as namespace, statusOf, testbedRealNode, waitForRollout } from '../helpers/kube-cluster';
import { filesInPostgres, inPostgres, seededMaxConnections, writeAgedFiles } from '../helpers/postgres-container';
import { workerTargetBinding } from '../../scripts/deploy-manifests';
import { patchDeployment } from '../helpers/kube-objects';
import { certManager, isReady } from '../helpers/cert-manager';
import { failingPod } from '../helpers/kube-pods';
import { logsIn } from '../helpers/postgres-login';
import { uniqueSuffix, withAdmin } from '../helpers/postgres-scratch';
import { appImage, appReleases, clusterIssuer } from '../../scripts/testbed/kubernetes-seed';
import { testbedEnv, testbedS3, unsignedTeam } from '../helpers/testbed';
import { waitUntil } from '../../scripts/testbed/processes';
import type { CrashScenario } from './harness';
import { rotatableGroup } from '../../scripts/testbed/seed-postgres';

const approvers = { RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam) };
const ignore404 = (err: unknown) => {
  if (statusOf(err) !== 404) throw err;
};

/** Waits until the object is gone (a deleted Deployment's ReplicaSets go first with foreground deletion). */
async function gone(what: string, read: () => Promise<unknown>): Promise<void> {
  await waitUntil(`${what} deleted`, async () =>
    read().then(
      () => false,
      (err: unknown) => {
        ignore404(err);
        return true;
      },
    ),
  );
}

/** Deletes an object (already gone is fine) and waits until reading it says 404. */
async function deleted(what: string, remove: () => Promise<unknown>, read: () => Promise<unknown>): Promise<void> {
  await remove().catch(ignore404);
  await gone(what, read);
}

/** Deletes a scratch Deployment and waits until it and its ReplicaSets are gone. */
async function removeDeployment(kc: KubeConfig, name: string): Promise<void> {
  await deleteDeployment(kc, name);
  await gone(`deployment ${name}`, () => kc.makeApiClient(AppsV1Api).readNamespacedDeployment(name, namespace));
}

/** The object, or undefined when it does not exist (404). */
function readOrUndefined<T>(read: Promise<{ body: T }>): Promise<T | undefined> {
  return read.then(
    (r) => r.body,
    (err: unknown) => {
      ignore404(err);
      return undefined;
    },
  );
}

/** Field managers and their operations: a second writer or a client-side update would show here. */
const managersOf = (o: { metadata?: V1ObjectMeta } | undefined) => o?.metadata?.managedFields?.map((m) => [m.manager, m.operation]);

/** A plain copy of an API object's part (class instances compare unequal to plain objects). */
const plain = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/**
 * A scenario on scratch objects that its reset removes and creates again (`remove`, then
 * `create`), and its teardown removes; the test team approves (bob, l2) unless the config says more.
 */
function recreatedScenario(
  s: Omit<CrashScenario, 'reset' | 'teardown' | 'setup' | 'configOverrides'> & {
    configOverrides?: Record<string, string>;
    setup?: () => Promise<void>;
    remove: () => Promise<void>;
    create: () => Promise<void>;
    /** After `remove`, what setup made (namespaces, connections). */
    teardown?: () => Promise<void>;
  },
): CrashScenario {
  const { remove, create, teardown, ...rest } = s;
  return {
    ...rest,
    configOverrides: { ...approvers, ...s.configOverrides },
    setup: s.setup ?? (async () => undefined),
    reset: async () => {
      await remove();
      await create();
    },
    teardown: async () => {
      await remove();
      await teardown?.();
    },
  };
}

/**
 * A scenario in a scratch namespace of its own (allowed by the config; the input names it, P3):
 * setup creates it and `populate` fills it, reset removes what the run creates (`remove`; the run
 * starts from nothing), teardown deletes the namespace.
 */
function scratchNamespaceScenario(
  kc: KubeConfig,
  runbook: string,
  prefix: string,
  build: (ns: string) => { populate?: () => Promise<void>; remove: () => Promise<void>; snapshot: () => Promise<unknown> },
): CrashScenario {
  const core = kc.makeApiClient(CoreV1Api);
  const ns = unique(prefix);
  const { populate, remove, snapshot } = build(ns);
  return recreatedScenario({
    runbook,
    outages: [{ system: 'the Kubernetes API' }],
    configOverrides: { ALLOWED_NAMESPACES: `${namespace},${ns}` },
    setup: async () => {
      await core.createNamespace({ metadata: { name: ns, labels: { 'runbook-testbed/scratch': 'true' } } });
      // A target of the runbooks: the worker's account may act there as in short-drama-prod (least privilege).
      await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding(ns, workerTargetBinding(ns));
      await populate?.();
    },
    remove,
    create: async () => undefined,
    teardown: async () => {
      await core.deleteNamespace(ns).catch(ignore404);
    },
    input: () => ({ namespace: ns, severity: 'P3' }),
    snapshot,
  });
}

/** 紧急扩容 on a scratch Deployment (1 replica) with an HPA (min 1, max 2): to 3 replicas and raised limits. */
export function emergencyScaleScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const name = unique('crash-es');
  return recreatedScenario({
    runbook: 'emergencyScale',
    outages: [{ system: 'the Kubernetes API' }],
    remove: async () => {
      await removeDeployment(kc, name);
      await deleted(
        `hpa ${name}`,
        () => autoscaling.deleteNamespacedHorizontalPodAutoscaler(name, namespace),
        () => autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace),
      );
    },
    create: async () => {
      await scratchApp(kc, name, { script: restartableScript() });
      await scratchAutoscaler(kc, name);
    },
    input: () => ({ deployment: name, severity: 'P1', replicas: 3, limits: { cpu: '1', memory: '512Mi' } }),
    snapshot: async () => {
      const { body: d } = await apps.readNamespacedDeployment(name, namespace);
      const { body: hpa } = await autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace);
      const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${name}`);
      return {
        replicas: d.spec!.replicas,
        generation: d.metadata!.generation,
        annotations: d.metadata!.annotations ?? {},
        template: plain(d.spec!.template),
        hpa: { minReplicas: hpa.spec!.minReplicas, maxReplicas: hpa.spec!.maxReplicas, generation: hpa.metadata!.generation },
        replicaSets: sets.items.length,
      };
    },
  });
}

/** 流量控制 on a scratch Ingress (limit-rps 100, like the seeded app-ingress): the rate limit to 20 rps. */
export function trafficControlScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  const name = unique('crash-tc');
  return recreatedScenario({
    runbook: 'trafficControl',
    outages: [{ system: 'the Kubernetes API' }],
    remove: () =>
      deleted(
        `ingress ${name}`,
        () => networking.deleteNamespacedIngress(name, namespace),
        () => networking.readNamespacedIngress(name, namespace),
      ),
    create: async () => {
      await networking.createNamespacedIngress(namespace, {
        metadata: { name, labels: { 'runbook-test/scratch': 'true' }, annotations: { [rateLimitAnnotation]: '100', 'nginx.ingress.kubernetes.io/proxy-body-size': '50m' } },
        spec: {
          ingressClassName: 'nginx',
          rules: [{ host: `${name}.example`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'short-drama-app', port: { number: 80 } } } }] } }],
        },
      });
    },
    input: () => ({ ingress: name, rps: 20 }),
    snapshot: async () => {
      const { body: ingress } = await networking.readNamespacedIngress(name, namespace);
      return { annotations: ingress.metadata!.annotations ?? {}, generation: ingress.metadata!.generation, spec: plain(ingress.spec) };
    },
  });
}

const revisionAnnotation = 'deployment.kubernetes.io/revision';

/** A Deployment's revision-relevant state: a second rollback would show as a revision too many or another generation. */
async function deploymentState(apps: AppsV1Api, name: string) {
  const { body: d } = await apps.readNamespacedDeployment(name, namespace);
  const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${name}`);
  return {
    generation: d.metadata!.generation,
    revision: d.metadata!.annotations?.[revisionAnnotation],
    template: plain(d.spec!.template),
    replicaSets: sets.items
      .map((rs) => ({
        image: rs.spec!.template!.spec!.containers[0]!.image,
        revision: rs.metadata!.annotations?.[revisionAnnotation],
        history: rs.metadata!.annotations?.['deployment.kubernetes.io/revision-history'],
      }))
      .sort((a, b) => Number(a.revision) - Number(b.revision)),
  };
}

/** 快速回滚 on a scratch app with two revisions (the app's two release images): back to revision 1. */
export function rollbackDeploymentScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const name = unique('crash-rb');
  return recreatedScenario({
    runbook: 'rollbackDeployment',
    outages: [{ system: 'the Kubernetes API' }],
    remove: () => removeDeployment(kc, name),
    create: async () => {
      // The seeded release's image, then the other one: two revisions of real pods.
      await scratchApp(kc, name, { script: restartableScript() });
      await patchDeployment(kc, namespace, name, { spec: { template: { spec: { containers: [{ name: 'app', image: appImage(appReleases[0], testbedRealNode()) }] } } } });
      await waitForRollout(kc, namespace, name);
    },
    input: () => ({ deployment: name, toRevision: 1, waitTimeoutSeconds: 60 }),
    snapshot: () => deploymentState(apps, name),
  });
}

/** 场景1 on a scratch app (limit 256Mi) on the real node, OOM-killed by the kernel and in CrashLoopBackOff: the limit raised x1.5, once. */
export function podCrashLoopScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const name = unique('crash-pcl');
  return recreatedScenario({
    runbook: 'podCrashLoop',
    outages: [{ system: 'the Kubernetes API' }],
    remove: () => removeDeployment(kc, name),
    create: async () => {
      await scratchApp(kc, name, { env: outOfMemory });
      await failingPod(kc, namespace, `app=${name}`, 'OOMKilled');
    },
    input: () => ({ deployment: name, severity: 'P1' }),
    snapshot: () => deploymentState(apps, name),
  });
}

/**
 * 场景3 on the test bed's Redis (db 0: the crash matrix runs alone, so its session:* keys are the
 * scenario's) and a scratch Deployment standing for Redis (memory limit 256Mi). The pattern is the
 * allowlisted default, session:*: a pattern of the scenario's own is refused by the allowlist.
 */
export function redisMemoryPressureScenario(): CrashScenario {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const name = unique('crash-redis');
  const id = randomUUID().slice(0, 8);
  const sessions = `session:crash-${id}:`;
  const others = `crash-cache-${id}:`;
  let redis: Redis | undefined;
  let original: { policy: string; maxmemory: string } | undefined;
  const connected = () => (redis ??= new Redis(env.TESTBED_REDIS_ADMIN_URL!));
  const configGet = async (key: string) => ((await connected().config('GET', key)) as string[])[1]!;
  const count = async (pattern: string) => {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await connected().scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  };
  const unlinkAll = async (pattern: string) => {
    let cursor = '0';
    do {
      const [next, keys] = await connected().scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      if (keys.length) await connected().unlink(...keys);
    } while (cursor !== '0');
  };
  return recreatedScenario({
    runbook: 'redisMemoryPressure',
    outages: [
      { system: 'Redis', at: 'deleteRedisKeys' },
      { system: 'the Kubernetes API', at: 'setContainerResources' },
    ],
    setup: async () => {
      original = { policy: await configGet('maxmemory-policy'), maxmemory: await configGet('maxmemory') };
    },
    remove: () => removeDeployment(kc, name),
    create: async () => {
      await scratchApp(kc, name, { container: 'redis', script: restartableScript() });
      await unlinkAll(`${sessions}*`);
      await unlinkAll(`${others}*`);
      const pipeline = connected().pipeline();
      for (let i = 0; i < 2000; i++) pipeline.set(`${sessions}${i}`, `{"user":${i}}`);
      for (let i = 0; i < 100; i++) pipeline.set(`${others}${i}`, 'keep');
      await pipeline.exec();
      // The state of an incident: no eviction, maxmemory half the container limit.
      await connected().config('SET', 'maxmemory-policy', 'noeviction');
      await connected().config('SET', 'maxmemory', String(128 * 2 ** 20));
    },
    input: () => ({ deployment: name, container: 'redis', raiseWhenUsageAbove: 0, rolloutTimeoutSeconds: 60 }),
    snapshot: async () => {
      const d = await deploymentState(apps, name);
      const { body } = await apps.readNamespacedDeployment(name, namespace);
      return {
        ...d,
        memoryLimit: body.spec!.template.spec!.containers[0]!.resources?.limits?.memory,
        sessionKeys: await count('session:*'),
        otherKeys: await count(`${others}*`),
        maxmemory: await configGet('maxmemory'),
        maxmemoryPolicy: await configGet('maxmemory-policy'),
      };
    },
    teardown: async () => {
      if (redis) {
        await unlinkAll(`${sessions}*`);
        await unlinkAll(`${others}*`);
        if (original) {
          await redis.config('SET', 'maxmemory-policy', original.policy);
          await redis.config('SET', 'maxmemory', original.maxmemory);
        }
        redis.disconnect();
      }
    },
  });
}

const day = 86_400_000;
const ymd = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);

/**
 * 场景4 on a folder of its own on the real postgres volume (old and new logs), a scratch claim on
 * the expandable StorageClass, and dated backups under a prefix of its own.
 */
export function diskPressureScenario(): CrashScenario {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const s3 = testbedS3();
  const bucket = env.S3_BUCKET!;
  const id = randomUUID().slice(0, 8);
  const dir = `var/lib/postgresql/data/crash-disk-${id}`;
  const pvc = `crash-dp-${id}`;
  const prefix = `database/crash-${id}/`;
  const logs = ['log/app-old1.log', 'log/app-old2.log', 'log/nested/worker-old.log', 'log/app-new.log', 'log/app-old.txt'];
  const backups = [ymd(45 * day), ymd(90 * day), ymd(3 * day), ymd(20 * day)].map((d) => `${prefix}short_drama-${d}.sql`).concat(`${prefix}latest.sql`);
  const listKeys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();
  const removeBackups = async () => {
    const keys = await listKeys();
    if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
  };
  const removeClaim = async () => {
    await deleteBoundClaim(kc, pvc);
    await gone(`claim ${pvc}`, () => core.readNamespacedPersistentVolumeClaim(pvc, namespace));
    await gone(`volume ${namespace}-${pvc}`, () => core.readPersistentVolume(`${namespace}-${pvc}`));
  };
  return recreatedScenario({
    runbook: 'diskPressure',
    outages: [
      { system: 'S3', at: 'deleteOldBackups' },
      { system: 'the Kubernetes API', at: 'expandPersistentVolumeClaim' },
    ],
    // As test/runbooks/disk-pressure.test.ts: a floor of 2 keeps the two recent backups besides latest.sql.
    configOverrides: { S3_BACKUP_KEEP_NEWEST: '2' },
    remove: async () => {
      inPostgres(`rm -rf /${dir}`);
      await removeClaim();
      await removeBackups();
    },
    create: async () => {
      writeAgedFiles(
        logs.map((f) => ({ path: `${dir}/${f}`, age: f.includes('old') ? '10 days ago' : '6 days ago' })),
        [{ path: `${dir}/data/blob`, bytes: 1024 * 1024 }],
      );
      await scratchBoundClaim(kc, pvc, 'expandable', '1Gi');
      for (const Key of backups) await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: '-- PostgreSQL database dump\n' }));
    },
    input: () => ({ pvc, dataDir: dir, logDir: `${dir}/log`, backupPrefix: prefix }),
    snapshot: async () => ({
      logs: filesInPostgres(`${dir}/log`).map((path) => path.slice(dir.length + 1)),
      requested: (await core.readNamespacedPersistentVolumeClaim(pvc, namespace)).body.spec?.resources?.requests?.storage,
      backups: await listKeys(),
    }),
    teardown: async () => s3.destroy(),
  });
}

/**
 * 场景5 on a scratch Ingress whose Certificate ingress-shim makes and the sandbox's real cert-manager
 * issues; reset leaves it expired with cert-manager backing off (certManager().expire). A watch counts
 * the Certificates made after that: the run's delete makes ingress-shim make one, and a delete
 * retried after the re-issue would show as a second.
 */
export function certificateExpiryScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const custom = kc.makeApiClient(CustomObjectsApi);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const cm = certManager(kc);
  const certificate = unique('crash-cert');
  const ingress = unique('crash-ce-ing');
  const host = `${certificate}.example`;
  let creations: Awaited<ReturnType<typeof cm.watchCreations>> | undefined;
  const readIngress = () => readOrUndefined(networking.readNamespacedIngress(ingress, namespace));
  return recreatedScenario({
    runbook: 'certificateExpiry',
    outages: [{ system: 'the Kubernetes API' }],
    remove: async () => {
      try {
        creations?.stop();
      } catch {
        // An outage of the API ended the watch; the case that made it has been judged already.
      }
      creations = undefined;
      // The Ingress first: ingress-shim would make its Certificate again.
      await deleted(
        `ingress ${ingress}`,
        () => networking.deleteNamespacedIngress(ingress, namespace),
        () => networking.readNamespacedIngress(ingress, namespace),
      );
      const certificateApi = ['cert-manager.io', 'v1', namespace, 'certificates', certificate] as const;
      await deleted(
        `certificate ${certificate}`,
        () => custom.deleteNamespacedCustomObject(...certificateApi),
        () => custom.getNamespacedCustomObject(...certificateApi),
      );
      await core.deleteNamespacedSecret(certificate, namespace).catch(ignore404);
    },
    create: async () => {
      await networking.createNamespacedIngress(namespace, {
        metadata: {
          name: ingress,
          labels: { 'runbook-test/scratch': 'true' },
          annotations: {
            'cert-manager.io/cluster-issuer': clusterIssuer,
            'cert-manager.io/duration': '2160h',
            'cert-manager.io/renew-before': '360h',
            'nginx.ingress.kubernetes.io/ssl-redirect': 'true',
          },
        },
        spec: {
          ingressClassName: 'nginx',
          tls: [{ hosts: [host], secretName: certificate }],
          rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'short-drama-app', port: { number: 80 } } } }] } }],
        },
      });
      await cm.expire(namespace, certificate);
      creations = await cm.watchCreations(namespace, certificate);
    },
    input: () => ({ certificate, ingress, severity: 'P1', readyTimeoutSeconds: 60 }),
    snapshot: async () => {
      const cert = await cm.read(namespace, certificate);
      const ing = await readIngress();
      return {
        certificatesMade: creations?.created(),
        certificate: cert && {
          spec: cert.spec,
          ready: isReady(cert),
          validForDays: cert.status?.notAfter && Math.round((Date.parse(cert.status.notAfter) - Date.now()) / day),
        },
        ingress: { annotations: ing?.metadata?.annotations, generation: ing?.metadata?.generation, spec: plain(ing?.spec), managers: managersOf(ing) },
      };
    },
  });
}

/**
 * 定期轮换密钥 on a LOGIN role of its own (a known old password), a Secret holding it and an app
 * Deployment. The new password differs from run to run: the snapshot holds what must be true of it
 * (it logs in, the old one does not, the old one is kept as _PREVIOUS), never a password.
 */
export function rotateDatabasePasswordScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const role = `crash_rot_${uniqueSuffix()}`;
  const old = randomBytes(18).toString('base64url');
  const secret = unique('crash-rot-secret');
  const app = unique('crash-rot-app');
  const key = 'DATABASE_PASSWORD';
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
  return recreatedScenario({
    runbook: 'rotateDatabasePassword',
    outages: [
      { system: 'PostgreSQL', at: 'setRolePasswordFromSecret', compensations: ['restore-role', 'restore-secret'] },
      { system: 'the Kubernetes API', at: 'promoteStagedSecretKey', compensations: ['restore-role', 'restore-secret'] },
    ],
    configOverrides: { ALLOWED_ROTATION_ROLES: role },
    remove: async () => {
      await withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS "${role}"`));
      await deleted(
        `secret ${secret}`,
        () => core.deleteNamespacedSecret(secret, namespace),
        () => core.readNamespacedSecret(secret, namespace),
      );
      await removeDeployment(kc, app);
    },
    create: async () => {
      await withAdmin(async (admin) => {
        // pg_stat_statements keeps CREATE ROLE ... PASSWORD verbatim: not for this statement.
        await admin.query('SET pg_stat_statements.track_utility = off');
        await admin.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${old}' IN ROLE ${rotatableGroup}`);
      });
      await core.createNamespacedSecret(namespace, { metadata: { name: secret, labels: { 'runbook-test/scratch': 'true' } }, type: 'Opaque', data: { [key]: b64(old), OTHER: b64('kept') } });
      await scratchApp(kc, app, { script: restartableScript() });
    },
    input: () => ({ secret, role, appDeployment: app }),
    snapshot: async () => {
      const { body } = await core.readNamespacedSecret(secret, namespace);
      const data = Object.fromEntries(Object.entries(body.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
      const d = await deploymentState(apps, app);
      return {
        secretKeys: Object.keys(data).sort(),
        secretAnnotations: Object.keys(body.metadata?.annotations ?? {}).sort(),
        previousIsOld: data[`${key}_PREVIOUS`] === old,
        other: data.OTHER,
        newLogsIn: data[key] !== old && (await logsIn(role, data[key]!)),
        oldLogsIn: await logsIn(role, old),
        app: {
          generation: d.generation,
          revision: d.revision,
          replicaSets: d.replicaSets.length,
          restarted: (d.template as V1PodTemplateSpec).metadata?.annotations?.['kubectl.kubernetes.io/restartedAt'] !== undefined,
        },
      };
    },
  });
}

/** 网络策略 in a scratch namespace with an app pod and a postgres pod (real pods on the node): the manual's NetworkPolicy created. */
export function applyNetworkPolicyScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  const policy = 'app-network-policy';
  return scratchNamespaceScenario(kc, 'applyNetworkPolicy', 'crash-np', (ns) => ({
    populate: async () => {
      for (const app of ['short-drama-app', 'postgres']) await scratchPod(kc, ns, `${app}-0`, { app });
    },
    remove: () =>
      deleted(
        `networkpolicy ${policy}`,
        () => networking.deleteNamespacedNetworkPolicy(policy, ns),
        () => networking.readNamespacedNetworkPolicy(policy, ns),
      ),
    snapshot: async () => {
      const live = await readOrUndefined(networking.readNamespacedNetworkPolicy(policy, ns));
      return { spec: plain(live?.spec), generation: live?.metadata?.generation, managers: managersOf(live) };
    },
  }));
}

/** RBAC配置 in a scratch namespace: the ServiceAccount readonly-user, Role readonly and RoleBinding readonly-binding created. */
export function provisionReadonlyAccessScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const [account, roleName, binding] = ['readonly-user', 'readonly', 'readonly-binding'];
  return scratchNamespaceScenario(kc, 'provisionReadonlyAccess', 'crash-rbac', (ns) => ({
    remove: async () => {
      await deleted(
        `rolebinding ${binding}`,
        () => rbac.deleteNamespacedRoleBinding(binding, ns),
        () => rbac.readNamespacedRoleBinding(binding, ns),
      );
      await deleted(
        `role ${roleName}`,
        () => rbac.deleteNamespacedRole(roleName, ns),
        () => rbac.readNamespacedRole(roleName, ns),
      );
      await deleted(
        `serviceaccount ${account}`,
        () => core.deleteNamespacedServiceAccount(account, ns),
        () => core.readNamespacedServiceAccount(account, ns),
      );
    },
    snapshot: async () => {
      const sa = await readOrUndefined(core.readNamespacedServiceAccount(account, ns));
      const role = await readOrUndefined(rbac.readNamespacedRole(roleName, ns));
      const rb = await readOrUndefined(rbac.readNamespacedRoleBinding(binding, ns));
      return {
        account: { exists: sa !== undefined, managers: managersOf(sa) },
        role: { rules: plain(role?.rules), managers: managersOf(role) },
        binding: { roleRef: plain(rb?.roleRef), subjects: plain(rb?.subjects), managers: managersOf(rb) },
      };
    },
  }));
}

/**
 * 场景2 on short-drama-prod's real PostgreSQL (a pod on the real node): idle sessions of a leaking
 * client of the scenario's own, max_connections at the seeded 100 (after a run raised it, a real
 * restart puts it back). The snapshot counts the deployment's revisions since the reset (one
 * restart, never two), and holds the running setting and the leaked sessions left.
 */
export function dbConnectionExhaustionScenario(): CrashScenario {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const application = `crash-leak-${randomUUID().slice(0, 8)}`;
  const leaked: PgClient[] = [];
  let revisionAtReset = 0;
  const revision = async () => Number((await apps.readNamespacedDeployment('postgres', namespace)).body.metadata?.annotations?.['deployment.kubernetes.io/revision']);
  const query = <T extends Record<string, unknown>>(text: string, params: unknown[] = []) => withAdmin(async (admin) => (await admin.query<T>(text, params)).rows);
  const setting = async () => (await query<{ setting: string; pending: boolean }>(`SELECT setting, pending_restart AS pending FROM pg_settings WHERE name = 'max_connections'`))[0]!;
  const idleLeft = async () => Number((await query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'`, [application]))[0]!.n);
  return recreatedScenario({
    runbook: 'dbConnectionExhaustion',
    outages: [
      { system: 'PostgreSQL', at: 'terminateIdleConnections' },
      { system: 'the Kubernetes API', at: 'restartRollout' },
    ],
    remove: async () => {
      await query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [application]);
      await Promise.all(leaked.splice(0).map((c) => c.end().catch(() => undefined)));
      await seededMaxConnections(kc);
    },
    create: async () => {
      for (let i = 0; i < 12; i++) {
        const client = new PgClient({ connectionString: env.DATABASE_URL, application_name: application });
        client.on('error', () => undefined); // terminated on purpose
        await client.connect();
        leaked.push(client);
      }
      await waitUntil(
        'the leaked sessions idle for over a second',
        async () =>
          Number(
            (await query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND state_change < now() - interval '1 second'`, [application]))[0]!
              .n,
          ) === 12,
      );
      revisionAtReset = await revision();
    },
    input: () => ({ idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }),
    snapshot: async () => ({ restarts: (await revision()) - revisionAtReset, maxConnections: await setting(), idleLeaked: await idleLeft() }),
  });
}

export const scenarios: Record<string, () => CrashScenario> = {
  trafficControl: trafficControlScenario,
  dbConnectionExhaustion: dbConnectionExhaustionScenario,
  emergencyScale: emergencyScaleScenario,
  rollbackDeployment: rollbackDeploymentScenario,
  podCrashLoop: podCrashLoopScenario,
  redisMemoryPressure: redisMemoryPressureScenario,
  diskPressure: diskPressureScenario,
  certificateExpiry: certificateExpiryScenario,
  rotateDatabasePassword: rotateDatabasePasswordScenario,
  applyNetworkPolicy: applyNetworkPolicyScenario,
  provisionReadonlyAccess: provisionReadonlyAccessScenario,
};
