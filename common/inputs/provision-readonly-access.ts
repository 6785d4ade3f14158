import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';
import { tunnelProblem } from '../rbac-tunnels';

/** Only reading verbs: the runbook's name promises read-only access. */
export const readonlyVerbs = ['get', 'list', 'watch'] as const;

/** A resource as RBAC names it (plural, lowercase), optionally with a subresource such as pods/log. */
const rbacResource = z
  .string()
  .regex(/^[a-z][a-z0-9]*(\/[a-z][a-z0-9]*)?$/, { message: 'expected a resource such as pods, deployments or pods/log (no wildcards)' })
  // Reading a Secret reveals its values: that is never "read-only" access to hand out.
  .refine((r) => r.split('/')[0] !== 'secrets', { message: 'secrets are never granted by provisionReadonlyAccess: reading a Secret reveals its values' })
  // Read-only must not mean "may exec into pods": those subresources are refused whatever the verb.
  .superRefine((r, ctx) => {
    const problem = r.includes('*') ? undefined : tunnelProblem(r); // wildcards: the pattern's message
    if (problem) ctx.addIssue({ code: 'custom', message: `${problem}: never granted by provisionReadonlyAccess` });
  });

/** "" is the core group (pods, services); others are DNS names such as apps. */
const apiGroup = z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$/, { message: 'expected an API group such as "" (core) or apps (no wildcards)' });

export const readonlyRule = z
  .object({
    apiGroups: z.array(apiGroup).min(1, { message: 'at least one API group ("" is the core group)' }),
    resources: z.array(rbacResource).min(1, { message: 'at least one resource' }),
    verbs: z.array(z.enum(readonlyVerbs, { message: 'only get, list and watch: this runbook grants read-only access' })).min(1, { message: 'at least one verb' }),
  })
  .strict();

export type ReadonlyRule = z.infer<typeof readonlyRule>;

/**
 * RBAC配置: `kubectl create serviceaccount readonly-user`, `kubectl create role readonly
 * --verb=get,list,watch --resource=pods,services,deployments` and `kubectl create rolebinding
 * readonly-binding`. The manual's names are the defaults; the rules are what that kubectl command
 * creates (one rule per API group: pods and services are core, deployments are apps).
 */
export const provisionReadonlyAccessInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    serviceAccount: kubeName.default('readonly-user'),
    role: kubeName.default('readonly'),
    roleBinding: kubeName.default('readonly-binding'),
    rules: z
      .array(readonlyRule)
      .min(1, { message: 'at least one rule' })
      .max(20, { message: 'at most 20 rules' })
      .default([
        { apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch'] },
      ]),
  })
  .strict();

export type ProvisionReadonlyAccessInput = z.input<typeof provisionReadonlyAccessInput>;
