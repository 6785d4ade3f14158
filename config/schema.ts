import { z } from 'zod';
import { roles } from '../common/runbook';

/** Namespaces no runbook may ever touch, whatever the allowlist says. */
export const forbiddenNamespaces = ['kube-system', 'kube-public', 'kube-node-lease'];

const hostPort = z.string().regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, { message: 'expected host:port, e.g. 127.0.0.1:7233' });
const httpUrl = z.url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' });
/** A duration as Temporal takes it: a number and a unit (ms, s, m, h, d). */
const duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, { message: 'expected a duration such as 90s, 15m, 4h' });
const port = z.coerce.number({ message: 'expected a port number' }).int().min(0, { message: 'expected a port number 0-65535' }).max(65535, { message: 'expected a port number 0-65535' });
const notWildcard = (what: string) =>
  z.string().min(1).refine((value) => !/^[*?]+$/.test(value) && value !== '.*', { message: `a wildcard-everything ${what} is refused` });


export const configSchema = z.object({
  temporal: z.object({
    address: hostPort,
    namespace: z.string().min(1).default('default'),
    taskQueue: z.string().min(1).default('runbooks'),
    apiKey: z.string().min(1).optional(),
    tls: z
      .object({
        enabled: z.boolean().default(false),
        serverName: z.string().optional(),
        caFile: z.string().optional(),
        certFile: z.string().optional(),
        keyFile: z.string().optional(),
      })
      .refine((tls) => Boolean(tls.certFile) === Boolean(tls.keyFile), { message: 'certFile and keyFile go together (mutual TLS)', path: ['keyFile'] })
      .default({ enabled: false }),
  }),
  kubernetes: z
    .discriminatedUnion('mode', [
      z.object({ mode: z.literal('kubeconfig'), kubeconfigPath: z.string().min(1), context: z.string().min(1).optional() }),
      z.object({ mode: z.literal('in-cluster') }),
    ])
    .optional(),
  postgres: z
    .object({ url: z.url({ protocol: /^postgres(ql)?$/, message: 'expected a postgres:// or postgresql:// URL' }) })
    .optional(),
  redis: z.object({ url: z.url({ protocol: /^rediss?$/, message: 'expected a redis:// or rediss:// URL' }) }).optional(),
  s3: z
    .object({
      endpoint: httpUrl.optional(),
      region: z.string().min(1).default('us-east-1'),
      bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { message: 'expected an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)' }),
      accessKeyId: z.string().min(1).optional(),
      secretAccessKey: z.string().min(1).optional(),
      forcePathStyle: z.boolean().default(false),
      /** Where the manual's database dumps live. */
      backupPrefix: z.string().endsWith('/', { message: 'expected a prefix ending in "/"' }).default('database/'),
      /** Where runbooks write evidence and reports. */
      evidencePrefix: z.string().endsWith('/', { message: 'expected a prefix ending in "/"' }).default('runbooks/'),
    })
    .refine((s3) => Boolean(s3.accessKeyId) === Boolean(s3.secretAccessKey), { message: 'accessKeyId and secretAccessKey go together', path: ['secretAccessKey'] })
    .optional(),
  prometheus: z.object({ url: httpUrl }).optional(),
  allowlists: z
    .object({
      namespaces: z
        .array(notWildcard('namespace').refine((ns) => !forbiddenNamespaces.includes(ns), { message: `${forbiddenNamespaces.join(', ')} can never be allowed` }))
        .default(['short-drama-prod']),
      databases: z.array(notWildcard('database')).default(['short_drama_prod']),
      redisKeyPatterns: z.array(notWildcard('Redis key pattern')).default(['session:*']),
      s3Prefixes: z
        .array(z.string().min(1).refine((prefix) => prefix !== '/' && prefix.endsWith('/'), { message: 'expected a prefix ending in "/" (and not the bucket root)' }))
        .default(['database/', 'runbooks/']),
    })
    .default({ namespaces: ['short-drama-prod'], databases: ['short_drama_prod'], redisKeyPatterns: ['session:*'], s3Prefixes: ['database/', 'runbooks/'] }),
  approvers: z
    .array(z.object({ id: z.string().min(1), name: z.string().optional(), roles: z.array(z.enum(roles)).min(1) }))
    .default([]),
  approvals: z
    .object({
      /** How long each escalation tier waits, by severity (manual 应急响应: P0 15 min, P1 1 h, P2 4 h, P3 24 h). */
      escalation: z
        .object({ P0: duration.default('15m'), P1: duration.default('1h'), P2: duration.default('4h'), P3: duration.default('24h') })
        .default({ P0: '15m', P1: '1h', P2: '4h', P3: '24h' }),
      /** Routine steps approved without a person, recorded as "approved by policy NAME". */
      policies: z
        .array(
          z.object({
            name: z.string().min(1),
            runbooks: z.array(z.string().min(1)).min(1),
            steps: z.array(z.string().min(1)).min(1),
            /** Only for runs a schedule started (default), not for people's runs. */
            onlyScheduled: z.boolean().default(true),
          }),
        )
        .default([]),
    })
    .default({ escalation: { P0: '15m', P1: '1h', P2: '4h', P3: '24h' }, policies: [] }),
  notifications: z.object({ webhookUrl: httpUrl.optional() }).default({}),
  worker: z
    .object({
      metricsHost: z.string().min(1).default('0.0.0.0'),
      metricsPort: port.default(9464),
      logLevel: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
      shutdownGraceSeconds: z.coerce.number().positive().default(30),
    })
    .default({ metricsHost: '0.0.0.0', metricsPort: 9464, logLevel: 'INFO', shutdownGraceSeconds: 30 }),
});

export type RunbookConfig = z.infer<typeof configSchema>;
export type AllowLists = RunbookConfig['allowlists'];
