import { chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, PatchUtils, type KubeConfig, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import { applyObjects, kubeConfigFromFile, readYamlObjects, testbedFieldManager } from './kubernetes-apply';
import { kubernetesBinaries } from './kubernetes-install';
import { adminKubeconfigPath, issuerCertificateAuthority, kubernetesStateDir, prometheusKubeconfigPath, readonlyKubeconfigPath } from './kubernetes-pki';
import { port, type TestbedLayout } from './layout';
import { waitUntil } from './processes';
import { applyWorkerAccount, writeServiceAccountKubeconfig } from './service-account-access';
import type { TestbedContext } from './context';
import type { NodeNames } from './node/node-names';
import { postgresUid, prodNodePorts, type ProdService } from './node/node-prod';
import { redisConfLines } from './redis-server';
import { drillRejectedDatabases, restoreDrillRole } from './postgres-server';

/** The manual's namespace. */
export const kubernetesNamespace = 'short-drama-prod';
export const kwokNode = 'kwok-node-0';

/**
 * What a pod asks to land on kwok's node: its label, and the toleration of its taint, which keeps
 * every other pod off it (kwok runs nothing: a pod there only looks Running).
 */
export const onKwokNode = {
  nodeSelector: { type: 'kwok' },
  tolerations: [{ key: 'runbook.testbed/kwok', operator: 'Equal', value: 'true', effect: 'NoSchedule' }],
};
export const readonlyServiceAccount = 'runbook-readonly';
/** Prometheus' account (pod-discovery.js): it lists short-drama-prod's pods to find the app's, nothing else. */
export const prometheusServiceAccount = 'prometheus';
/** The app's two seeded releases: revision 1, then revision 2 (the current one). */
export const appReleases = ['1.4.1', '1.4.2'] as const;

type Obj = KubernetesObject & Record<string, unknown>;

/** Pod logs are served by kwok from these files (CRI log format), one pair per container name. */
function seededLogFile(layout: TestbedLayout, container: string, previous = false): string {
  return join(kubernetesStateDir(layout), 'logs', kubernetesNamespace, `${container}${previous ? '.previous' : ''}.log`);
}

/** kwok runs `kubectl exec` commands for pods of short-drama-prod as local processes in this directory. */
function execWorkDir(layout: TestbedLayout): string {
  return join(kubernetesStateDir(layout), 'exec-root');
}

function adminKc(layout: TestbedLayout): KubeConfig {
  return kubeConfigFromFile(adminKubeconfigPath(layout));
}

/** One log line in the CRI format kwok parses: `<RFC3339Nano> <stream> F <message>`. */
function criLogLines(lines: string[], at = new Date()): string {
  const stamp = at.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
  return lines.map((line) => `${stamp} ${line.startsWith('ERROR') ? 'stderr' : 'stdout'} F ${line}\n`).join('');
}

// ------------------------------------------------------------------------ CRDs

export async function waitEstablished(kc: KubeConfig, names: string[]): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  await waitUntil(
    `CRDs established (${names.length})`,
    async () => {
      for (const name of names) {
        const { body } = await api.readCustomResourceDefinition(name);
        if (!body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return false;
      }
      return true;
    },
    30_000,
  );
}

// --------------------------------------------------------------- infrastructure

/**
 * What the cluster itself needs: 'crds' (kwok's and cert-manager's CRDs; before either starts) and 'rest' (the fake node, kwok's resource-metrics simulation with usage from pod
 * annotations, and metrics-server behind the aggregator).
 */
export async function applyClusterInfrastructure(ctx: TestbedContext, part: 'crds' | 'rest'): Promise<void> {
  const { layout } = ctx;
  const kc = adminKc(layout);
  const bins = kubernetesBinaries(layout);
  const assets = bins.kwokAssets;
  if (part === 'crds') {
    const yamlIn = (dir: string) =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .flatMap((f) => readYamlObjects(join(dir, f)));
    // cert-manager's release CRDs carry Helm template labels (values no label may have): dropped.
    const certManagerCrds = yamlIn(bins.certManagerCrds).map((crd) => ({ ...crd, metadata: { name: crd.metadata!.name } }));
    const crds = [...yamlIn(join(assets, 'crds')), ...certManagerCrds];
    await applyObjects(kc, crds);
    await waitEstablished(
      kc,
      crds.map((crd) => crd.metadata!.name!),
    );
    return;
  }
  const node: Obj = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: kwokNode,
      // kwok manages nodes with this annotation (see --manage-nodes-with-annotation-selector).
      annotations: {
        'kwok.x-k8s.io/node': 'fake',
        'node.alpha.kubernetes.io/ttl': '0',
        'metrics.k8s.io/resource-metrics-path': `/metrics/nodes/${kwokNode}/metrics/resource`,
      },
      labels: { type: 'kwok', 'kubernetes.io/hostname': kwokNode, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' },
    },
    spec: { taints: onKwokNode.tolerations.map(({ key, value, effect }) => ({ key, value, effect })) },
  };
  const metricsServerPort = port(layout, 'kubeMetricsServer');
  await applyObjects(kc, [
    node,
    ...readYamlObjects(join(assets, 'metrics-resource.yaml')),
    ...readYamlObjects(join(assets, 'usage-from-annotation.yaml')),
    // No kube-proxy, and Endpoints may not hold loopback addresses: the aggregator reaches
    // metrics-server through an ExternalName Service naming 127.0.0.1 (which works only without
    // --enable-aggregator-routing: that mode rejects ExternalName Services).
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'metrics-server', namespace: 'kube-system' }, spec: { type: 'ExternalName', externalName: '127.0.0.1' } } as Obj,
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: 'v1beta1.metrics.k8s.io' },
      spec: {
        group: 'metrics.k8s.io',
        version: 'v1beta1',
        groupPriorityMinimum: 100,
        versionPriority: 100,
        insecureSkipTLSVerify: true,
        service: { name: 'metrics-server', namespace: 'kube-system', port: metricsServerPort },
      },
    } as Obj,
  ]);
}

