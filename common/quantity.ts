/**
 * Kubernetes resource quantities (CPU, memory and storage), shared by the runbooks' inputs and plans
 * and by the activities. Workflow-safe: no I/O, no client library.
 */
const binarySuffixes: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const decimalSuffixes: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const quantityPattern = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/;

/** A quantity taken apart: the number as written (with its sign), its suffix ('' without one) or its exponent. */
interface QuantityParts {
  number: string;
  suffix: string;
  exponent?: string;
}

function quantityParts(text: string | undefined): QuantityParts | undefined {
  if (typeof text !== 'string') return undefined;
  const m = quantityPattern.exec(text.trim());
  if (!m) return undefined;
  return { number: m[1]!, suffix: m[2] ?? '', ...(m[3] !== undefined ? { exponent: m[3] } : {}) };
}

function quantityValue(q: QuantityParts): number {
  const n = Number(q.number);
  if (q.exponent !== undefined) return n * 10 ** Number(q.exponent);
  return n * (binarySuffixes[q.suffix] ?? decimalSuffixes[q.suffix] ?? 1);
}

/** A Kubernetes resource.Quantity as a number (cores for CPU, bytes for memory); undefined when not one. */
export function parseQuantity(text: string | undefined): number | undefined {
  const q = quantityParts(text);
  return q && quantityValue(q);
}

/** Unsigned, digits after any decimal point ("1.5", ".5"; not "-1", "+1", "1."). */
const plainNumber = (q: QuantityParts) => /^(?:\d+(?:\.\d+)?|\.\d+)$/.test(q.number);

/**
 * Bytes of a Kubernetes memory quantity (512Mi, 1Gi, 1.5G, 2e9, 1073741824); undefined when it is not
 * one. Stricter than parseQuantity: no sign, no sub-byte suffix (n, u, m), no signed exponent.
 */
export function memoryBytes(text: string | undefined): number | undefined {
  const q = quantityParts(text);
  if (!q || !plainNumber(q) || ['n', 'u', 'm'].includes(q.suffix) || (q.exponent !== undefined && !/^\d+$/.test(q.exponent))) return undefined;
  const bytes = quantityValue(q);
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

/** Cores of a Kubernetes CPU quantity (500m, 1, 2.5); undefined when it is not one (only plain numbers and millicores). */
export function cpuCores(text: string | undefined): number | undefined {
  const q = quantityParts(text);
  if (!q || !plainNumber(q) || (q.suffix !== '' && q.suffix !== 'm') || q.exponent !== undefined) return undefined;
  return Number(q.number) / (q.suffix === 'm' ? 1000 : 1);
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
