import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatedManifests, workerRbacObjects } from '../../scripts/deploy-manifests';
import { requiredPermissions, workerRbacRules, type PolicyRule } from '../../activities/kubernetes-permissions';
import { defaultS3Prefixes } from '../../config/schema';
import { backupBucket, workerS3Actions } from '../../scripts/testbed/s3-server';
import { redisWorkerRules } from '../../scripts/testbed/redis-server';
import { withPsqlVariables } from '../../scripts/testbed/seed-postgres';

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