// ----------------------------------------------------------------- the manual

const ns = kubernetesNamespace;
const appLabels = (app: string) => ({ app, 'app.kubernetes.io/part-of': 'short-drama' });

/** cert-manager's namespace: its ClusterIssuer's CA Secret lives there (--cluster-resource-namespace). */
export const certManagerNamespace = 'cert-manager';
/** The manual's ClusterIssuer; here a CA issuer under that name, as ACME cannot reach Let's Encrypt from the sandbox. */
export const clusterIssuer = 'letsencrypt-prod';
export const clusterIssuerCaSecret = `${clusterIssuer}-ca`;
/** The manual's Certificate: cert-manager's ingress-shim makes it for app-ingress, named after its TLS Secret. */
export const appTlsCertificate = 'app-tls-cert';

/** The ClusterIssuer, signing with the CA in `secretName` (tests point it at a broken one). */
export function clusterIssuerObject(secretName = clusterIssuerCaSecret): Obj {
  return { apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer', metadata: { name: clusterIssuer }, spec: { ca: { secretName } } } as Obj;
}

/** cert-manager's namespace, the issuer's CA (made once, kept in its Secret) and the ClusterIssuer. */
async function seedClusterIssuer(kc: KubeConfig): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await applyObjects(kc, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: certManagerNamespace } } as Obj]);
  if (!(await readOrUndefined(() => core.readNamespacedSecret(clusterIssuerCaSecret, certManagerNamespace)))) {
    const ca = issuerCertificateAuthority('short-drama sandbox CA');
    const secret: V1Secret = {
      metadata: { name: clusterIssuerCaSecret, namespace: certManagerNamespace },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': Buffer.from(ca.certificate).toString('base64'), 'tls.key': Buffer.from(ca.privateKey).toString('base64') },
    };
    await core.createNamespacedSecret(certManagerNamespace, secret, undefined, undefined, testbedFieldManager).catch((err: unknown) => {
      // Another seed (a second `up` at the same time) created it first: theirs stands.
      if (statusOf(err) !== 409) throw err;
    });
  }
  await applyObjects(kc, [clusterIssuerObject()]);
}

