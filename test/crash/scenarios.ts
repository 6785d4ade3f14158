/**
 * The crash matrix's scenarios: each on scratch objects of its own (unique names, so other test
 * files are not disturbed), with a reset to the same starting state and a snapshot of everything the
 * runbook may change, including what shows a double effect (generations, ReplicaSets, annotations).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { AppsV1Api, AutoscalingV2Api, CoreV1Api, NetworkingV1Api } from '@kubernetes/client-node';
import Redis from 'ioredis';
import { rateLimitAnnotation } from '../../common/inputs/traffic-control';
import { deleteBoundClaim, deleteDeployment, scratchAutoscaler, scratchBoundClaim, scratchDeployment, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, execWorkDir, kubernetesNamespace as namespace, layout, statusOf, waitForRollout } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { testbedEnv, testbedS3, unsignedTeam } from '../helpers/testbed';
import { waitUntil } from '../../scripts/testbed/processes';
import type { CrashScenario } from './harness';

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

/** 紧急扩容 on a scratch Deployment (1 replica) with an HPA (min 1, max 2): to 3 replicas and raised limits. */
export function emergencyScaleScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const name = unique('crash-es');
  const remove = async () => {
    await autoscaling.deleteNamespacedHorizontalPodAutoscaler(name, namespace).catch(ignore404);
    await deleteDeployment(kc, name);
    await gone(`deployment ${name}`, () => apps.readNamespacedDeployment(name, namespace));
    await gone(`hpa ${name}`, () => autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace));
  };
  return {
    runbook: 'emergencyScale',
    configOverrides: approvers,
    setup: async () => undefined,
    reset: async () => {
      await remove();
      await scratchDeployment(kc, name);
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
        template: JSON.parse(JSON.stringify(d.spec!.template)) as unknown,
        hpa: { minReplicas: hpa.spec!.minReplicas, maxReplicas: hpa.spec!.maxReplicas, generation: hpa.metadata!.generation },
        replicaSets: sets.items.length,
      };
    },
    teardown: remove,
  };
}

/** 流量控制 on a scratch Ingress (limit-rps 100, like the seeded app-ingress): the rate limit to 20 rps. */
export function trafficControlScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  const name = unique('crash-tc');
  const remove = async () => {
    await networking.deleteNamespacedIngress(name, namespace).catch(ignore404);
    await gone(`ingress ${name}`, () => networking.readNamespacedIngress(name, namespace));
  };
  return {
    runbook: 'trafficControl',
    configOverrides: approvers,
    setup: async () => undefined,
    reset: async () => {
      await remove();
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
      return { annotations: ingress.metadata!.annotations ?? {}, generation: ingress.metadata!.generation, spec: JSON.parse(JSON.stringify(ingress.spec)) as unknown };
    },
    teardown: remove,
  };
}

const revisionAnnotation = 'deployment.kubernetes.io/revision';

