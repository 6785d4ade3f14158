import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatedManifests, workerRbacObjects } from '../../scripts/deploy-manifests';
import { requiredPermissions, workerRbacRules, type PolicyRule } from '../../activities/kubernetes-permissions';
import { defaultS3Prefixes } from '../../config/schema';
import { backupBucket, workerS3Actions } from '../../scripts/testbed/s3-server';
import { redisWorkerRules } from '../../scripts/testbed/redis-server';
import { withPsqlVariables } from '../../scripts/testbed/seed-postgres';
import { parseAllDocuments } from 'yaml';
import { environmentVariables, loadConfig } from '../../config/load';

const root = join(__dirname, '..', '..');

describe('deploy/kubernetes', () => {
  test.each(Object.entries(generatedManifests()))('%s is what `npm run manifests` generates from the permission table (run it after changing the table)', (path, text) => {
    expect(readFileSync(join(root, path), 'utf8')).toBe(text);
  });

  test('the worker RBAC grants every permission of the table and nothing else: no wildcard, no escalate/bind/impersonate', () => {
    const { namespaced, clusterScoped } = workerRbacRules();
    const granted = (rules: PolicyRule[]) => rules.flatMap((rule) => rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${resource}.${group}`))));
    const wanted = (cluster: boolean) =>
      requiredPermissions.filter((p) => (p.clusterScoped === true) === cluster).map((p) => `${p.verb} ${p.resource}${p.subresource ? `/${p.subresource}` : ''}.${p.group}`);
    expect(new Set(granted(namespaced))).toEqual(new Set(wanted(false)));
    expect(new Set(granted(clusterScoped))).toEqual(new Set(wanted(true)));
    for (const text of [...granted(namespaced), ...granted(clusterScoped)]) expect(text).not.toMatch(/\*|^(escalate|bind|impersonate) /);
  });

  test('the base binds the target role in each target namespace only, and the cluster-scoped reads cluster-wide', () => {
    const objects = workerRbacObjects(['ns-a', 'ns-b']) as { kind: string; metadata: { namespace?: string } }[];
    expect(objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}`)).toEqual([
      'ServiceAccount runbook-automation',
      'ClusterRole ',
      'RoleBinding ns-a',
      'RoleBinding ns-b',
      'ClusterRole ',
      'ClusterRoleBinding ',
    ]);
  });
});

describe('least privilege beyond Kubernetes: the deploy files match the defaults the worker is configured with', () => {
  test('deploy/s3: the IAM policy writes under the default prefixes only, as the sandbox identity does', () => {
    const policy = JSON.parse(readFileSync(join(root, 'deploy/s3/runbook-worker-policy.json'), 'utf8')) as { Statement: Array<{ Action: string[]; Resource: string[] }> };
    const writes = policy.Statement.filter((s) => s.Action.some((a) => /Put|Delete/.test(a)));
    expect(writes.flatMap((s) => s.Resource).sort()).toEqual(defaultS3Prefixes.map((prefix) => `arn:aws:s3:::${backupBucket}/${prefix}*`).sort());
    for (const s of policy.Statement) expect([...s.Action, ...s.Resource].join(' ')).not.toMatch(/s3:\*|:::\*|:::runbook-backups\/\*/);
    expect(
      workerS3Actions(backupBucket)
        .filter((a) => a.startsWith('Write:'))
        .sort(),
    ).toEqual(defaultS3Prefixes.map((prefix) => `Write:${backupBucket}/${prefix}*`).sort());
  });

  test('deploy/redis: the ACL allows the default key patterns and the tallies, no allkeys or allcommands, and only named commands', () => {
    const rules = redisWorkerRules();
    expect(rules.filter((r) => r.startsWith('~')).sort()).toEqual(['~runbook-automation:*', '~session:*']);
    expect(rules).toContain('-@all');
    expect(rules).not.toEqual(expect.arrayContaining(['allkeys']));
    for (const rule of rules.filter((r) => r.startsWith('+'))) expect(rule).toMatch(/^\+[a-z]+(\|[a-z]+)?$/);
  });

  test('deploy/postgres: the worker role is never a superuser nor CREATEROLE, and the psql variables are all filled', () => {
    const sql = readFileSync(join(root, 'deploy/postgres/runbook-worker.sql'), 'utf8');
    expect(sql).toMatch(/ALTER ROLE runbook_worker LOGIN NOSUPERUSER NOCREATEROLE CREATEDB NOREPLICATION NOBYPASSRLS;/);
    const filled = withPsqlVariables(sql, { database: 'db"x', table_owner: 'owner', drill_role: "dr'ill" });
    expect(filled).not.toMatch(/:['"][a-z_]+['"]/);
    expect(filled).toContain(`GRANT CONNECT ON DATABASE "db""x" TO runbook_worker;`);
    expect(filled).toContain(`set_config('runbook.drill_role', 'dr''ill', false)`);
    expect(() => withPsqlVariables(sql, { database: 'd' })).toThrow(/no value for psql variable table_owner/);
  });
});

interface Container {
  name: string;
  command: string[];
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports: Array<{ name: string; containerPort: number }>;
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean; capabilities: { drop: string[] } };
}
interface Workload {
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  spec: {
    replicas: number;
    minAvailable?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        automountServiceAccountToken: boolean;
        terminationGracePeriodSeconds?: number;
        securityContext: { runAsNonRoot: boolean; seccompProfile: { type: string } };
        containers: Container[];
      };
    };
  };
}