/**
 * What changes when short-drama-prod runs on the real node (TESTBED_REAL_NODE=1): the pods go there
 * (nodeSelector and toleration of its taint), run our local images (never pulled), and get what a
 * real server needs (password files, probes); everything else is the same object.
 */
interface OnRealNode {
  container: Record<string, unknown>;
  pod?: Record<string, unknown>;
  volumes?: unknown[];
}

function deployment(
  name: string,
  replicas: number,
  container: Record<string, unknown>,
  extra: { volumes?: unknown[]; annotations?: Record<string, string>; realNode?: OnRealNode & { names: NodeNames } } = {},
): Obj {
  // A server with a volume of its own (ReadWriteOnce) stops before its successor starts.
  const ownsVolume = (extra.volumes ?? []).some((v) => (v as { persistentVolumeClaim?: unknown }).persistentVolumeClaim !== undefined);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels: appLabels(name) },
    spec: {
      replicas,
      ...(ownsVolume ? { strategy: { type: 'Recreate' } } : {}),
      revisionHistoryLimit: 10,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: appLabels(name), ...(extra.annotations ? { annotations: extra.annotations } : {}) },
        spec: extra.realNode ? realNodePodSpec(container, extra.volumes ?? [], extra.realNode) : { ...onKwokNode, containers: [container], ...(extra.volumes ? { volumes: extra.volumes } : {}) },
      },
    },
  };
}

function realNodePodSpec(container: Record<string, unknown>, volumes: unknown[], node: OnRealNode & { names: NodeNames }): Record<string, unknown> {
  const { key, value } = node.names.label;
  const allVolumes = [...volumes, ...(node.volumes ?? [])];
  return {
    nodeSelector: { [key]: value },
    tolerations: [{ key, operator: 'Equal', value, effect: 'NoSchedule' }],
    terminationGracePeriodSeconds: 20,
    ...node.pod,
    containers: [{ ...container, imagePullPolicy: 'Never', ...node.container }],
    ...(allVolumes.length ? { volumes: allVolumes } : {}),
  };
}

/** The real node's parts of the app: our image at that release, HTTP on 8000, ready when /health says the database and Redis answer. */
function appOnRealNode(release: string, node: RealNode): OnRealNode & { names: NodeNames } {
  return {
    names: node.names,
    container: {
      image: appImage(release, node),
      ports: [{ name: 'http', containerPort: 8000 }],
      readinessProbe: { httpGet: { path: '/health', port: 8000 }, periodSeconds: 2, timeoutSeconds: 5 },
    },
    pod: { terminationGracePeriodSeconds: 5 },
  };
}

/** The app's image at a release: a name kwok never pulls, or on the real node our local image's tag for it. */
export function appImage(release: string, realNode?: RealNode): string {
  return realNode ? realNode.images[`short-drama-app:${release}`]! : `registry.invalid/short-drama/app:${release}`;
}

/**
 * short-drama-app's two releases as two revisions: 1.4.1 rolled out first whenever no ReplicaSet
 * runs its image (the first seed, a rebuilt image, or history pruned by many rollouts), then 1.4.2.
 */
export async function seedAppReleases(kc: KubeConfig, realNode?: RealNode): Promise<void> {
  const [oldRelease, currentRelease] = appReleases;
  const { body: sets } = await kc.makeApiClient(AppsV1Api).listNamespacedReplicaSet(ns, undefined, undefined, undefined, undefined, 'app=short-drama-app');
  if (!sets.items.some((rs) => rs.spec?.template?.spec?.containers[0]?.image === appImage(oldRelease, realNode))) {
    await applyObjects(kc, [appDeployment(oldRelease, realNode)]);
    await waitForRollout(kc, ns, 'short-drama-app');
  }
  await applyObjects(kc, [appDeployment(currentRelease, realNode)]);
}

