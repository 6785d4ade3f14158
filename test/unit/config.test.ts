import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, hasTargets, loadConfig } from '../../config/load';
import { approvalsVerified } from '../../config/schema';
import { workerVersioning } from '../../workers/worker-versioning';

const minimal = { TEMPORAL_ADDRESS: '127.0.0.1:7233' };

function problemsOf(env: Record<string, string>, file?: string): string[] {
  try {
    loadConfig({ env, file });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('configuration', () => {
  test('the manual is the default: allowlists, task queue, no targets', () => {
    const config = loadConfig({ env: minimal });
    expect(config.temporal).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'runbooks' });
    expect(config.allowlists).toEqual({
      namespaces: ['short-drama-prod'],
      databases: ['short_drama_prod'],
      redisKeyPatterns: ['session:*'],
      s3Prefixes: ['database/', 'runbooks/'],
      // The app's login role: the only role rotateDatabasePassword may change by default.
      rotationRoles: ['short_drama_app'],
    });
    expect(hasTargets(config)).toBe(false);
  });

  test('a missing Temporal address is named with its variable', () => {
    expect(problemsOf({})).toEqual(['temporal.address (env TEMPORAL_ADDRESS): is required']);
  });

  test.each([
    ['TEMPORAL_ADDRESS', 'localhost', 'temporal.address (env TEMPORAL_ADDRESS): expected host:port'],
    ['DATABASE_URL', 'mysql://db/x', 'postgres.url (env DATABASE_URL): expected a postgres:// or postgresql:// URL'],
    ['REDIS_URL', 'http://cache:6379', 'redis.url (env REDIS_URL): expected a redis:// or rediss:// URL'],
    ['S3_BUCKET', 'Not_A_Bucket', 's3.bucket (env S3_BUCKET): expected an S3 bucket name'],
    ['S3_FORCE_PATH_STYLE', 'maybe', 's3.forcePathStyle (env S3_FORCE_PATH_STYLE)'],
    ['SCHEDULE_MONTHLY_ENABLED', 'sometimes', 'schedules.monthly.enabled (env SCHEDULE_MONTHLY_ENABLED)'],
    ['PROMETHEUS_URL', 'prometheus:9090', 'prometheus.url (env PROMETHEUS_URL): expected an http:// or https:// URL'],
    ['ALLOWED_NAMESPACES', 'short-drama-prod,kube-system', 'allowlists.namespaces.1 (env ALLOWED_NAMESPACES): kube-system'],
    ['ALLOWED_ROTATION_ROLES', 'short_drama_app,app_*', 'allowlists.rotationRoles.1 (env ALLOWED_ROTATION_ROLES): expected a PostgreSQL role name (no wildcards)'],
    ['ALLOWED_REDIS_KEY_PATTERNS', '*', 'allowlists.redisKeyPatterns.0 (env ALLOWED_REDIS_KEY_PATTERNS): a wildcard-everything Redis key pattern is refused'],
    ['ALLOWED_S3_PREFIXES', 'database', 'allowlists.s3Prefixes.0 (env ALLOWED_S3_PREFIXES): expected a prefix ending in "/"'],
    ['S3_EVIDENCE_PREFIX', 'database/reports/', 's3.evidencePrefix (env S3_EVIDENCE_PREFIX): backupPrefix and evidencePrefix must not contain each other'],
    ['S3_BACKUP_KEEP_NEWEST', '0', 's3.backupKeepNewest (env S3_BACKUP_KEEP_NEWEST)'],
    ['S3_BACKUP_MIN_AGE_DAYS', '60', 'checklists.thresholds.backupRetentionDays (env CHECKLIST_THRESHOLDS): below s3.backupMinAgeDays (60)'],
    ['WORKER_METRICS_PORT', '70000', 'worker.metricsPort (env WORKER_METRICS_PORT): expected a port number 0-65535'],
    ['LOG_LEVEL', 'LOUD', 'worker.logLevel (env LOG_LEVEL)'],
    ['WORKER_DEPLOYMENT_NAME', 'runbook.worker', 'worker.deploymentName (env WORKER_DEPLOYMENT_NAME): expected a Worker Deployment name of letters, digits, dash or underscore'],
    ['WORKER_DEPLOYMENT_NAME', 'runbook-worker', 'worker.buildId (env WORKER_BUILD_ID): a versioned worker needs its build id'],
    ['WORKER_BUILD_ID', 'v1 beta', 'worker.buildId (env WORKER_BUILD_ID): expected a build id such as the image tag'],
    ['RUNBOOK_APPROVERS', '[{"id":"alice","roles":["boss"]}]', 'approvers.0.roles.0 (env RUNBOOK_APPROVERS)'],
  ])('bad %s is rejected with the field named', (variable, value, expected) => {
    const problems = problemsOf({ ...minimal, S3_BUCKET: 'ok-bucket', [variable]: value });
    expect(problems.some((p) => p.startsWith(expected))).toBe(true);
  });

  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIth1yr49gePWotH39Sykkd4w/Ckx8yf48iK1fLzXmAA alice';
  test.each([
    [[{ id: 'alice', roles: [] }], 'approvers.0.roles (env RUNBOOK_APPROVERS): a person needs at least one role'],
    [[{ id: 'alice', roles: ['l1'], publicKey: 'ssh-rsa AAAAB3NzaC1yc2E alice' }], 'approvers.0.publicKey (env RUNBOOK_APPROVERS): expected an OpenSSH Ed25519 public key'],
    [[{ id: 'alice', roles: ['l1'], publicKey: 'ssh-ed25519 AAAAnotbase64!!' }], 'approvers.0.publicKey (env RUNBOOK_APPROVERS): expected an OpenSSH Ed25519 public key'],
    [[{ id: 'alert-bridge', kind: 'service' }], 'approvers.0.publicKey (env RUNBOOK_APPROVERS): a service needs a publicKey'],
    [[{ id: 'bot', kind: 'service', publicKey: key, roles: ['cto'] }], 'approvers.0.roles (env RUNBOOK_APPROVERS): a service approves nothing itself'],
    [[{ id: 'alice', roles: ['l1'], vouchesFor: ['l1'] }], 'approvers.0.vouchesFor (env RUNBOOK_APPROVERS): only a channel vouches for others'],
    [
      [
        { id: 'alice', roles: ['l1'] },
        { id: 'alice', roles: ['l2'] },
      ],
      'approvers.1.id (env RUNBOOK_APPROVERS): alice is listed twice',
    ],
    [[{ id: 'alice', roles: ['l1'], slackUserId: 'alice' }], 'approvers.0.slackUserId (env RUNBOOK_APPROVERS): expected a Slack user id'],
  ])('approver identity %j is refused with a sentence', (approvers, expected) => {
    const problems = problemsOf({ ...minimal, RUNBOOK_APPROVERS: JSON.stringify(approvers) });
    expect(problems.some((p) => p.startsWith(expected))).toBe(true);
  });

  test('signatures are required as soon as anyone has a key, unless configuration says otherwise', () => {
    const withKey = loadConfig({ env: { ...minimal, RUNBOOK_APPROVERS: JSON.stringify([{ id: 'alice', roles: ['l1'], publicKey: key }]) } });
    const withoutKeys = loadConfig({ env: { ...minimal, RUNBOOK_APPROVERS: JSON.stringify([{ id: 'alice', roles: ['l1'] }]) } });
    const forced = loadConfig({ env: { ...minimal, RUNBOOK_APPROVERS: JSON.stringify([{ id: 'alice', roles: ['l1'] }]), APPROVALS_REQUIRE_SIGNATURES: 'true' } });
    expect([approvalsVerified(withKey), approvalsVerified(withoutKeys), approvalsVerified(forced)]).toEqual([true, false, true]);
    expect(withKey.approvers[0]).toEqual({ id: 'alice', kind: 'person', roles: ['l1'], publicKey: key });
    expect(withKey.approvals).toMatchObject({ statementLifetime: '10m', quorum: [] });
    expect(problemsOf({ ...minimal, APPROVAL_QUORUM: '[{"steps":["restart"],"approvals":0}]' }).some((p) => p.startsWith('approvals.quorum.0.approvals (env APPROVAL_QUORUM)'))).toBe(true);
  });

  test('errors never echo a value (it may be a secret)', () => {
    const problems = problemsOf({ ...minimal, DATABASE_URL: 'mysql://admin:hunter2@db/x', S3_BUCKET: 'b', S3_ACCESS_KEY_ID: 'AKIA-SECRET-ID' });
    expect(problems.join('\n')).not.toMatch(/hunter2|AKIA-SECRET-ID/);
    expect(problems).toContain('s3.bucket (env S3_BUCKET): expected an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)');
    expect(problems).toContain('s3.secretAccessKey (env S3_SECRET_ACCESS_KEY): accessKeyId and secretAccessKey go together');
  });

  test('a YAML file sets everything and environment variables override it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'runbook-config-'));
    const file = join(dir, 'runbook.yaml');
    writeFileSync(
      file,
      [
        'temporal: { address: "temporal.example:7233", namespace: ops, taskQueue: runbooks-prod, tls: { enabled: true, serverName: temporal.example } }',
        'kubernetes: { kubeconfigPath: /etc/runbook/kubeconfig, context: prod }',
        'postgres: { url: "postgres://runbook@db:5432/short_drama_prod" }',
        's3: { bucket: backups, region: eu-west-1 }',
        'allowlists: { namespaces: [short-drama-prod, short-drama-staging] }',
        'approvers: [ { id: alice, roles: [l1, l2] }, { id: bob, roles: [manager] } ]',
        'notifications: { webhookUrl: "https://hooks.example/ops" }',
      ].join('\n'),
    );
    const config = loadConfig({ env: { TEMPORAL_NAMESPACE: 'ops-override' }, file });
    expect(config.temporal).toMatchObject({ address: 'temporal.example:7233', namespace: 'ops-override', taskQueue: 'runbooks-prod', tls: { enabled: true } });
    expect(config.kubernetes).toEqual({ mode: 'kubeconfig', kubeconfigPath: '/etc/runbook/kubeconfig', context: 'prod' });
    expect(config.s3).toMatchObject({ bucket: 'backups', region: 'eu-west-1', backupPrefix: 'database/', forcePathStyle: false });
    expect(config.allowlists.namespaces).toEqual(['short-drama-prod', 'short-drama-staging']);
    expect(config.approvers).toEqual([
      { id: 'alice', kind: 'person', roles: ['l1', 'l2'] },
      { id: 'bob', kind: 'person', roles: ['manager'] },
    ]);
    expect(hasTargets(config)).toBe(true);
  });

  test('a broken YAML file is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'runbook-config-'));
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'temporal: [unclosed');
    expect(problemsOf({}, file)[0]).toMatch(/^RUNBOOK_CONFIG: .*broken\.yaml is not valid YAML/);
    expect(problemsOf({}, join(dir, 'absent.yaml'))[0]).toMatch(/^RUNBOOK_CONFIG: cannot read/);
  });

  describe('alerting (the Alertmanager bridge)', () => {
    test("defaults: loopback listen address, no token, the catalog's alert table", () => {
      const { alerting } = loadConfig({ env: minimal });
      expect(alerting.listen).toBe('127.0.0.1:9095');
      expect(alerting.token).toBeUndefined();
      expect(alerting.routes.map((r) => [r.alertname, r.match, r.runbook, r.severity, r.mode])).toEqual([
        ['ServiceUnavailable', {}, 'podCrashLoop', 'P0', 'plan'],
        ['ApiErrorRateHigh', {}, 'podCrashLoop', 'P1', 'plan'],
        ['DatabaseConnectionsZero', {}, 'dbConnectionExhaustion', 'P0', 'plan'],
        ['ApiLatencyHigh', {}, 'dailyHealthCheck', 'P2', 'plan'],
        ['DiskUsageHigh', {}, 'diskPressure', 'P2', 'plan'],
        ['MemoryUsageHigh', { deployment: 'redis' }, 'redisMemoryPressure', 'P2', 'plan'],
        ['MemoryUsageHigh', { deployment: 'short-drama-app' }, 'podCrashLoop', 'P2', 'plan'],
      ]);
    });

    test('ALERT_BRIDGE_LISTEN, ALERT_BRIDGE_TOKEN and ALERT_ROUTES (JSON) set the section', () => {
      const routes = [{ alertname: 'ApiErrorRateHigh', runbook: 'podCrashLoop', severity: 'P0', mode: 'execute', input: { deployment: 'checkout' } }];
      const { alerting } = loadConfig({ env: { ...minimal, ALERT_BRIDGE_LISTEN: '0.0.0.0:9095', ALERT_BRIDGE_TOKEN: 'a-long-enough-shared-token', ALERT_ROUTES: JSON.stringify(routes) } });
      expect(alerting).toEqual({ listen: '0.0.0.0:9095', token: 'a-long-enough-shared-token', routes: [{ ...routes[0], match: {} }], identity: 'alert-bridge', deadlineMs: 8000, concurrency: 8 });
    });

    test.each([
      ['ALERT_BRIDGE_LISTEN', '9095', 'alerting.listen (env ALERT_BRIDGE_LISTEN): expected host:port'],
      ['ALERT_BRIDGE_LISTEN', '127.0.0.1:70000', 'alerting.listen (env ALERT_BRIDGE_LISTEN): expected a port number 0-65535'],
      ['ALERT_BRIDGE_TOKEN', 'short-secret', 'alerting.token (env ALERT_BRIDGE_TOKEN): expected at least 16 characters'],
      ['ALERT_BRIDGE_DEADLINE_MS', '120000', 'alerting.deadlineMs (env ALERT_BRIDGE_DEADLINE_MS): expected 100-60000 ms'],
      ['ALERT_BRIDGE_CONCURRENCY', '0', 'alerting.concurrency (env ALERT_BRIDGE_CONCURRENCY): expected 1-64'],
      ['ALERT_ROUTES', 'not json', 'alerting.routes (env ALERT_ROUTES)'],
      ['ALERT_ROUTES', '[{"alertname":"X","runbook":"podCrashloop","severity":"P1"}]', 'alerting.routes.0.runbook (env ALERT_ROUTES): expected a runbook of the catalog: applyNetworkPolicy, '],
      ['ALERT_ROUTES', '[{"alertname":"X","runbook":"podCrashLoop","severity":"P5"}]', 'alerting.routes.0.severity (env ALERT_ROUTES): expected one of P0, P1, P2, P3'],
      ['ALERT_ROUTES', '[{"alertname":"X","runbook":"podCrashLoop","severity":"P1","mode":"apply"}]', 'alerting.routes.0.mode (env ALERT_ROUTES): expected "plan" or "execute"'],
      [
        'ALERT_ROUTES',
        '[{"alertname":"X","runbook":"podCrashLoop","severity":"P1","inputFromLabels":{"pvc":"persistentvolumeclaim"}}]',
        'alerting.routes.0.inputFromLabels.pvc (env ALERT_ROUTES): not an input of podCrashLoop; its inputs: namespace, deployment,',
      ],
      [
        'ALERT_ROUTES',
        '[{"alertname":"X","runbook":"podCrashLoop","severity":"P1","inputFromLabels":{"namespace":"kube namespace"}}]',
        'alerting.routes.0.inputFromLabels.namespace (env ALERT_ROUTES): expected a Prometheus label name',
      ],
      ['ALERT_ROUTES', '[{"alertname":"X","runbook":"podCrashLoop","severity":"P1","input":{"memoryLimitFactor":1}}]', 'alerting.routes.0.input.memoryLimitFactor (env ALERT_ROUTES): must be above 1'],
      ['ALERT_ROUTES', '[{"alertname":"X","runbook":"podCrashLoop","severity":"P1","input":{"severity":"P3"}}]', 'alerting.routes.0.input.severity (env ALERT_ROUTES): severity is set by the route'],
      ['ALERT_ROUTES', '[{"alertname":"X","runbook":"podCrashLoop","severity":"P1","runbok":"typo"}]', 'alerting.routes.0 (env ALERT_ROUTES): Unrecognized key'],
      ['ALERT_ROUTES', '[{"runbook":"podCrashLoop","severity":"P1"}]', 'alerting.routes.0.alertname (env ALERT_ROUTES): is required'],
    ])('bad %s (%s) is rejected with the field named', (variable, value, expected) => {
      const problems = problemsOf({ ...minimal, [variable]: value });
      expect(problems).toEqual([expect.stringContaining(expected)]);
      expect(problems[0]!.startsWith(expected)).toBe(true);
    });

    test('the token and other values never appear in the errors', () => {
      const problems = problemsOf({ ...minimal, ALERT_BRIDGE_TOKEN: 'hunter2 with spaces!', ALERT_ROUTES: '[{"alertname":"X","runbook":"secretRunbookName","severity":"P1"}]' });
      expect(problems.join('\n')).not.toMatch(/hunter2|secretRunbookName/);
      expect(problems).toHaveLength(2);
    });

    test('routes from the YAML file', () => {
      const dir = mkdtempSync(join(tmpdir(), 'runbook-config-'));
      const file = join(dir, 'runbook.yaml');
      writeFileSync(
        file,
        ['temporal: { address: "temporal.example:7233" }', 'alerting:', '  routes:', '    - { alertname: DiskUsageHigh, runbook: diskPressure, severity: P1, inputFromLabels: { pvc: claim } }'].join(
          '\n',
        ),
      );
      expect(loadConfig({ env: {}, file }).alerting).toEqual({
        listen: '127.0.0.1:9095',
        identity: 'alert-bridge',
        deadlineMs: 8000,
        concurrency: 8,
        routes: [{ alertname: 'DiskUsageHigh', match: {}, runbook: 'diskPressure', severity: 'P1', mode: 'plan', inputFromLabels: { pvc: 'claim' }, input: {} }],
      });
    });
  });

  test('the audit log without a Kubernetes connection is refused with a sentence naming both', () => {
    expect(() => loadConfig({ env: { ...minimal, KUBERNETES_AUDIT_LOG: '/var/log/kubernetes/audit/audit.log' } })).toThrow(
      'kubernetes.auditLogPath set without a Kubernetes connection: set KUBECONFIG (kubernetes.kubeconfigPath) or KUBE_IN_CLUSTER=true',
    );
  });

  test('Worker Versioning is opt-in: unversioned without a deployment name (a build id alone, as the image carries it, changes nothing)', () => {
    expect(workerVersioning(loadConfig({ env: minimal }).worker)).toEqual({});
    expect(workerVersioning(loadConfig({ env: { ...minimal, WORKER_BUILD_ID: '0.1.0' } }).worker)).toEqual({});
    expect(workerVersioning(loadConfig({ env: { ...minimal, WORKER_DEPLOYMENT_NAME: 'runbook-worker', WORKER_BUILD_ID: '0.1.0' } }).worker)).toEqual({
      workerDeploymentOptions: { version: { deploymentName: 'runbook-worker', buildId: '0.1.0' }, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' },
    });
  });

  test('in-cluster Kubernetes from KUBE_IN_CLUSTER', () => {
    expect(loadConfig({ env: { ...minimal, KUBE_IN_CLUSTER: 'true' } }).kubernetes).toEqual({ mode: 'in-cluster' });
  });

  test("the kube-apiserver's audit log from KUBERNETES_AUDIT_LOG: an absolute path, with the cluster", () => {
    expect(loadConfig({ env: { ...minimal, KUBE_IN_CLUSTER: 'true', KUBERNETES_AUDIT_LOG: '/var/log/kubernetes/audit/audit.log' } }).kubernetes).toEqual({
      mode: 'in-cluster',
      auditLogPath: '/var/log/kubernetes/audit/audit.log',
    });
    expect(loadConfig({ env: { ...minimal, KUBECONFIG: '/k/config', KUBERNETES_AUDIT_LOG: '/audit.log' } }).kubernetes).toEqual({
      mode: 'kubeconfig',
      kubeconfigPath: '/k/config',
      auditLogPath: '/audit.log',
    });
    expect(problemsOf({ ...minimal, KUBECONFIG: '/k/config', KUBERNETES_AUDIT_LOG: 'audit.log' })).toEqual([
      'kubernetes.auditLogPath (env KUBERNETES_AUDIT_LOG): expected an absolute path to the kube-apiserver audit log (--audit-log-path), e.g. /var/log/kubernetes/audit/audit.log',
    ]);
  });
});
