/**
 * Subresources that run a command in, attach to, or open a tunnel to a pod, node or service. Any
 * verb on them is more than reading: `kubectl exec` and `port-forward` over websockets are GETs.
 */
export const tunnellingSubresources = ['exec', 'attach', 'portforward', 'proxy', 'ephemeralcontainers'] as const;

/** What the read-only post-check asks the authorizer about, each with `get` and `create`. */
export const tunnelChecks: ReadonlyArray<{ group: string; resource: string; subresource: string }> = [
  ...(['exec', 'attach', 'portforward', 'proxy', 'ephemeralcontainers'] as const).map((subresource) => ({ group: '', resource: 'pods', subresource })),
  { group: '', resource: 'services', subresource: 'proxy' },
  { group: '', resource: 'nodes', subresource: 'proxy' },
];

export const tunnelVerbs = ['get', 'create'] as const;

/**
 * Why an RBAC resource (`pods`, `pods/exec`, `*`, `pods/*`, `*\/proxy`) would grant a command or a
 * tunnel, or undefined when it would not. Wildcards count: `*` and `pods/*` include pods/exec.
 */
export function tunnelProblem(resource: string): string | undefined {
  const [base, sub] = resource.split('/');
  if (sub === undefined) return base === '*' ? `resource "*" includes ${tunnellingSubresources.map((s) => `pods/${s}`).join(', ')}` : undefined;
  if (sub === '*') return `resource "${resource}" includes ${tunnellingSubresources.map((s) => `${base}/${s}`).join(', ')}`;
  if ((tunnellingSubresources as readonly string[]).includes(sub)) return `resource "${resource}" runs commands in or tunnels to workloads (exec, attach, port-forward and proxy use GET too)`;
  return undefined;
}