/** short-drama-app at a release: a new release changes the image, an env var and an annotation (a new revision). */
export function appDeployment(release: string, realNode?: RealNode): Obj {
  return deployment(
    'short-drama-app',
    2,
    {
      name: 'app',
      image: appImage(release, realNode),
      ports: [{ name: 'http', containerPort: 8080 }],
      envFrom: [{ configMapRef: { name: 'app-config' } }],
      env: [
        { name: 'APP_RELEASE', value: release },
        { name: 'DATABASE_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secrets', key: 'DATABASE_PASSWORD' } } },
        { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secrets', key: 'REDIS_PASSWORD' } } },
      ],
      resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
    },
    { annotations: { 'short-drama.example/release': release }, ...(realNode ? { realNode: appOnRealNode(release, realNode) } : {}) },
  );
}

function pv(name: string, storageClassName: string, claim: string, dir: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, labels: { 'app.kubernetes.io/part-of': 'short-drama' } },
    spec: {
      capacity: { storage: '10Gi' },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName,
      // Pre-bound to its claim, so the claim is Bound (a resize is only allowed on bound claims).
      claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns, name: claim },
      hostPath: { path: dir, type: 'DirectoryOrCreate' },
    },
  };
}

function pvc(name: string, storageClassName: string, volumeName: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns, labels: appLabels(name.split('-')[0]!) },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName, volumeName, resources: { requests: { storage: '10Gi' } } },
  };
}

type RealNode = NonNullable<TestbedContext['realNode']>;

/** The folder of a seeded volume (hostPath; on the real node the servers' data lives there). */
function volumeDir(layout: TestbedLayout, name: string): string {
  return join(kubernetesStateDir(layout), 'volumes', name);
}