/** Every object of the base's YAML files. */
function baseObjects(): Workload[] {
  const dir = join(root, 'deploy/kubernetes/base');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Workload));
}

describe('deploy/kubernetes: the workloads', () => {
  const objects = baseObjects();
  const byKind = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;
  const config = byKind('ConfigMap', 'runbook-worker-config').data!;
  const deployments = objects.filter((o) => o.kind === 'Deployment');

  test("the ConfigMap holds only variables the worker reads, no credential, and with the Secret's keys it is a valid configuration", () => {
    for (const name of Object.keys(config)) expect(Object.keys(environmentVariables)).toContain(name);
    expect(Object.keys(config).filter((name) => /PASSWORD|SECRET|TOKEN|_KEY$|KEYS|_URL$/.test(name) && name !== 'PROMETHEUS_URL')).toEqual([]);
    const secret = { DATABASE_URL: 'postgres://runbook_worker:x@postgres:5432/short_drama_prod', REDIS_URL: 'redis://runbook-worker:x@redis:6379/0', S3_ACCESS_KEY_ID: 'a', S3_SECRET_ACCESS_KEY: 'b' };
    const loaded = loadConfig({ env: { ...config, ...secret } });
    expect(loaded.kubernetes).toEqual({ mode: 'in-cluster' });
    expect(loaded.worker).toMatchObject({ healthListen: '0.0.0.0:8080', metricsPort: 9464 });
  });

  test('no Secret value is kept in deploy/: credentials are references', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
  });

  test('every container: non-root, read-only root, no capabilities, RuntimeDefault seccomp, requests and a memory limit, probes on its own port, an entry point the Dockerfile copies', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['runbook-alert-bridge', 'runbook-worker']);
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(d.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': d.metadata.name });
      for (const c of pod.containers) {
        expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
        expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
        expect(c.resources.limits.memory).toBeDefined();
        for (const probe of [c.readinessProbe, c.livenessProbe]) expect(c.ports.map((p) => p.name)).toContain(probe.httpGet.port);
        const [node, importFlag, tsx, entry] = c.command;
        expect([node, importFlag, tsx]).toEqual(['node', '--import', 'tsx']);
        expect(dockerfile).toMatch(new RegExp(`COPY (${entry!.split('/')[0]} |.*${entry})`));
      }
    }
    expect(dockerfile).toContain('CMD ["node", "--import", "tsx", "workers/main.ts"]');
  });

  test('the worker: 2 replicas under a PDB, probes on WORKER_HEALTH_LISTEN, metrics annotated on WORKER_METRICS_PORT, a grace period longer than its shutdown grace', () => {
    const worker = byKind('Deployment', 'runbook-worker');
    const pod = worker.spec.template.spec;
    const container = pod.containers[0]!;
    expect(worker.spec.replicas).toBe(2);
    const pdb = byKind('PodDisruptionBudget', 'runbook-worker');
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: worker.spec.selector });
    const port = (name: string) => container.ports.find((p) => p.name === name)!.containerPort;
    expect(config.WORKER_HEALTH_LISTEN).toBe(`0.0.0.0:${port('health')}`);
    expect([container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path]).toEqual(['/readyz', '/livez']);
    expect(worker.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': config.WORKER_METRICS_PORT, 'prometheus.io/path': '/metrics' });
    expect(String(port('metrics'))).toBe(config.WORKER_METRICS_PORT);
    expect(pod.terminationGracePeriodSeconds).toBe(Number(config.WORKER_SHUTDOWN_GRACE_SECONDS) + 10);
    expect(container.envFrom).toEqual([{ configMapRef: { name: 'runbook-worker-config' } }, { secretRef: { name: 'runbook-worker-credentials' } }]);
    expect(pod.automountServiceAccountToken).toBe(true);
  });

  test('the alert bridge: no service-account token, its token and signing key from a Secret, a Service on its webhook port', () => {
    const bridge = byKind('Deployment', 'runbook-alert-bridge');
    expect(bridge.spec.template.spec.automountServiceAccountToken).toBe(false);
    const container = bridge.spec.template.spec.containers[0]!;
    expect(container.env?.find((e) => e.name === 'ALERT_BRIDGE_TOKEN')?.valueFrom).toEqual({ secretKeyRef: { name: 'runbook-alert-bridge', key: 'ALERT_BRIDGE_TOKEN' } });
    expect(config.ALERT_BRIDGE_LISTEN).toBe(`0.0.0.0:${container.ports[0]!.containerPort}`);
    expect(byKind('Service', 'runbook-alert-bridge').spec).toMatchObject({ selector: bridge.spec.selector.matchLabels });
  });
});

