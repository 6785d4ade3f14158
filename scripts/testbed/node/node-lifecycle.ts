import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { TestbedLayout } from '../layout';
import { port } from '../layout';
import { adminKubeconfigPath } from '../kubernetes-server';
import { pkiPaths } from '../kubernetes-pki';
import { isRunning, pidFile, runChecked, startDetached, stopDetached, waitUntil } from '../processes';
import { buildNodeImages, pauseImage } from './node-images';
import { kubectl } from './node-kubectl';
import { publishApiserverEndpoint, relayProcess, startHostRelay, withdrawApiserverEndpoint } from './host-access';
import { nodeNames, type NodeNames } from './node-names';
import { claimNode, claimPath, linkExists, netnsExists, networkDown, networkUp, releaseClaim } from './node-network';

/**
 * A real Kubernetes node beside the test bed's control plane: containerd 2 (runc, CNI bridge),
 * kubelet and kube-proxy (iptables mode), registered with a label and a NoSchedule taint so only
 * pods that ask for it land there. `nodeDown` is ordered so nothing stays on the host; `nodeLeftovers`
 * lists whatever did.
 */
export interface NodeBinaries {
  KUBELET: string;
  KUBE_PROXY: string;
  CONTAINERD: string;
  CONTAINERD_SHIM: string;
  CTR: string;
  CRICTL: string;
  RUNC: string;
  CNI_BIN_DIR: string;
}

/** Pid-file names of the node's processes, and the program each runs. */
const processNames = { containerd: 'node-containerd', kubelet: 'node-kubelet', kubeProxy: 'node-kube-proxy' } as const;
const programs: Record<string, string> = { 'node-containerd': 'containerd', 'node-kubelet': 'kubelet', 'node-kube-proxy': 'kube-proxy', [relayProcess]: basename(process.execPath) };

export function nodeBinaries(layout: TestbedLayout): NodeBinaries {
  const out = runChecked('bash', [join(layout.repoRoot, 'scripts', 'testbed', 'build-node.sh')], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024 });
  const bins: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^([A-Z_]+)=(.+)$/.exec(line.trim());
    if (m) bins[m[1]] = m[2];
  }
  return bins as unknown as NodeBinaries;
}

const cgroupMount = '/sys/fs/cgroup';

function cgroupHierarchies(): string[] {
  return readdirSync(cgroupMount).filter((name) => existsSync(join(cgroupMount, name, 'cgroup.procs')));
}

/** kubelet's --cgroup-root must exist in every hierarchy; cpuset children start empty, so copy the parent's. */
function cgroupsUp(names: NodeNames): void {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = join(cgroupMount, hierarchy, names.cgroupRoot);
    mkdirSync(dir, { recursive: true });
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = join(cgroupMount, hierarchy, file);
      if (existsSync(parent)) writeFileSync(join(dir, file), readFileSync(parent, 'utf8'));
    }
  }
}

function cgroupDirs(names: NodeNames): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(join(dir, entry.name));
    found.push(dir);
  };
  for (const hierarchy of cgroupHierarchies()) walk(join(cgroupMount, hierarchy, names.cgroupRoot));
  return found; // children before parents
}

function cgroupsDown(names: NodeNames): void {
  for (const dir of cgroupDirs(names)) {
    try {
      rmdirSync(dir);
    } catch {
      // reported by nodeLeftovers
    }
  }
}

function ourMounts(names: NodeNames): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined && (point.startsWith(`${names.dir}/`) || point.startsWith(`${names.containerdState}/`)));
}