function manualObjects(ctx: TestbedContext): Obj[] {
  const { layout, realNode } = ctx;
  const service = (name: ProdService, portNumber: number, targetPort: number | string): Obj => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: appLabels(name) },
    spec: {
      selector: { app: name },
      ...(realNode ? { type: 'NodePort' } : {}),
      ports: [{ name: 'main', port: portNumber, targetPort, ...(realNode ? { nodePort: prodNodePorts[name] } : {}) }],
    },
  });
  const secret = (name: string, data: Record<string, string>): Obj =>
    ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: ns, labels: appLabels('short-drama-app') },
      type: 'Opaque',
      data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
    }) as Obj;
  return [
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'expandable' },
      provisioner: 'kubernetes.io/no-provisioner',
      allowVolumeExpansion: true,
      reclaimPolicy: 'Retain',
      volumeBindingMode: 'Immediate',
    } as Obj,
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'fixed' },
      provisioner: 'kubernetes.io/no-provisioner',
      allowVolumeExpansion: false,
      reclaimPolicy: 'Retain',
      volumeBindingMode: 'Immediate',
    } as Obj,
    pv('short-drama-prod-postgres-pv', 'expandable', 'postgres-pvc', volumeDir(layout, 'postgres')),
    pv('short-drama-prod-redis-pv', 'fixed', 'redis-data', volumeDir(layout, 'redis')),
    pvc('postgres-pvc', 'expandable', 'short-drama-prod-postgres-pv'),
    pvc('redis-data', 'fixed', 'short-drama-prod-redis-pv'),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app-config', namespace: ns, labels: appLabels('short-drama-app') },
      data: { DATABASE_HOST: 'postgres', DATABASE_NAME: 'short_drama_prod', REDIS_HOST: 'redis', LOG_LEVEL: 'info', DB_POOL_SIZE: '40' },
    } as Obj,
    // Fake values for kwok's pods; on the real node the app logs in, with the test bed's passwords.
    secret('app-secrets', {
      DATABASE_PASSWORD: realNode ? ctx.secrets.appDatabasePassword : 'seeded-db-password',
      REDIS_PASSWORD: realNode ? ctx.secrets.redisPassword : 'seeded-redis-password',
    }),
    ...(realNode
      ? [
          secret('postgres-superuser', { password: ctx.secrets.postgresPassword }),
          secret('redis-config', { 'redis.conf': ['bind 0.0.0.0', 'protected-mode no', ...redisConfLines(ctx)].join('\n') + '\n' }),
        ]
      : []),
    deployment(
      'postgres',
      1,
      {
        name: 'postgres',
        image: 'postgres:15',
        ports: [{ name: 'postgres', containerPort: 5432 }],
        env: [{ name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secrets', key: 'DATABASE_PASSWORD' } } }],
        resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
        volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql/data' }],
      },
      {
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'postgres-pvc' } }],
        ...(realNode
          ? {
              realNode: {
                names: realNode.names,
                // Our PostgreSQL 15 image (pg_stat_statements preloaded); initdb on the volume the first time, superuser password from a file.
                container: {
                  image: realNode.images.postgres,
                  env: [
                    { name: 'POSTGRES_PASSWORD_FILE', value: '/etc/postgres-secret/password' },
                    // The restore drill's role may log in only to its scratch databases (pg_hba.conf, written at initdb).
                    { name: 'DRILL_ROLE', value: restoreDrillRole },
                    { name: 'DRILL_REJECTED_DATABASES', value: drillRejectedDatabases.join(',') },
                  ],
                  readinessProbe: { exec: { command: ['pg_isready', '-h', '/tmp', '-U', 'postgres'] }, periodSeconds: 1 },
                  volumeMounts: [
                    { name: 'data', mountPath: '/var/lib/postgresql/data' },
                    { name: 'superuser', mountPath: '/etc/postgres-secret', readOnly: true },
                  ],
                },
                pod: { securityContext: { runAsUser: postgresUid, runAsGroup: postgresUid } },
                volumes: [{ name: 'superuser', secret: { secretName: 'postgres-superuser', defaultMode: 0o444 } }],
              },
            }
          : {}),
      },
    ),
    deployment(
      'redis',
      1,
      {
        name: 'redis',
        image: 'redis:7',
        ports: [{ name: 'redis', containerPort: 6379 }],
        resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      },
      {
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'redis-data' } }],
        ...(realNode
          ? {
              realNode: {
                names: realNode.names,
                // Redis 7 with the test bed's password and maxmemory, from a config file in a Secret (not in the pod spec).
                container: {
                  image: realNode.images.redis,
                  args: ['redis-server', '/etc/redis/redis.conf'],
                  readinessProbe: { tcpSocket: { port: 6379 }, periodSeconds: 1 },
                  volumeMounts: [
                    { name: 'data', mountPath: '/data' },
                    { name: 'config', mountPath: '/etc/redis', readOnly: true },
                  ],
                },
                volumes: [{ name: 'config', secret: { secretName: 'redis-config' } }],
              },
            }
          : {}),
      },
    ),
    service('short-drama-app', 80, 'http'),
    service('postgres', 5432, 5432),
    service('redis', 6379, 6379),
    { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nginx' }, spec: { controller: 'k8s.io/ingress-nginx' } } as Obj,
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: {
        name: 'app-ingress',
        namespace: ns,
        labels: appLabels('short-drama-app'),
        annotations: {
          'cert-manager.io/cluster-issuer': clusterIssuer,
          // What ingress-shim gives the Certificate: Let's Encrypt's 90 days, renewed 15 days before.
          'cert-manager.io/duration': '2160h',
          'cert-manager.io/renew-before': '360h',
          'nginx.ingress.kubernetes.io/ssl-redirect': 'true',
          'nginx.ingress.kubernetes.io/proxy-body-size': '50m',
          'nginx.ingress.kubernetes.io/limit-rps': '100',
        },
      },
      spec: {
        ingressClassName: 'nginx',
        tls: [{ hosts: ['app.short-drama.example'], secretName: appTlsCertificate }],
        rules: [
          {
            host: 'app.short-drama.example',
            http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'short-drama-app', port: { number: 80 } } } }] },
          },
        ],
      },
    } as Obj,
    {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'short-drama-app', namespace: ns, labels: appLabels('short-drama-app') },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'short-drama-app' },
        minReplicas: 2,
        maxReplicas: 6,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
      },
    } as Obj,
    // Where kwok takes logs and exec from, for the manual's pods only.
    {
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'ClusterLogs',
      metadata: { name: 'short-drama-prod' },
      spec: {
        selector: { matchNamespaces: [ns] },
        logs: ['app', 'postgres', 'redis'].map((container) => ({
          containers: [container],
          logsFile: seededLogFile(layout, container),
          previousLogsFile: seededLogFile(layout, container, true),
          follow: false,
        })),
      },
    } as Obj,
    {
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'ClusterExec',
      metadata: { name: 'short-drama-prod' },
      // Exec runs on this host, as this user: only for the manual's namespace, in a directory of ours.
      spec: { selector: { matchNamespaces: [ns] }, execs: [{ local: { workDir: execWorkDir(layout), envs: [{ name: 'KWOK_EXEC', value: 'true' }] } }] },
    } as Obj,
    // A ServiceAccount that may only read (for RBAC tests and TESTBED_KUBECONFIG_READONLY).
    ...accountWithRole(readonlyServiceAccount, [
      { apiGroups: ['', 'apps', 'autoscaling', 'networking.k8s.io', 'cert-manager.io', 'metrics.k8s.io'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
    ]),
    ...accountWithRole(prometheusServiceAccount, [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]),
  ];
}

