import { AuthorizationV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { describePermission, excessPrivileges, requiredPermissions } from './kubernetes-permissions';
import type { PreflightRow } from '../common/preflight';
import { errorText } from '../common/failures';
import { excessOutcome, notConfigured, runChecks } from './preflight-checks';
import { createKubernetesAccessActivities } from './kubernetes-access';
import { createKubernetesCertificateActivities } from './kubernetes-certificates';
import { createKubernetesConfigActivities } from './kubernetes-config';
import { createKubernetesExecActivities } from './kubernetes-exec';
import { createKubernetesNetworkActivities } from './kubernetes-network';
import { createKubernetesPodActivities } from './kubernetes-pods';
import { createKubernetesRolloutActivities } from './kubernetes-rollouts';
import { createKubernetesStorageActivities } from './kubernetes-storage';
import { createKubernetesUnusedActivities } from './kubernetes-unused';
import { createKubernetesUsageActivities } from './kubernetes-usage';

export interface KubernetesDeps {
  /** Absent when no cluster is configured. */
  kube?: KubeConfig;
  allowedNamespaces: string[];
}

export function createKubernetesActivities({ kube, allowedNamespaces }: KubernetesDeps) {
  const scope = { kube, allowedNamespaces };
  return {
    ...createKubernetesPodActivities(scope),
    ...createKubernetesUsageActivities(scope),
    ...createKubernetesExecActivities(scope),
    ...createKubernetesNetworkActivities(scope),
    ...createKubernetesStorageActivities(scope),
    ...createKubernetesRolloutActivities(scope),
    ...createKubernetesCertificateActivities(scope),
    ...createKubernetesConfigActivities(scope),
    ...createKubernetesUnusedActivities(scope),
    ...createKubernetesAccessActivities(scope),
    async preflightKubernetes(): Promise<PreflightRow[]> {
      if (!kube) return notConfigured('kubernetes');
      const rows = await runChecks('kubernetes', [
        [
          'API reachable',
          async () => {
            const { body } = await kube.makeApiClient(VersionApi).getCode();
            return { ok: true, detail: `Kubernetes ${body.gitVersion} at ${kube.getCurrentCluster()?.server}` };
          },
        ],
      ]);
      if (rows[0]?.status !== 'PASS') return rows;
      const authorization = kube.makeApiClient(AuthorizationV1Api);
      const reviews = requiredPermissions.flatMap((permission) => (permission.clusterScoped ? [undefined] : allowedNamespaces).map((namespace) => ({ permission, namespace })));
      const results = await Promise.all(
        reviews.map(async ({ permission, namespace }): Promise<PreflightRow> => {
          const check = `can ${describePermission(permission, namespace)}`;
          try {
            const { body } = await authorization.createSelfSubjectAccessReview({
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SelfSubjectAccessReview',
              spec: {
                resourceAttributes: {
                  verb: permission.verb,
                  group: permission.group,
                  resource: permission.resource,
                  subresource: permission.subresource,
                  namespace,
                },
              },
            });
            const allowed = body.status?.allowed === true;
            const reason = body.status?.reason ? `: ${body.status.reason}` : '';
            return { target: 'kubernetes', check, status: allowed ? 'PASS' : 'FAIL', detail: allowed ? `allowed (${permission.usedBy})` : `denied${reason}; needed by ${permission.usedBy}` };
          } catch (err) {
            return { target: 'kubernetes', check, status: 'FAIL', detail: errorText(err) };
          }
        }),
      );
      return [...rows, ...results, await excessPrivilegesRow(authorization, allowedNamespaces)];
    },
  };
}

/** Namespaces no runbook may touch but where an over-privileged account would show itself. */
const systemNamespaces = ['kube-system'];

/** One row: what the account may do beyond the runbooks' needs (asked with SelfSubjectRulesReview). */
async function excessPrivilegesRow(authorization: AuthorizationV1Api, allowedNamespaces: string[]): Promise<PreflightRow> {
  const check = 'no excess privileges';
  try {
    const problems: string[] = [];
    for (const namespace of [...allowedNamespaces, ...systemNamespaces]) {
      const { body } = await authorization.createSelfSubjectRulesReview({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } });
      problems.push(...excessPrivileges(body.status?.resourceRules ?? [], namespace, allowedNamespaces.includes(namespace)));
    }
    const { detail, warn } = excessOutcome(
      problems,
      `in ${[...allowedNamespaces, ...systemNamespaces].join(', ')}: no wildcard, escalate, bind or impersonate, nothing in ${systemNamespaces.join(', ')}`,
    );
    return { target: 'kubernetes', check, status: warn ? 'WARN' : 'PASS', detail };
  } catch (err) {
    return { target: 'kubernetes', check, status: 'FAIL', detail: errorText(err) };
  }
}
