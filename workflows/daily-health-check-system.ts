// The daily checklist's 系统健康检查 (dailyHealthCheck runs them): pods, services, ingress, HPAs and PVCs.
import { atMost, listed, type CheckRow } from '../common/checklist';
import type { z } from 'zod';
import type { dailyHealthCheckInput } from '../common/inputs/checklists';
import type { Checklist } from './kernel/checklist';
import { read } from './activity-proxies';

export type DailyInput = z.infer<typeof dailyHealthCheckInput>;

/** The daily checklist's pods check. */
export function checkPods(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('pods', '系统健康检查 / Pods', `Pods in ${namespace}`, async (row) => {
    const { pods, counts } = await read.listPodSummaries({ namespace });
    const notReady = pods.filter((p) => !p.ready && !p.terminating);
    // Results recorded before `crashLooping` existed (replays) say it by the waiting reason alone.
    const crashLooping = pods.filter((p) => p.crashLooping ?? p.waitingReason === 'CrashLoopBackOff');
    const oomKilled = pods.filter((p) => p.lastTerminationReason === 'OOMKilled');
    const mostRestarts = [...pods].sort((a, b) => b.restarts - a.restarts)[0];
    return [
      row({
        id: 'pods.ready',
        title: 'Pods running and ready',
        status: counts.total > 0 && notReady.length === 0 ? 'PASS' : 'FAIL',
        value: `${counts.ready} of ${counts.total} ready`,
        threshold: 'all ready',
        detail:
          counts.total === 0
            ? `no pods in ${namespace}`
            : notReady.length > 0
              ? `not ready: ${listed(notReady.map((p) => `${p.name} (${p.waitingReason ?? p.phase})`))}`
              : 'every pod is Running and Ready',
      }),
      row({
        id: 'pods.crash-loop',
        title: 'Pods in CrashLoopBackOff',
        status: crashLooping.length === 0 ? 'PASS' : 'FAIL',
        value: String(crashLooping.length),
        threshold: '0',
        detail: crashLooping.length > 0 ? `crash-looping: ${listed(crashLooping.map((p) => `${p.name} (${p.restarts} restarts)`))}; run podCrashLoop` : 'none',
      }),
      row({
        id: 'pods.oom-killed',
        title: 'Pods last killed by OOM',
        status: oomKilled.length === 0 ? 'PASS' : 'WARN',
        value: String(oomKilled.length),
        threshold: '0',
        detail: oomKilled.length > 0 ? `OOMKilled last time: ${listed(oomKilled.map((p) => p.name))}; memory limit too low?` : 'none',
      }),
      row({
        id: 'pods.restarts',
        title: 'Most restarts of one pod',
        status: atMost(mostRestarts?.restarts ?? 0, t.podRestarts, 'WARN'),
        value: String(mostRestarts?.restarts ?? 0),
        threshold: `<= ${t.podRestarts}`,
        detail: mostRestarts && mostRestarts.restarts > 0 ? `${mostRestarts.name}` : 'no restarts',
      }),
    ];
  });
}

/** The daily checklist's services check. */
export function checkServices(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  return checklist.check('services', '系统健康检查 / Services', `Services in ${namespace} have endpoints`, async (row) => {
    const { services } = await read.listServices({ namespace });
    return services.map((s) => {
      const selects = s.selector !== undefined && Object.keys(s.selector).length > 0;
      return row({
        id: `services.${s.name}`,
        title: `Service ${s.name} endpoints`,
        status: !selects || s.readyEndpoints > 0 ? 'PASS' : 'FAIL',
        value: `${s.readyEndpoints} ready, ${s.notReadyEndpoints} not ready`,
        threshold: '>= 1 ready',
        detail: !selects ? 'no selector: endpoints are managed outside Kubernetes' : s.readyEndpoints > 0 ? `ports ${s.ports.join(', ')}` : 'no ready endpoint: the Service sends traffic nowhere',
      });
    });
  });
}

/** The daily checklist's ingress check. */
export function checkIngress(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  return checklist.check('ingress', '系统健康检查 / Ingress', `Ingress in ${namespace}: address and TLS secret`, async (row) => {
    const [{ ingresses }, snapshot] = await Promise.all([read.listIngresses({ namespace }), read.snapshotNamespaceConfig({ namespace })]);
    const tlsSecrets = new Map(snapshot.secrets.map((s) => [s.name, s]));
    return ingresses.flatMap((ing): CheckRow[] => {
      const secretNames = ing.tls.flatMap((t) => (t.secretName ? [t.secretName] : []));
      const missing = secretNames.filter((name) => !['tls.crt', 'tls.key'].every((key) => tlsSecrets.get(name)?.keys.includes(key)));
      return [
        row({
          id: `ingress.${ing.name}.address`,
          title: `Ingress ${ing.name} address`,
          status: ing.addresses.length > 0 ? 'PASS' : 'FAIL',
          value: ing.addresses.join(', ') || 'none',
          threshold: 'an address',
          detail: ing.addresses.length > 0 ? `hosts ${ing.hosts.join(', ')}` : 'no load balancer address: the ingress controller has not admitted it',
        }),
        row({
          id: `ingress.${ing.name}.tls`,
          title: `Ingress ${ing.name} TLS secret`,
          status: secretNames.length === 0 ? 'WARN' : missing.length === 0 ? 'PASS' : 'FAIL',
          value: secretNames.join(', ') || 'no TLS',
          threshold: 'secret with tls.crt and tls.key',
          detail: secretNames.length === 0 ? 'served without TLS' : missing.length > 0 ? `missing or incomplete: ${missing.join(', ')}` : 'present',
        }),
      ];
    });
  });
}

/** The daily checklist's hpa check. */
export function checkAutoscalers(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  return checklist.check('hpa', '系统健康检查 / HPA', `HorizontalPodAutoscalers in ${namespace}`, async (row) => {
    const { autoscalers } = await read.listHorizontalPodAutoscalers({ namespace });
    return autoscalers.map((h) =>
      row({
        id: `hpa.${h.name}`,
        title: `HPA ${h.name} replicas`,
        status: h.atMax ? 'WARN' : 'PASS',
        value: `${h.currentReplicas} current, ${h.desiredReplicas} desired`,
        threshold: `< max ${h.maxReplicas}`,
        detail: h.atMax ? `at its maximum: ${h.target} cannot scale further; raise maxReplicas or find the load` : `${h.target}, ${h.metrics.join(', ') || 'no metrics'}`,
      }),
    );
  });
}

/** The daily checklist's pvc check. */
export function checkVolumeClaims(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  return checklist.check('pvc', '系统健康检查 / PVC', `PersistentVolumeClaims in ${namespace}`, async (row) => {
    const { claims } = await read.listPersistentVolumeClaims({ namespace });
    return claims.map((c) =>
      row({
        id: `pvc.${c.name}`,
        title: `PVC ${c.name}`,
        status: c.phase === 'Bound' ? 'PASS' : 'FAIL',
        value: `${c.phase}, ${c.capacity ?? c.requested ?? 'unknown size'}`,
        threshold: 'Bound',
        detail: c.phase === 'Bound' ? `StorageClass ${c.storageClass ?? '(none)'}` : `not bound: nothing backs it (StorageClass ${c.storageClass ?? '(none)'})`,
      }),
    );
  });
}
