import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChecked } from './processes';
import type { TestbedLayout } from './layout';

/** Where the Kubernetes test bed keeps its state: PKI, etcd data, kubeconfigs, pod log files, exec dir. */
export function kubernetesStateDir(layout: TestbedLayout): string {
  return join(layout.stateDir, 'kubernetes');
}

export interface KubernetesPki {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  kwokCert: string;
  kwokKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  frontProxyCert: string;
  frontProxyKey: string;
  saKey: string;
  saPub: string;
  /** --token-auth-file: the admin token, in group system:masters. */
  tokensCsv: string;
  adminToken: string;
}

export function pkiPaths(layout: TestbedLayout): Omit<KubernetesPki, 'adminToken'> {
  const dir = join(kubernetesStateDir(layout), 'pki');
  const f = (name: string) => join(dir, name);
  return {
    dir,
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    apiserverCert: f('apiserver.crt'),
    apiserverKey: f('apiserver.key'),
    kwokCert: f('kwok.crt'),
    kwokKey: f('kwok.key'),
    kubeletClientCert: f('kubelet-client.crt'),
    kubeletClientKey: f('kubelet-client.key'),
    frontProxyCert: f('front-proxy-client.crt'),
    frontProxyKey: f('front-proxy-client.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
    tokensCsv: f('tokens.csv'),
  };
}

const serviceRangeFile = 'service-range';
/** Clusters whose PKI predates the record were all created with this range. */
const legacyServiceRange = '10.96.0.0/16';

/** The first address of an IPv4 range such as 198.19.147.0/24: the "kubernetes" Service's ClusterIP. */
export function firstServiceIp(range: string): string {
  const octets = range.split('/')[0].split('.').map(Number);
  octets[3] += 1;
  return octets.join('.');
}

/** The Service range the state folder's cluster was created with (its certificates and stored Services fit only that one), or undefined before the first start. */
export function recordedServiceRange(layout: TestbedLayout): string | undefined {
  const dir = pkiPaths(layout).dir;
  if (!existsSync(join(dir, '.complete'))) return undefined;
  const file = join(dir, serviceRangeFile);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : legacyServiceRange;
}

/** The admin token of an existing PKI, or undefined before the first start. */
export function readAdminToken(layout: TestbedLayout): string | undefined {
  const file = join(pkiPaths(layout).dir, 'admin.token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** Validity of the test bed's own CA and component certificates. */
const days = 3650;

function openssl(args: string[]): void {
  runChecked('openssl', args);
}

interface LeafCertificate {
  /** openssl -subj, e.g. /CN=kwok */
  subject: string;
  extendedKeyUsage: 'serverAuth' | 'clientAuth';
  /** e.g. IP:127.0.0.1,DNS:localhost */
  subjectAltName?: string;
  days: number;
  /** The test bed's CA (ca.crt and ca.key in the same dir), or the certificate's own key (self-signed). */
  signedBy: 'testbed-ca' | 'self';
}

/** A leaf certificate and its key: NAME.crt and NAME.key in dir. */
function issue(dir: string, name: string, leaf: LeafCertificate): void {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', leaf.subject, '-keyout', key, '-out', csr]);
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${leaf.extendedKeyUsage}`,
      ...(leaf.subjectAltName ? [`subjectAltName=${leaf.subjectAltName}`] : []),
      '',
    ].join('\n'),
  );
  const signer = leaf.signedBy === 'self' ? ['-signkey', key] : ['-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial'];
  openssl(['x509', '-req', '-in', csr, ...signer, '-days', String(leaf.days), '-extfile', ext, '-out', join(dir, `${name}.crt`)]);
  rmSync(csr, { force: true });
  rmSync(ext, { force: true });
}

/**
 * A CA for cert-manager's ClusterIssuer (type CA): its certificate and key, PEM. Written only to a
 * private temporary dir, removed before returning.
 */
export function issuerCertificateAuthority(commonName: string): { certificate: string; privateKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'runbook-testbed-ca-'));
  try {
    const [key, crt] = [join(dir, 'ca.key'), join(dir, 'ca.crt')];
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(days), '-subj', `/CN=${commonName}`, ...caExtensions, '-keyout', key, '-out', crt]);
    return { certificate: readFileSync(crt, 'utf8'), privateKey: readFileSync(key, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A serving certificate for `host` and the given key, signed by `ca`, valid exactly from notBefore
 * to notAfter (openssl ca, which alone takes explicit dates): e.g. one that has already expired.
 */
export function certificateSignedBy(ca: { certificate: string; privateKey: string }, leaf: { privateKey: string; host: string; notBefore: Date; notAfter: Date }): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbook-testbed-leaf-'));
  const f = (name: string) => join(dir, name);
  const stamp = (d: Date) =>
    d
      .toISOString()
      .replace(/[-:T]/g, '')
      .replace(/\.\d{3}Z$/, 'Z');
  try {
    writeFileSync(f('ca.crt'), ca.certificate);
    writeFileSync(f('ca.key'), ca.privateKey, { mode: 0o600 });
    writeFileSync(f('leaf.key'), leaf.privateKey, { mode: 0o600 });
    writeFileSync(f('index.txt'), '');
    writeFileSync(f('serial'), `${randomBytes(16).toString('hex')}\n`);
    writeFileSync(
      f('ca.cnf'),
      [
        '[ca]',
        'default_ca = sandbox',
        '[sandbox]',
        `database = ${f('index.txt')}`,
        `new_certs_dir = ${dir}`,
        `serial = ${f('serial')}`,
        'default_md = sha256',
        'policy = anything',
        'unique_subject = no',
        'copy_extensions = copy',
        '[anything]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    openssl(['req', '-new', '-key', f('leaf.key'), '-subj', `/CN=${leaf.host}`, '-addext', `subjectAltName=DNS:${leaf.host}`, '-out', f('leaf.csr')]);
    openssl([
      'ca',
      '-batch',
      '-config',
      f('ca.cnf'),
      '-cert',
      f('ca.crt'),
      '-keyfile',
      f('ca.key'),
      '-notext',
      '-startdate',
      stamp(leaf.notBefore),
      '-enddate',
      stamp(leaf.notAfter),
      '-in',
      f('leaf.csr'),
      '-out',
      f('leaf.crt'),
    ]);
    return readFileSync(f('leaf.crt'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const caExtensions = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'];

/**
 * Certificates (a CA; serving certs for the apiserver and kwok's kubelet API; client certs for
 * apiserver -> kubelet and the aggregation front proxy), the service-account signing key and the
 * admin token. Generated once with openssl under the state dir and reused on every later start,
 * so kubeconfigs and ServiceAccount tokens stay valid.
 */
export function ensureKubernetesPki(layout: TestbedLayout, serviceRange: string): KubernetesPki {
  const paths = pkiPaths(layout);
  const tokenFile = join(paths.dir, 'admin.token');
  const done = join(paths.dir, '.complete');
  if (!existsSync(done)) {
    const staging = `${paths.dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      String(days),
      '-subj',
      '/CN=runbook-testbed-ca',
      ...caExtensions,
      '-keyout',
      join(staging, 'ca.key'),
      '-out',
      join(staging, 'ca.crt'),
    ]);
    const byCa = { days, signedBy: 'testbed-ca' } as const;
    issue(staging, 'apiserver', {
      ...byCa,
      subject: '/CN=kube-apiserver',
      extendedKeyUsage: 'serverAuth',
      // The "kubernetes" Service's address (the range's first), which pods on a real node connect to.
      subjectAltName: `IP:127.0.0.1,IP:${firstServiceIp(serviceRange)},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
    });
    writeFileSync(join(staging, serviceRangeFile), `${serviceRange}\n`);
    issue(staging, 'kwok', { ...byCa, subject: '/CN=kwok', extendedKeyUsage: 'serverAuth', subjectAltName: 'IP:127.0.0.1,DNS:localhost' });
    issue(staging, 'kubelet-client', { ...byCa, subject: '/O=system:masters/CN=kube-apiserver-kubelet-client', extendedKeyUsage: 'clientAuth' });
    issue(staging, 'front-proxy-client', { ...byCa, subject: '/CN=front-proxy-client', extendedKeyUsage: 'clientAuth' });
    openssl(['genrsa', '-out', join(staging, 'sa.key'), '2048']);
    openssl(['rsa', '-in', join(staging, 'sa.key'), '-pubout', '-out', join(staging, 'sa.pub')]);
    const token = randomBytes(24).toString('hex');
    writeFileSync(join(staging, 'admin.token'), `${token}\n`, { mode: 0o600 });
    writeFileSync(join(staging, 'tokens.csv'), `${token},runbook-testbed-admin,runbook-testbed-admin,"system:masters"\n`, { mode: 0o600 });
    writeFileSync(join(staging, '.complete'), '');
    rmSync(paths.dir, { recursive: true, force: true });
    mkdirSync(kubernetesStateDir(layout), { recursive: true });
    renameSync(staging, paths.dir);
  }
  return { ...paths, adminToken: readFileSync(tokenFile, 'utf8').trim() };
}

/** A kubeconfig with a bearer token against the test bed's apiserver. */
/** Admin (system:masters) kubeconfig: TESTBED_KUBECONFIG_ADMIN in the env file. */
export function adminKubeconfigPath(layout: TestbedLayout): string {
  return join(kubernetesStateDir(layout), 'admin.kubeconfig');
}

/** Token of ServiceAccount `runbook-readonly` (read-only Role in short-drama-prod): TESTBED_KUBECONFIG_READONLY. */
export function readonlyKubeconfigPath(layout: TestbedLayout): string {
  return join(kubernetesStateDir(layout), 'readonly.kubeconfig');
}

/** Token of ServiceAccount `prometheus` (lists short-drama-prod's pods to find its scrape targets). */
export function prometheusKubeconfigPath(layout: TestbedLayout): string {
  return join(kubernetesStateDir(layout), 'prometheus.kubeconfig');
}

export function writeKubeconfig(file: string, server: string, caCert: string, user: string, token: string, namespace?: string): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'runbook-testbed', cluster: { server, 'certificate-authority': caCert } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: `${user}@runbook-testbed`, context: { cluster: 'runbook-testbed', user, ...(namespace ? { namespace } : {}) } }],
    'current-context': `${user}@runbook-testbed`,
  };
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}
