import type { NodeNames } from './node/node-names';
import type { PortName, TestbedLayout } from './layout';

/** Credentials generated once per checkout and kept in the env file, since data dirs are initialised with them. */
export interface TestbedSecrets {
  postgresPassword: string;
  /** The app's login role (short_drama_app), in its Secret app-secrets on the real node. */
  appDatabasePassword: string;
  /** The worker's own PostgreSQL role (runbook_worker). */
  workerDatabasePassword: string;
  /** The restore drill's role (runbook_restore_drill). */
  restoreDrillPassword: string;
  redisPassword: string;
  /** The worker's Redis ACL user (runbook-worker). */
  redisWorkerPassword: string;
  s3AccessKeyId: string;
  s3SecretAccessKey: string;
  /** The worker's S3 identity (the allowlisted prefixes only). */
  s3WorkerAccessKeyId: string;
  s3WorkerSecretAccessKey: string;
  /** The bearer token Alertmanager sends to the alert bridge. */
  alertBridgeToken: string;
  /** The sandbox's AES-256 payload key (base64) and codec server token, kept even while encryption is off so old histories stay readable. */
  payloadKey: string;
  codecToken: string;
}

export interface TestbedContext {
  layout: TestbedLayout;
  secrets: TestbedSecrets;
  /** TESTBED_PAYLOAD_ENCRYPTION=1: runs are encrypted and the UI decodes through the codec server. */
  payloadEncryption: boolean;
  log: (line: string) => void;
  /** TESTBED_REAL_NODE=1, once the node is up: short-drama-prod's servers run there, from these images (name or name:alias -> ref). */
  realNode?: { names: NodeNames; images: Record<string, string> };
}

export type ServiceName = 'temporal' | 'postgres' | 'redis' | 's3' | 'prometheus' | 'alertmanager' | 'webhook' | 'capacity-metrics' | 'app-traffic' | 'pod-discovery' | 'kubernetes' | 'otel-collector';

export interface TestbedServer {
  name: ServiceName;
  /** Ports the server listens on; all must be free before it starts. */
  ports: PortName[];
  /** Installs (or finds in the cache) what the server runs from. Idempotent. */
  install(ctx: TestbedContext): void;
  /** True when a server answers on its port with our credentials. */
  isHealthy(ctx: TestbedContext): Promise<boolean>;
  /** Starts the server detached and waits until it is healthy. */
  start(ctx: TestbedContext): Promise<void>;
  /** Puts the manual's data in place; safe to run on every start. */
  seed?(ctx: TestbedContext): Promise<void>;
  /** Stops a server made of several processes in its own order (default: SIGTERM to the one pid file named after it). */
  stop?(layout: TestbedLayout): Promise<void>;
}
