import { tunnelProblem } from '../../common/rbac-tunnels';
import { provisionReadonlyAccessInput } from '../../common/inputs/provision-readonly-access';

describe('tunnelProblem', () => {
  test('exec, attach, port-forward, proxy and ephemeral containers, on any resource, and wildcards that include them', () => {
    for (const r of ['pods/exec', 'pods/attach', 'pods/portforward', 'pods/proxy', 'services/proxy', 'nodes/proxy', '*/proxy', 'pods/ephemeralcontainers']) {
      expect([r, tunnelProblem(r)]).toEqual([r, `resource "${r}" runs commands in or tunnels to workloads (exec, attach, port-forward and proxy use GET too)`]);
    }
    expect(tunnelProblem('pods/*')).toBe('resource "pods/*" includes pods/exec, pods/attach, pods/portforward, pods/proxy, pods/ephemeralcontainers');
    expect(tunnelProblem('*')).toBe('resource "*" includes pods/exec, pods/attach, pods/portforward, pods/proxy, pods/ephemeralcontainers');
  });

  test('reading resources and harmless subresources pass', () => {
    for (const r of ['pods', 'pods/log', 'pods/status', 'deployments/scale', 'services', 'proxies']) expect([r, tunnelProblem(r)]).toEqual([r, undefined]);
  });

  test('provisionReadonlyAccess input refuses them with the reason', () => {
    const parsed = provisionReadonlyAccessInput.safeParse({ startedBy: 'erin', rules: [{ apiGroups: [''], resources: ['pods', 'pods/exec'], verbs: ['get'] }] });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['rules.0.resources.1', 'resource "pods/exec" runs commands in or tunnels to workloads (exec, attach, port-forward and proxy use GET too): never granted by provisionReadonlyAccess'],
    ]);
  });
});
