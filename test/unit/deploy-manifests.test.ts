import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatedManifests, workerRbacObjects } from '../../scripts/deploy-manifests';
import { requiredPermissions, workerRbacRules, type PolicyRule } from '../../activities/kubernetes-permissions';

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
