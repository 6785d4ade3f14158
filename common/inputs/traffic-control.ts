import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

export const rateLimitAnnotation = 'nginx.ingress.kubernetes.io/limit-rps';
export const defaultBackendAnnotation = 'nginx.ingress.kubernetes.io/default-backend';
/** The only annotations trafficControl sets, and so the only ones a restore may put back. */
export const trafficAnnotations = [rateLimitAnnotation, defaultBackendAnnotation] as const;
/**
 * Ingress annotation holding, as JSON, the value each traffic annotation had before the first
 * trafficControl run changed it (null: it was not set). Later runs keep the first value; a
 * restore (or maintenance-off, for default-backend) puts it back and drops it from the record.
 */
export const previousAnnotationsAnnotation = 'runbooks.example/previous-annotations';

export const trafficActions = ['rate-limit', 'maintenance-on', 'maintenance-off', 'restore'] as const;
export type TrafficAction = (typeof trafficActions)[number];

/** 流量控制 (`kubectl annotate ingress ... --overwrite`): the manual's names and numbers are the defaults. */
export const trafficControlInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    ingress: kubeName.default('app-ingress'),
    /**
     * rate-limit: limit-rps = rps; maintenance-on: default-backend = maintenanceService;
     * maintenance-off: default-backend back to what it was; restore: every recorded annotation back.
     */
    action: z.enum(trafficActions, { message: `expected one of ${trafficActions.join(', ')}` }).default('rate-limit'),
    /** Requests per second per client IP (the manual: 50). */
    rps: z
      .number({ message: 'expected requests per second, such as 50' })
      .int({ message: 'expected whole requests per second' })
      .min(1, { message: 'at least 1 request per second' })
      .max(100_000, { message: 'at most 100000' })
      .default(50),
    /** The Service in the same namespace that serves the maintenance page. */
    maintenanceService: kubeName.default('maintenance-page'),
  })
  .strict();

export type TrafficControlInput = z.input<typeof trafficControlInput>;
