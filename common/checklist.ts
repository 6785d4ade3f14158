import type { PodUsage } from './pod-usage';
import type { RunbookResultBase } from './runbook';

/** The status of one check in a daily/weekly/monthly checklist report. */
export const checkStatuses = ['PASS', 'WARN', 'FAIL'] as const;
export type CheckStatus = (typeof checkStatuses)[number];

/** One row of a checklist report: what was measured, against what, and what it means. */
export interface CheckRow {
  /** Stable id, e.g. "pods.crash-loop" (report consumers and tests key on it). */
  id: string;
  /** The part of the manual's checklist, e.g. "系统健康检查 / Pods". */
  section: string;
  title: string;
  status: CheckStatus;
  /** The measured value as people read it, e.g. "3 of 4 ready", "1.2 s". */
  value: string;
  /** The threshold it was held against, e.g. "< 2 s"; "" where there is none. */
  threshold: string;
  /** One line: why this status. */
  detail: string;
}

export interface ChecklistCounts {
  PASS: number;
  WARN: number;
  FAIL: number;
}

/** What a checklist run returns beside the kernel's result. */
export interface ChecklistResult extends RunbookResultBase {
  /** The worst status of any check. */
  overall: CheckStatus;
  counts: ChecklistCounts;
  checks: CheckRow[];
  /** Where the report is in S3 (JSON and Markdown); absent when it could not be saved (a WARN row says why). */
  checklistReport?: { jsonKey: string; markdownKey: string };
}

const rank: Record<CheckStatus, number> = { PASS: 0, WARN: 1, FAIL: 2 };

export function worstStatus(statuses: CheckStatus[]): CheckStatus {
  return statuses.reduce<CheckStatus>((worst, s) => (rank[s] > rank[worst] ? s : worst), 'PASS');
}

export function countStatuses(rows: CheckRow[]): ChecklistCounts {
  const counts: ChecklistCounts = { PASS: 0, WARN: 0, FAIL: 0 };
  for (const row of rows) counts[row.status]++;
  return counts;
}

/** FAILs first, then WARNs, then PASSes; otherwise in the order checked. */
export function byUrgency(rows: CheckRow[]): CheckRow[] {
  return rows
    .map((row, index) => ({ row, index }))
    .sort((a, b) => rank[b.row.status] - rank[a.row.status] || a.index - b.index)
    .map(({ row }) => row);
}

/** PASS when `value` stays at or below `limit`, otherwise `over` (FAIL unless said otherwise). */
export function atMost(value: number, limit: number, over: CheckStatus = 'FAIL'): CheckStatus {
  return value <= limit ? 'PASS' : over;
}

/** PASS when `value` stays below `limit` (the manual's "< N"), otherwise `over`. */
export function below(value: number, limit: number, over: CheckStatus = 'FAIL'): CheckStatus {
  return value < limit ? 'PASS' : over;
}

/** PASS when `value` is above `limit` (the manual's "> N"), otherwise `under`. */
export function above(value: number, limit: number, under: CheckStatus = 'FAIL'): CheckStatus {
  return value > limit ? 'PASS' : under;
}

/** How many lines of `text` match, and the first and last of them (trimmed, cut to 200 characters). */
export function countLines(text: string, pattern: RegExp): { count: number; first?: string; last?: string } {
  const matching = text.split('\n').filter((line) => pattern.test(line));
  const cut = (line: string) => line.trim().slice(0, 200);
  return { count: matching.length, ...(matching.length > 0 ? { first: cut(matching[0]!), last: cut(matching[matching.length - 1]!) } : {}) };
}

/** Hours from an ISO time to `nowMs`. */
export function hoursBetween(iso: string, nowMs: number): number {
  return (nowMs - Date.parse(iso)) / 3_600_000;
}

/** A list for a one-line detail: the first few names and how many more. */
export function listed(items: string[], shown = 5): string {
  return items.length <= shown ? items.join(', ') : `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}

/**
 * Each container's use of its CPU or memory limit (metrics API), the highest of those that have a
 * limit, and the containers without one.
 */
export function sharesOfLimit(pods: PodUsage[], resource: 'cpu' | 'memory'): { shares: Array<{ where: string; percent?: number }>; top?: { where: string; percent: number }; unlimited: string[] } {
  const shares = pods.flatMap((p) => p.containers.map((c) => ({ where: `${p.name}/${c.name}`, percent: (resource === 'cpu' ? c.cpuMillicores : c.memoryBytes).percentOfLimit })));
  const limited = shares.flatMap((s) => (s.percent === undefined ? [] : [{ where: s.where, percent: s.percent }]));
  return { shares, top: limited.sort((a, b) => b.percent - a.percent)[0], unlimited: shares.filter((s) => s.percent === undefined).map((s) => s.where) };
}