/** A ServiceAccount of short-drama-prod with a Role of these rules, bound to it. */
function accountWithRole(name: string, rules: unknown[]): Obj[] {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } } as Obj,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns }, rules } as Obj,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    } as Obj,
  ];
}

/** A volume's folder owned by its server's user, as a provisioner would make it (hostPath would create it as root). */
function prepareVolume(dir: string, uid: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, uid, uid);
}

/** Files kwok serves as logs, and a little tree for df/du/find through exec; written once. */
function writeSeedFiles(layout: TestbedLayout): void {
  const lines: Record<string, string[]> = {
    app: ['short-drama-app 1.4.2 listening on :8080', 'connected to postgres at postgres:5432', 'GET /healthz 200 2ms'],
    postgres: ['database system is ready to accept connections'],
    redis: ['Ready to accept connections tcp'],
  };
  for (const [container, current] of Object.entries(lines)) {
    const file = seededLogFile(layout, container);
    mkdirSync(join(file, '..'), { recursive: true });
    if (!existsSync(file)) writeFileSync(file, criLogLines(current));
    const previous = seededLogFile(layout, container, true);
    if (!existsSync(previous)) writeFileSync(previous, criLogLines([`${container} previous instance started`, 'ERROR: received SIGTERM, shutting down']));
  }
  const root = execWorkDir(layout);
  for (const dir of ['var/log/app', 'var/lib/postgresql/data/base', 'tmp/uploads']) mkdirSync(join(root, dir), { recursive: true });
  const sample = join(root, 'var', 'log', 'app', 'app.log');
  if (!existsSync(sample)) writeFileSync(sample, 'x'.repeat(64 * 1024));
}

/** The status code of a client-node (0.22) rejection. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: number; response?: { statusCode?: number } };
  return e.statusCode ?? e.response?.statusCode;
}

async function readOrUndefined<T>(read: () => Promise<{ body: T }>): Promise<T | undefined> {
  try {
    return (await read()).body;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Waits until a Deployment has rolled out completely (every replica updated and available). */
export async function waitForRollout(kc: KubeConfig, namespace: string, name: string, timeoutMs = 120_000): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  await waitUntil(
    `deployment ${namespace}/${name} rolled out`,
    async () => {
      const { body } = await apps.readNamespacedDeployment(name, namespace);
      const want = body.spec?.replicas ?? 1;
      const s = body.status;
      return (s?.observedGeneration ?? 0) >= (body.metadata?.generation ?? 1) && s?.updatedReplicas === want && s?.availableReplicas === want && (s?.replicas ?? 0) === want;
    },
    timeoutMs,
  );
}