/** A Deployment's revision-relevant state: a second rollback would show as a revision too many or another generation. */
async function deploymentState(apps: AppsV1Api, name: string) {
  const { body: d } = await apps.readNamespacedDeployment(name, namespace);
  const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${name}`);
  return {
    generation: d.metadata!.generation,
    revision: d.metadata!.annotations?.[revisionAnnotation],
    template: JSON.parse(JSON.stringify(d.spec!.template)) as unknown,
    replicaSets: sets.items
      .map((rs) => ({
        image: rs.spec!.template!.spec!.containers[0]!.image,
        revision: rs.metadata!.annotations?.[revisionAnnotation],
        history: rs.metadata!.annotations?.['deployment.kubernetes.io/revision-history'],
      }))
      .sort((a, b) => Number(a.revision) - Number(b.revision)),
  };
}

/** 快速回滚 on a scratch Deployment with two revisions (images 1.0 then 2.0): back to revision 1. */
export function rollbackDeploymentScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const name = unique('crash-rb');
  const remove = async () => {
    await deleteDeployment(kc, name);
    await gone(`deployment ${name}`, () => apps.readNamespacedDeployment(name, namespace));
  };
  return {
    runbook: 'rollbackDeployment',
    configOverrides: approvers,
    setup: async () => undefined,
    reset: async () => {
      await remove();
      await scratchDeployment(kc, name, { image: 'registry.example/crash-rb:1.0' });
      await patchDeployment(kc, namespace, name, { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.example/crash-rb:2.0' }] } } } });
      await waitForRollout(kc, namespace, name);
    },
    input: () => ({ deployment: name, toRevision: 1, waitTimeoutSeconds: 60 }),
    snapshot: () => deploymentState(apps, name),
    teardown: remove,
  };
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
  const connected = () => (redis ??= new Redis(env.REDIS_URL!));
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
  const remove = async () => {
    await deleteDeployment(kc, name);
    await gone(`deployment ${name}`, () => apps.readNamespacedDeployment(name, namespace));
  };
  return {
    runbook: 'redisMemoryPressure',
    configOverrides: approvers,
    setup: async () => {
      original = { policy: await configGet('maxmemory-policy'), maxmemory: await configGet('maxmemory') };
    },
    reset: async () => {
      await remove();
      await scratchDeployment(kc, name, { container: 'redis', image: 'redis:7' });
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
      await remove();
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
  };
}

const day = 86_400_000;
const ymd = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);

/**
 * 场景4 on a folder of its own in the exec work dir standing for the volume (old and new logs), a
 * scratch claim on the expandable StorageClass, and dated backups under a prefix of its own.
 */
export function diskPressureScenario(): CrashScenario {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const s3 = testbedS3();
  const bucket = env.S3_BUCKET!;
  const id = randomUUID().slice(0, 8);
  const rel = `tmp/crash-disk-${id}`;
  const dir = join(execWorkDir(layout), rel);
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
  return {
    runbook: 'diskPressure',
    // As test/runbooks/disk-pressure.test.ts: a floor of 2 keeps the two recent backups besides latest.sql.
    configOverrides: { ...approvers, S3_BACKUP_KEEP_NEWEST: '2' },
    setup: async () => undefined,
    reset: async () => {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(join(dir, 'log', 'nested'), { recursive: true });
      mkdirSync(join(dir, 'data'), { recursive: true });
      writeFileSync(join(dir, 'data', 'blob'), Buffer.alloc(1024 * 1024, 1));
      for (const f of logs) writeFileSync(join(dir, f), 'line\n'.repeat(100));
      for (const f of logs.filter((f) => f.includes('old'))) execFileSync('touch', ['-d', '10 days ago', join(dir, f)]);
      execFileSync('touch', ['-d', '6 days ago', join(dir, 'log/app-new.log')]);
      await removeClaim();
      await scratchBoundClaim(kc, pvc, 'expandable', '1Gi');
      await removeBackups();
      for (const Key of backups) await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: '-- PostgreSQL database dump\n' }));
    },
    input: () => ({ pvc, dataDir: rel, logDir: `${rel}/log`, backupPrefix: prefix }),
    snapshot: async () => ({
      logs: logs.filter((f) => existsSync(join(dir, f))),
      requested: (await core.readNamespacedPersistentVolumeClaim(pvc, namespace)).body.spec?.resources?.requests?.storage,
      backups: await listKeys(),
    }),
    teardown: async () => {
      rmSync(dir, { recursive: true, force: true });
      await removeClaim();
      await removeBackups();
      s3.destroy();
    },
  };
}

export const scenarios: Record<string, () => CrashScenario> = {
  trafficControl: trafficControlScenario,
  emergencyScale: emergencyScaleScenario,
  rollbackDeployment: rollbackDeploymentScenario,
  redisMemoryPressure: redisMemoryPressureScenario,
  diskPressure: diskPressureScenario,
};