describe('deploy/kubernetes/audit-policy.yaml (审计日志)', () => {
  const policy = parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes/audit-policy.yaml'), 'utf8'))[0]!.toJSON() as {
    apiVersion: string;
    kind: string;
    omitStages?: string[];
    rules: Array<{ level: string; verbs?: string[]; resources?: Array<{ group: string; resources: string[] }> }>;
  };

  test("the manual's two rules come first, verbatim: they decide Secrets (Metadata, never a value), ConfigMaps and pods", () => {
    expect([policy.apiVersion, policy.kind]).toEqual(['audit.k8s.io/v1', 'Policy']);
    // 安全管理 → 审计日志 → 启用Kubernetes审计, as the manual has it.
    expect(policy.rules.slice(0, 2)).toEqual([
      { level: 'Metadata', resources: [{ group: '', resources: ['secrets', 'configmaps'] }] },
      { level: 'RequestResponse', resources: [{ group: '', resources: ['pods'] }] },
    ]);
  });

  test('ours after them: workloads at Metadata (a rollout is logged), ReplicaSets created or deleted, and nothing else', () => {
    const ours = policy.rules.slice(2);
    expect(ours[0]).toEqual({ level: 'Metadata', resources: [{ group: 'apps', resources: expect.arrayContaining(['deployments', 'statefulsets', 'daemonsets', 'deployments/scale']) }] });
    expect(ours[1]).toEqual({ level: 'Metadata', verbs: ['create', 'delete', 'deletecollection'], resources: [{ group: 'apps', resources: ['replicasets'] }] });
    // The catch-all last: the log stays small.
    expect(ours.at(-1)).toEqual({ level: 'None' });
    // No rule logs a body above Metadata for anything but the manual's pods.
    expect(policy.rules.filter((r) => r.level === 'Request' || r.level === 'RequestResponse')).toEqual([policy.rules[1]]);
    expect(policy.omitStages).toEqual(['RequestReceived']);
  });
});