/**
 * The manual's `short-drama-prod`, by server-side apply (field manager runbook-testbed): safe to
 * run on every start, and it puts back what tests changed. short-drama-app gets two revisions
 * the first time (release 1.4.1, then 1.4.2).
 */
export async function seedKubernetes(ctx: TestbedContext, options: { beforeApp?: () => Promise<void> } = {}): Promise<void> {
  const { layout } = ctx;
  const t0 = Date.now();
  const kc = adminKc(layout);
  const core = kc.makeApiClient(CoreV1Api);
  writeSeedFiles(layout);
  await waitUntil(
    `kwok node ${kwokNode} Ready`,
    async () => (await core.readNode(kwokNode)).body.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    60_000,
    join(layout.stateDir, 'kube-kwok.log'),
  );
  await applyObjects(kc, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'app.kubernetes.io/part-of': 'short-drama' } } } as Obj]);
  // Pods need the namespace's default ServiceAccount (made by the controller manager).
  await waitUntil(`ServiceAccount ${ns}/default`, async () => (await readOrUndefined(() => core.readNamespacedServiceAccount('default', ns))) !== undefined, 60_000);
  // PostgreSQL (uid 999 in its image) initialises its data folder on the volume itself.
  if (ctx.realNode) prepareVolume(volumeDir(layout, 'postgres'), postgresUid);
  await seedClusterIssuer(kc);
  await applyObjects(kc, manualObjects(ctx));
  // On the real node the app logs in: its database and role first.
  await Promise.all(['postgres', 'redis'].map((name) => waitForRollout(kc, ns, name)));
  await options.beforeApp?.();

  await seedAppReleases(kc, ctx.realNode);

  // cert-manager issues the Ingress's certificate (ingress-shim, then the CA issuer); the absent
  // ingress controller's part, the Ingress's address, is published here.
  await waitUntil(`certificates.cert-manager.io/${appTlsCertificate} Ready`, () => certificateReady(kc, ns, appTlsCertificate), 60_000);
  await publishIngressAddress(kc, ns, 'app-ingress');

  await waitForRollout(kc, ns, 'short-drama-app');
  await writeServiceAccountKubeconfig(layout, kc, ns, readonlyServiceAccount, readonlyKubeconfigPath(layout));
  await writeServiceAccountKubeconfig(layout, kc, ns, prometheusServiceAccount, prometheusKubeconfigPath(layout));
  await applyWorkerAccount(layout, kc, adminKubeconfigPath(layout));
  ctx.log(`kubernetes: short-drama-prod seeded in ${Date.now() - t0} ms`);
}

/** The address the sandbox's (absent) ingress controller publishes for Ingresses. */
export const ingressAddress = '127.0.0.1';

/**
 * What an ingress controller does once it serves an Ingress: its address in
 * status.loadBalancer.ingress, through the status subresource. A merge patch of the whole list:
 * running it again changes nothing.
 */
export async function publishIngressAddress(kc: KubeConfig, namespace: string, name: string, ip = ingressAddress): Promise<void> {
  await kc
    .makeApiClient(NetworkingV1Api)
    .patchNamespacedIngressStatus(name, namespace, { status: { loadBalancer: { ingress: [{ ip }] } } }, undefined, undefined, testbedFieldManager, undefined, undefined, {
      headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH },
    });
}

/** Whether a cert-manager Certificate exists and is Ready. */
export async function certificateReady(kc: KubeConfig, namespace: string, name: string): Promise<boolean> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const cert = (await readOrUndefined(() => custom.getNamespacedCustomObject('cert-manager.io', 'v1', namespace, 'certificates', name))) as
    { status?: { conditions?: Array<{ type: string; status: string }> } } | undefined;
  return cert?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}
