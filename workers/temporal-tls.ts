import { readFileSync } from 'node:fs';
import type { RunbookConfig } from '../config/schema';

/** TLS options for Temporal connections (worker and client alike), read from the configured files. */
export function temporalTls(tls: RunbookConfig['temporal']['tls']) {
  if (!tls.enabled) return undefined;
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: tls.caFile ? readFileSync(tls.caFile) : undefined,
    clientCertPair: tls.certFile && tls.keyFile ? { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : undefined,
  };
}