function unmountAll(names: NodeNames): void {
  for (const point of ourMounts(names).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', point], { stdio: 'ignore' });
}

/** Chains kubelet, kube-proxy and the CNI plugins create; machine-wide names (hence the claim). */
const ourChain = /^(KUBE-|CNI-)/;
const tables = ['filter', 'nat', 'mangle'];
const iptablesCommands = ['iptables', 'ip6tables'];

function iptablesRules(command: string, table: string): string[] {
  const result = spawnSync(command, ['-w', '-t', table, '-S'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.split('\n').filter(Boolean) : [];
}

function iptablesLeftovers(names: NodeNames): string[] {
  const found: string[] = [];
  for (const command of iptablesCommands) {
    for (const table of tables) {
      for (const rule of iptablesRules(command, table)) {
        const words = rule.split(' ');
        const mentionsUs = words.some((w) => ourChain.test(w)) || [names.podCidr, names.serviceCidr, names.nodeCidr].some((cidr) => rule.includes(cidr.split('/')[0].split('.').slice(0, 3).join('.')));
        if (mentionsUs) found.push(`${command} -t ${table} ${rule}`);
      }
    }
  }
  return found;
}

function iptablesDown(): void {
  for (const command of iptablesCommands) {
    for (const table of tables) {
      const rules = iptablesRules(command, table);
      for (const rule of rules) {
        const words = rule.split(' ');
        if (words[0] === '-A' && !ourChain.test(words[1]) && words.some((w) => ourChain.test(w))) {
          spawnSync(command, ['-w', '-t', table, '-D', ...words.slice(1)], { stdio: 'ignore' });
        }
      }
      const chains = rules.filter((r) => r.startsWith('-N ') && ourChain.test(r.split(' ')[1])).map((r) => r.split(' ')[1]);
      for (const chain of chains) spawnSync(command, ['-w', '-t', table, '-F', chain], { stdio: 'ignore' });
      for (const chain of chains) spawnSync(command, ['-w', '-t', table, '-X', chain], { stdio: 'ignore' });
    }
  }
}

function writeContainerdConfig(names: NodeNames, bins: NodeBinaries, sandboxImage: string): string {
  const file = join(names.dir, 'containerd.toml');
  writeFileSync(
    file,
    `# containerd 2.4's config version 4: its servers are plugins (io.containerd.server.v1.*), and every
# socket lives under this node's state folder so several test beds never share one.
version = 4
root = ${JSON.stringify(names.containerdRoot)}
state = ${JSON.stringify(names.containerdState)}
# Not the host's /etc/containerd/conf.d: this node is configured by this file alone.
imports = []

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = ${JSON.stringify(names.containerdSocket)}
  [plugins.'io.containerd.server.v1.ttrpc']
    address = ${JSON.stringify(`${names.containerdSocket}.ttrpc`)}
  [plugins.'io.containerd.server.v1.grpc-tcp']
    address = ""
  [plugins.'io.containerd.server.v1.debug']
    address = ""
  [plugins.'io.containerd.server.v1.metrics']
    address = ""
  [plugins.'io.containerd.internal.v1.opt']
    path = ${JSON.stringify(join(names.dir, 'containerd', 'opt'))}
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${JSON.stringify(sandboxImage)}
  [plugins.'io.containerd.cri.v1.runtime']
    # root here lacks CAP_SYS_RESOURCE: without this runc cannot create pod sandboxes.
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = ${JSON.stringify(bins.RUNC)}
          # runc's state beside containerd's, not in the machine's /run/containerd/runc.
          Root = ${JSON.stringify(join(names.containerdState, 'runc'))}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${JSON.stringify(bins.CNI_BIN_DIR)}]
      conf_dir = ${JSON.stringify(names.cniConfDir)}
      max_conf_num = 1
`,
  );
  return file;
}

function writeKubeletConfig(layout: TestbedLayout, names: NodeNames): string {
  const file = join(names.dir, 'kubelet.yaml');
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: names.nodeIp,
    port: port(layout, 'kubelet'),
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: port(layout, 'kubeletHealthz'),
    // cgroups here are v1 (hybrid), and root lacks CAP_SYS_RESOURCE.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: names.cgroupRoot,
    oomScoreAdj: 0,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${names.containerdSocket}`,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: pkiPaths(layout).caCert } },
    authorization: { mode: 'AlwaysAllow' },
    // No host DNS in pods: nothing in a pod resolves names through the uplink.
    resolvConf: '',
    podCIDR: names.podCidr,
    registerWithTaints: [{ key: names.label.key, value: names.label.value, effect: 'NoSchedule' }],
    // A shared disk that is fuller than kubelet likes must not evict the test pods.
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    syncFrequency: '10s',
    nodeStatusUpdateFrequency: '5s',
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

function writeKubeProxyConfig(layout: TestbedLayout, names: NodeNames): string {
  const file = join(names.dir, 'kube-proxy.yaml');
  const config = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: adminKubeconfigPath(layout) },
    hostnameOverride: names.nodeName,
    mode: 'iptables',
    clusterCIDR: names.podCidr,
    healthzBindAddress: `127.0.0.1:${port(layout, 'kubeProxyHealthz')}`,
    metricsBindAddress: `127.0.0.1:${port(layout, 'kubeProxyMetrics')}`,
    nodePortAddresses: [names.nodeCidr],
    // Leave the host's sysctls alone: no route_localnet (localhost NodePorts), no conntrack tuning.
    iptables: { localhostNodePorts: false, masqueradeAll: false },
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

function crictl(bins: NodeBinaries, names: NodeNames, args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(bins.CRICTL, ['--runtime-endpoint', `unix://${names.containerdSocket}`, '--timeout', '20s', ...args], { encoding: 'utf8' });
}

function ctr(bins: NodeBinaries, names: NodeNames, args: string[]): string {
  return runChecked(bins.CTR, ['--address', names.containerdSocket, '--namespace', 'k8s.io', ...args], { maxBuffer: 64 * 1024 * 1024 });
}

export interface NodeUpResult {
  nodeName: string;
  nodeIp: string;
  images: Record<string, string>;
}

/** Running, by its pid file: a pid file of a dead process (or of a pid reused by another program) is not. */
function alive(layout: TestbedLayout, name: string): boolean {
  return isRunning(layout.stateDir, name, programs[name]);
}

/** Stops a process of the node, never another program that happens to have its old pid. */
async function stopNodeProcess(layout: TestbedLayout, name: string): Promise<void> {
  if (alive(layout, name)) await stopDetached(layout.stateDir, name);
  else rmSync(pidFile(layout.stateDir, name), { force: true });
}

/** What nodePrepare made ready: the node's binaries, and its images in containerd. */
export interface PreparedNode {
  bins: NodeBinaries;
  env: NodeJS.ProcessEnv;
  refs: Record<string, string>;
  t0: number;
}

/**
 * The half of bringing the node up that needs no apiserver (binaries, images, network, cgroups,
 * containerd and the images imported and unpacked into it): `up` runs it while the servers start.
 */
export async function nodePrepare(layout: TestbedLayout, log: (line: string) => void): Promise<PreparedNode> {
  const names = nodeNames(layout);
  const t0 = Date.now();
  const lap = (what: string) => log(`node: ${what} after ${Date.now() - t0} ms`);
  claimNode(names, layout.stateDir);
  const bins = nodeBinaries(layout);
  const env = { ...process.env, PATH: `${join(bins.CONTAINERD, '..')}:${process.env.PATH}` };
  mkdirSync(names.dir, { recursive: true });
  const images = await buildNodeImages(layout.cacheDir, log);
  lap('binaries and images ready');

  networkUp(names);
  cgroupsUp(names);
  if (!alive(layout, processNames.containerd)) {
    const config = writeContainerdConfig(names, bins, images[pauseImage.name].ref);
    startDetached(layout.stateDir, processNames.containerd, bins.CONTAINERD, ['--config', config, '--log-level', 'warn'], { env });
  }
  await waitUntil(
    'containerd to answer',
    () => spawnSync(bins.CTR, ['--address', names.containerdSocket, 'version'], { stdio: 'ignore' }).status === 0,
    30_000,
    join(layout.stateDir, `${processNames.containerd}.log`),
  );
  const present = new Set(ctr(bins, names, ['images', 'ls', '-q']).split('\n'));
  // In parallel, and unpacked now (not when the first pod starts): mostly waiting on the disk.
  await Promise.all(
    Object.values(images)
      .filter((image) => !present.has(image.ref))
      .map((image) => promisify(execFile)(bins.CTR, ['--address', names.containerdSocket, '--namespace', 'k8s.io', 'images', 'import', image.archive], { timeout: 120_000 })),
  );
  // Each image by name, and its aliases as <name>:<alias> (e.g. short-drama-app:1.4.1).
  const refs = Object.fromEntries(Object.entries(images).flatMap(([name, image]) => [[name, image.ref], ...Object.entries(image.aliases ?? {}).map(([alias, ref]) => [`${name}:${alias}`, ref])]));
  lap('containerd up, images imported');
  return { bins, env, refs, t0 };
}

/** Brings the node up (idempotent: running parts are reused) and waits until it is Ready; needs the apiserver. */
export async function nodeUp(layout: TestbedLayout, log: (line: string) => void, prepared?: PreparedNode): Promise<NodeUpResult> {
  const names = nodeNames(layout);
  const { bins, env, refs, t0 } = prepared ?? (await nodePrepare(layout, log));
  const lap = (what: string) => log(`node: ${what} after ${Date.now() - t0} ms`);
  if (!alive(layout, relayProcess)) startHostRelay(layout, names);
  publishApiserverEndpoint(layout, names);

  const kubeconfig = adminKubeconfigPath(layout);
  if (!alive(layout, processNames.kubelet)) {
    startDetached(
      layout.stateDir,
      processNames.kubelet,
      bins.KUBELET,
      [
        `--config=${writeKubeletConfig(layout, names)}`,
        `--kubeconfig=${kubeconfig}`,
        `--root-dir=${names.kubeletRoot}`,
        `--node-ip=${names.nodeIp}`,
        `--hostname-override=${names.nodeName}`,
        `--node-labels=${names.label.key}=${names.label.value}`,
        '--v=1',
      ],
      { env },
    );
  }
  if (!alive(layout, processNames.kubeProxy)) {
    startDetached(layout.stateDir, processNames.kubeProxy, bins.KUBE_PROXY, [`--config=${writeKubeProxyConfig(layout, names)}`, '--v=1'], { env });
  }
  await waitUntil(
    `node ${names.nodeName} Ready`,
    () => {
      for (const name of [...Object.values(processNames), relayProcess]) if (!alive(layout, name)) throw new Error(`${name} exited; see ${join(layout.stateDir, `${name}.log`)}`);
      return kubectl(layout, ['get', 'node', names.nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], { check: false }).trim() === 'True';
    },
    120_000,
    join(layout.stateDir, `${processNames.kubelet}.log`),
  );
  lap('node Ready');
  writeFileSync(join(names.dir, 'images.json'), JSON.stringify(refs, null, 2));
  return { nodeName: names.nodeName, nodeIp: names.nodeIp, images: refs };
}

/** Image references of a running node (written by nodeUp). */
/** Imports one more image archive (e.g. the worker's) into the running node's containerd; already there: nothing. */
export async function importIntoNode(layout: TestbedLayout, image: { archive: string; ref: string }): Promise<void> {
  const names = nodeNames(layout);
  const bins = nodeBinaries(layout);
  if (ctr(bins, names, ['images', 'ls', '-q']).split('\n').includes(image.ref)) return;
  await promisify(execFile)(bins.CTR, ['--address', names.containerdSocket, '--namespace', 'k8s.io', 'images', 'import', image.archive], { timeout: 300_000 });
}

export function nodeImages(layout: TestbedLayout): Record<string, string> {
  return JSON.parse(readFileSync(join(nodeNames(layout).dir, 'images.json'), 'utf8')) as Record<string, string>;
}

/**
 * Ordered teardown: workloads off the node, kubelet, pod sandboxes (CNI DEL), kube-proxy and its
 * rules, containerd, then what kubelet and the runtime leave on the host.
 */
export async function nodeDown(layout: TestbedLayout, log: (line: string) => void = () => undefined): Promise<void> {
  const names = nodeNames(layout);
  if (!existsSync(names.dir) && !linkExists(names.hostVeth)) return;
  const t0 = Date.now();
  const lap = (what: string) => log(`node down: ${what} after ${Date.now() - t0} ms`);
  const apiserverUp = kubectl(layout, ['get', 'node', names.nodeName, '-o', 'name'], { check: false }).trim() !== '';
  if (apiserverUp) {
    kubectl(layout, ['cordon', names.nodeName], { check: false });
    kubectl(layout, ['delete', 'pods', '--all-namespaces', '--field-selector', `spec.nodeName=${names.nodeName}`, '--grace-period=5', '--timeout=60s'], { check: false });
  }
  lap('pods deleted');
  await stopNodeProcess(layout, processNames.kubelet);
  lap('kubelet stopped');
  let bins: NodeBinaries | undefined;
  try {
    bins = nodeBinaries(layout);
  } catch (err) {
    log(`node: binaries unavailable for cleanup: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (bins && alive(layout, processNames.containerd)) {
    crictl(bins, names, ['rmp', '-fa']);
    crictl(bins, names, ['rm', '-fa']);
  }
  lap('pod sandboxes removed');
  await stopNodeProcess(layout, processNames.kubeProxy);
  await stopNodeProcess(layout, relayProcess);
  if (bins) spawnSync(bins.KUBE_PROXY, ['--cleanup', `--config=${join(names.dir, 'kube-proxy.yaml')}`], { stdio: 'ignore' });
  await stopNodeProcess(layout, processNames.containerd);
  lap('kube-proxy, relay and containerd stopped');
  killStragglers(names);
  if (apiserverUp) {
    withdrawApiserverEndpoint(layout);
    kubectl(layout, ['delete', 'node', names.nodeName, '--wait=false'], { check: false });
  }
  iptablesDown();
  unmountAll(names);
  cgroupsDown(names);
  networkDown(names);
  rmSync(names.containerdState, { recursive: true, force: true });
  if (ourMounts(names).length === 0) rmSync(names.dir, { recursive: true, force: true });
  releaseClaim(names);
  lap('host cleaned');
}

/** Processes of this node (shims, containers) by their command line or cgroup. */
function nodeProcesses(names: NodeNames): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (cmd.includes(names.containerdSocket) || cmd.includes(`${names.dir}/`) || cgroup.includes(`:${names.cgroupRoot}/`) || cgroup.includes(`:${names.cgroupRoot}\n`)) {
        found.push({ pid, cmd });
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function killStragglers(names: NodeNames): void {
  for (const { pid } of nodeProcesses(names)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Everything of this port base's node still on the host; empty when the node is fully gone. */
export function nodeLeftovers(layout: TestbedLayout): string[] {
  const names = nodeNames(layout);
  const found: string[] = [];
  for (const link of [names.hostVeth, names.bridge]) if (linkExists(link)) found.push(`interface ${link}`);
  if (netnsExists(names.netns)) found.push(`network namespace ${names.netns}`);
  const prefixes = [names.nodeCidr, names.podCidr, names.serviceCidr].map((cidr) => cidr.split('.').slice(0, 3).join('.') + '.');
  const routes = spawnSync('ip', ['route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout ?? '';
  for (const route of routes.split('\n')) if (prefixes.some((p) => route.includes(p))) found.push(`route ${route}`);
  for (const rule of iptablesLeftovers(names)) found.push(`iptables rule ${rule}`);
  for (const point of ourMounts(names)) found.push(`mount ${point}`);
  for (const dir of cgroupDirs(names)) found.push(`cgroup ${dir}`);
  for (const { pid, cmd } of nodeProcesses(names)) found.push(`process ${pid} ${cmd.slice(0, 120)}`);
  for (const name of [...Object.values(processNames), relayProcess]) if (alive(layout, name)) found.push(`process ${name} (pid file)`);
  for (const dir of [names.dir, names.containerdState]) if (existsSync(dir)) found.push(`directory ${dir}`);
  if (existsSync(claimPath()) && readFileSync(claimPath(), 'utf8').startsWith(`${names.portBase}\n`)) found.push(`claim ${claimPath()}`);
  return found;
}
