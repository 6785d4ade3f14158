/** Kubernetes resource quantities (memory and storage), shared by the runbooks' inputs and plans. */
const binarySuffixes: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const decimalSuffixes: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** Bytes of a Kubernetes memory quantity (512Mi, 1Gi, 1.5G, 2e9, 1073741824); undefined when it is not one. */
export function memoryBytes(text: string | undefined): number | undefined {
  if (typeof text !== 'string') return undefined;
  const match = /^(\d+(?:\.\d+)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|(k|M|G|T|P|E)|[eE](\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const factor = match[2] ? binarySuffixes[match[2]]! : match[3] ? decimalSuffixes[match[3]]! : match[4] ? 10 ** Number(match[4]) : 1;
  const bytes = value * factor;
  return Number.isFinite(bytes) ? Math.ceil(bytes) : undefined;
}

/** A memory quantity for a limit: whole Mi, rounded up (Gi when exact). */
export function memoryQuantity(bytes: number): string {
  const mi = Math.ceil(bytes / 2 ** 20);
  return mi % 1024 === 0 ? `${mi / 1024}Gi` : `${mi}Mi`;
}

/**
 * A raised memory limit: current × factor, capped, in whole Mi. Undefined when there is no
 * current limit. Computed once from a diagnosis, so a retried or re-planned raise aims at the same value.
 */
export function raisedMemoryLimit(currentBytes: number | undefined, factor: number, cap: string): string | undefined {
  return currentBytes ? memoryQuantity(Math.min(memoryBytes(cap)!, Math.ceil(currentBytes * factor))) : undefined;
}

/** Cores of a Kubernetes CPU quantity (500m, 1, 2.5); undefined when it is not one. */
export function cpuCores(text: string | undefined): number | undefined {
  if (typeof text !== 'string') return undefined;
  const match = /^(\d+(?:\.\d+)?|\.\d+)(m)?$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) / (match[2] ? 1000 : 1);
}

/** Bytes for people: 1.5 GiB, 300 MiB, 12 KiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}
