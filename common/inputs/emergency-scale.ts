import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { cpuCores, memoryBytes } from '../quantity';
import { kubeName } from './fields';

/** The manual's `kubectl scale --replicas=10`. */
export const defaultEmergencyReplicas = 10;
/** The blast radius of one emergency scale-up. */
export const maxEmergencyReplicas = 100;

/**
 * Deployment annotations the scale-up writes and a later `restore: true` run reads, so the size
 * and resources before the emergency survive the run (and the worker): JSON, written once by the
 * first scale-up and kept by later ones, removed by the restore that puts them back.
 */
export const previousSizeAnnotation = 'runbooks.example/emergency-scale-previous-size';
export const previousResourcesAnnotation = 'runbooks.example/emergency-scale-previous-resources';

const cpu = z.string().refine((s) => (cpuCores(s) ?? 0) > 0 && cpuCores(s)! <= 16, { message: 'expected a CPU quantity above 0 and at most 16, such as 500m or 2' });
const memory = z.string().refine((s) => (memoryBytes(s) ?? 0) >= 2 ** 20 && memoryBytes(s)! <= 64 * 2 ** 30, { message: 'expected a memory quantity from 1Mi to 64Gi, such as 512Mi or 4Gi' });
const resources = z.object({ cpu: cpu.optional(), memory: memory.optional() }).strict();

/** 紧急扩容 (`kubectl scale` / `kubectl set resources`): the manual's names and size are the defaults. */
export const emergencyScaleInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    deployment: kubeName.default('short-drama-app'),
    /** The new size (default 10); never below the current one: going back down is `restore`. */
    replicas: z
      .number({ message: `expected a number of replicas, such as ${defaultEmergencyReplicas}` })
      .int({ message: 'expected a whole number of replicas' })
      .min(1, { message: 'at least 1 replica' })
      .max(maxEmergencyReplicas, { message: `at most ${maxEmergencyReplicas} replicas (the emergency cap)` })
      .optional(),
    /** The container whose requests/limits are raised; default the Deployment's first. */
    container: kubeName.optional(),
    /** Raised only: each value must be at least the current one, and already set. */
    requests: resources.optional(),
    limits: resources.optional(),
    /** Put back the replicas, HPA bounds and resources recorded by the earlier scale-up. */
    restore: z.boolean({ message: 'expected true or false' }).default(false),
    /** How long to wait for the new pods to be ready after each change. */
    waitTimeoutSeconds: z.number().int({ message: 'expected whole seconds' }).min(10, { message: 'at least 10 seconds' }).max(3600, { message: 'at most 3600 seconds (1 hour)' }).default(300),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.restore && (v.replicas !== undefined || v.container !== undefined || v.requests !== undefined || v.limits !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['restore'], message: 'restore puts back what the scale-up recorded: give no replicas, container, requests or limits with it' });
    }
  })
  // The default size only for a scale-up: a restore's size comes from the record.
  .transform((v) => ({ ...v, replicas: v.restore ? undefined : (v.replicas ?? defaultEmergencyReplicas) }));

export type EmergencyScaleInput = z.input<typeof emergencyScaleInput>;

const count = z.number().int().min(0).max(1000);
/** The value of previousSizeAnnotation: replicas and the HPA's bounds before the first scale-up. */
export const previousSizeRecord = z
  .object({
    replicas: count,
    autoscaler: z
      .object({ name: kubeName, minReplicas: count.min(1), maxReplicas: count.min(1) })
      .strict()
      .optional(),
  })
  .strict();
export type PreviousSize = z.infer<typeof previousSizeRecord>;

const quantities = z.object({ cpu: z.string().min(1).optional(), memory: z.string().min(1).optional() }).strict();
/** The value of previousResourcesAnnotation: per container, the cpu/memory requests and limits before the first raise. */
export const previousResourcesRecord = z.record(kubeName, z.object({ requests: quantities.optional(), limits: quantities.optional() }).strict());
export type PreviousResources = z.infer<typeof previousResourcesRecord>;
