import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { KubeConfig, KubernetesObjectApi, loadAllYaml, PatchUtils, type KubernetesObject } from '@kubernetes/client-node';

/** Field manager of everything the test bed applies (server-side apply). */
export const testbedFieldManager = 'runbook-testbed';

export function kubeConfigFromFile(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

/** The objects of a multi-document YAML file. */
export function readYamlObjects(file: string): KubernetesObject[] {
  return (loadAllYaml(readFileSync(file, 'utf8')) as (KubernetesObject | null)[]).filter((o): o is KubernetesObject => !!o && !!o.kind);
}

/**
 * Server-side apply, in order, as field manager `runbook-testbed` (force: the test bed owns these
 * objects; e.g. the HPA may have moved `replicas` since). Idempotent: applying the same objects
 * again changes nothing. A fresh client per call, so kinds of just-established CRDs are discovered.
 */
export async function applyObjects(kc: KubeConfig, objects: KubernetesObject[]): Promise<KubernetesObject[]> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  const applied: KubernetesObject[] = [];
  for (const object of objects) {
    try {
      const { body } = await client.patch(object, undefined, undefined, testbedFieldManager, true, {
        headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_APPLY_YAML },
      });
      applied.push(body);
    } catch (err) {
      const body = (err as { body?: { message?: string } }).body;
      throw new Error(`applying ${object.kind} ${object.metadata?.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata?.name}: ${body?.message ?? String(err)}`);
    }
  }
  return applied;
}

export interface HttpsAnswer {
  status: number;
  body: string;
}

/** A GET over TLS: verified against `ca` when given, unverified otherwise (components' self-signed /healthz). */
export function httpsGet(url: string, options: { ca?: string; token?: string; timeoutMs?: number } = {}): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'GET',
        ca: options.ca ? readFileSync(options.ca) : undefined,
        rejectUnauthorized: !!options.ca,
        headers: options.token ? { Authorization: `Bearer ${options.token}` } : {},
        timeout: options.timeoutMs ?? 2000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${options.timeoutMs ?? 2000} ms`)));
    req.on('error', reject);
    req.end();
  });
}
