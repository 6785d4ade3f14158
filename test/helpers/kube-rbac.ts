import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorizationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { PolicyRule, RequiredPermission } from '../../activities/kubernetes-permissions';
import { workerNamespace } from '../../scripts/deploy-manifests';
import { writeServiceAccountKubeconfig } from '../../scripts/testbed/service-account-access';
import { waitUntil } from '../../scripts/testbed/processes';
import { kubernetesNamespace, layout } from './kube-cluster';

export interface AccountRules {
  /** Bound in short-drama-prod. */
  namespaced: PolicyRule[];
  clusterScoped: PolicyRule[];
  /** Bound in kube-system (an account that holds more than it should). */
  kubeSystem?: PolicyRule[];
}

/**
 * A scratch ServiceAccount in the worker's namespace with the given rules (Role and RoleBinding of
 * its name in short-drama-prod, a ClusterRole and ClusterRoleBinding, optionally a Role in
 * kube-system), and a kubeconfig that logs in as it. Rules can be replaced; remove() deletes it all.
 */
export async function grantServiceAccount(admin: KubeConfig, account: string, rules: AccountRules) {
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const authorization = admin.makeApiClient(AuthorizationV1Api);
  const subjects = [{ kind: 'ServiceAccount', name: account, namespace: workerNamespace }];
  const roleRef = (kind: 'Role' | 'ClusterRole') => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name: account });
  const roleNamespaces = [kubernetesNamespace, ...(rules.kubeSystem ? ['kube-system'] : [])];
  const rulesIn = (current: AccountRules, namespace: string) => (namespace === 'kube-system' ? (current.kubeSystem ?? []) : current.namespaced);

  await core.createNamespacedServiceAccount(workerNamespace, { metadata: { name: account } });
  for (const namespace of roleNamespaces) {
    await rbac.createNamespacedRole(namespace, { metadata: { name: account }, rules: rulesIn(rules, namespace) });
    await rbac.createNamespacedRoleBinding(namespace, { metadata: { name: account }, roleRef: roleRef('Role'), subjects });
  }
  await rbac.createClusterRole({ metadata: { name: account }, rules: rules.clusterScoped });
  await rbac.createClusterRoleBinding({ metadata: { name: account }, roleRef: roleRef('ClusterRole'), subjects });

  const dir = mkdtempSync(join(tmpdir(), 'kube-rbac-'));
  const file = join(dir, 'kubeconfig');
  await writeServiceAccountKubeconfig(layout, admin, workerNamespace, account, file);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(file);

  return {
    kubeConfig,
    async setRules(next: AccountRules): Promise<void> {
      for (const namespace of roleNamespaces) await rbac.replaceNamespacedRole(account, namespace, { metadata: { name: account }, rules: rulesIn(next, namespace) });
      await rbac.replaceClusterRole(account, { metadata: { name: account }, rules: next.clusterScoped });
    },
    /** RBAC changes reach the authorizer through its informers: wait until it denies this permission. */
    async waitUntilDenied(permission: RequiredPermission): Promise<void> {
      await waitUntil(
        `the authorizer to deny ${permission.verb} ${permission.resource} to ${account}`,
        async () => {
          const { body } = await authorization.createSubjectAccessReview({
            spec: {
              user: `system:serviceaccount:${workerNamespace}:${account}`,
              groups: ['system:serviceaccounts', `system:serviceaccounts:${workerNamespace}`, 'system:authenticated'],
              resourceAttributes: {
                verb: permission.verb,
                group: permission.group,
                resource: permission.resource,
                subresource: permission.subresource,
                namespace: permission.clusterScoped ? undefined : kubernetesNamespace,
              },
            },
          });
          return body.status?.allowed === false;
        },
        10_000,
      );
    },
    async remove(): Promise<void> {
      rmSync(dir, { recursive: true, force: true });
      const ignoreMissing = (err: unknown) => {
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      };
      await rbac.deleteClusterRoleBinding(account).catch(ignoreMissing);
      await rbac.deleteClusterRole(account).catch(ignoreMissing);
      for (const namespace of roleNamespaces) {
        await rbac.deleteNamespacedRoleBinding(account, namespace).catch(ignoreMissing);
        await rbac.deleteNamespacedRole(account, namespace).catch(ignoreMissing);
      }
      await core.deleteNamespacedSecret(`${account}-token`, workerNamespace).catch(ignoreMissing);
      await core.deleteNamespacedServiceAccount(account, workerNamespace).catch(ignoreMissing);
    },
  };
}
