import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

const labelKey = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelValue = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** A matchLabels selector; never empty, because an empty selector matches every pod of the namespace. */
const selector = z
  .record(
    z.string().max(316).regex(labelKey, { message: 'expected a label key such as app or app.kubernetes.io/name' }),
    z.string().regex(labelValue, { message: 'expected a label value (at most 63 letters, digits, "-", "_", ".")' }),
  )
  .refine((labels) => Object.keys(labels).length > 0, { message: 'at least one label: an empty selector matches every pod of the namespace' });

const port = z.number({ message: 'expected a port number' }).int({ message: 'expected a whole port number' }).min(1, { message: 'ports are 1-65535' }).max(65535, { message: 'ports are 1-65535' });

/**
 * 网络策略: the manual's NetworkPolicy `app-network-policy`. The app's pods (app=short-drama-app)
 * accept traffic only from the ingress controller's pods (app=nginx-ingress) on TCP 8000 and may
 * connect only to postgres (TCP 5432) and redis (TCP 6379). Names, labels and ports are inputs
 * with the manual's values as defaults.
 */
export const applyNetworkPolicyInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    policy: kubeName.default('app-network-policy'),
    /** The pods the policy restricts (spec.podSelector). */
    appLabels: selector.default({ app: 'short-drama-app' }),
    appPort: port.default(8000),
    /** The only pods (same namespace, as in the manual) allowed in. */
    ingressControllerLabels: selector.default({ app: 'nginx-ingress' }),
    postgresLabels: selector.default({ app: 'postgres' }),
    postgresPort: port.default(5432),
    redisLabels: selector.default({ app: 'redis' }),
    redisPort: port.default(6379),
  })
  .strict();

export type ApplyNetworkPolicyInput = z.input<typeof applyNetworkPolicyInput>;
