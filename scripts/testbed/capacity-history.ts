import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as capacityModel from './capacity-model';
import type { TestbedLayout } from './layout';
import { runChecked } from './processes';
import type { CapacitySeriesName } from './capacity-model';

/** The model of the capacity series (capacity-model.js): the series' parameters and value(). */
export { capacityModel };
export type { CapacitySeriesName } from './capacity-model';

export const capacitySeriesNames = Object.keys(capacityModel.capacitySeries) as CapacitySeriesName[];

/**
 * Where the model is anchored: the history starts at originMs and was backfilled up to endMs (the
 * Prometheus start); the live values continue from there. Written by the Prometheus start and read
 * by capacity-metrics.js on every scrape, so both use the same origin.
 */
export interface CapacityHistory {
  originMs: number;
  endMs: number;
  /** The instance label Prometheus gives the scraped series (the capacity-metrics server). */
  instance: string;
}

export function capacityHistoryFile(layout: TestbedLayout): string {
  return join(layout.stateDir, 'prometheus', 'capacity-history.json');
}

/** The history of the running Prometheus, or undefined before its first start. */
export function readCapacityHistory(layout: TestbedLayout): CapacityHistory | undefined {
  const file = capacityHistoryFile(layout);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as CapacityHistory) : undefined;
}

/** Paths capacity-metrics.js serves each scrape job's series on (see the Prometheus scrape config). */
export function capacityScrapeJobs(): Array<{ job: string; metricsPath: string }> {
  return capacityModel.capacityJobs.map((job) => ({ job, metricsPath: `/metrics/${job}` }));
}

/** Labels of a series as Prometheus stores it: the exposed ones plus job and instance. */
export function storedLabels(name: CapacitySeriesName, history: CapacityHistory): Record<string, string> {
  const series = capacityModel.capacitySeries[name];
  return { ...series.labels, job: series.job, instance: history.instance };
}

/** PromQL selector of one series by its exposed labels, e.g. pg_database_size_bytes{namespace="short-drama-prod",datname="short_drama_prod"}. */
export function capacitySelector(name: CapacitySeriesName): string {
  const series = capacityModel.capacitySeries[name];
  return `${series.metric}{${capacityModel.labelText(series.labels)}}`;
}

/**
 * The history as OpenMetrics text, one sample every sampleIntervalSeconds from originMs to endMs,
 * series after series (promtool wants each family in one piece and each series in time order).
 */
export function capacityOpenMetrics(history: CapacityHistory): string {
  const stepMs = capacityModel.sampleIntervalSeconds * 1000;
  const lines: string[] = [];
  for (const name of capacitySeriesNames) {
    const series = capacityModel.capacitySeries[name];
    // OpenMetrics names a counter's family without its _total suffix.
    const family = series.type === 'counter' ? series.metric.replace(/_total$/, '') : series.metric;
    lines.push(`# HELP ${family} ${series.help}`, `# TYPE ${family} ${series.type}`);
    const labels = capacityModel.labelText(storedLabels(name, history));
    // From the end backwards, so the last sample is exactly at endMs; then in time order. OpenMetrics timestamps are seconds.
    const times: number[] = [];
    for (let t = history.endMs; t >= history.originMs; t -= stepMs) times.push(t);
    for (const t of times.reverse()) {
      lines.push(`${series.metric}{${labels}} ${capacityModel.value(name, t, history.originMs)} ${t / 1000}`);
    }
  }
  lines.push('# EOF', '');
  return lines.join('\n');
}

/**
 * Writes the anchor file and `historyDays` of samples ending now into dataDir as TSDB blocks, the
 * series labelled with `instance`, the capacity-metrics target Prometheus scrapes them from
 * (promtool, from the Debian prometheus package). dataDir must be empty: blocks overlapping an
 * older history would be merged with it. 162h blocks (a hidden flag of promtool 2.42; the largest
 * compaction range Prometheus uses with 90d retention): 6 blocks in a fraction of a second,
 * instead of 361 two-hour blocks, each of which makes promtool parse the whole file again (~8 s).
 */
export function backfillCapacityHistory(layout: TestbedLayout, dataDir: string, instance: string, now = Date.now()): CapacityHistory {
  // Whole seconds: promtool truncates fractional timestamps, which could move a sample by 1 ms.
  const endMs = Math.floor(now / 1000) * 1000;
  const history: CapacityHistory = {
    originMs: endMs - capacityModel.historyDays * capacityModel.msPerDay,
    endMs,
    instance,
  };
  const file = capacityHistoryFile(layout);
  mkdirSync(join(file, '..'), { recursive: true });
  // Renamed into place: capacity-metrics.js may read it at any moment.
  writeFileSync(`${file}.tmp`, `${JSON.stringify(history)}\n`);
  renameSync(`${file}.tmp`, file);
  const openMetrics = join(layout.stateDir, 'prometheus', 'capacity-history.om.txt');
  writeFileSync(openMetrics, capacityOpenMetrics(history));
  try {
    mkdirSync(dataDir, { recursive: true });
    runChecked('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', '--max-block-duration=162h', openMetrics, dataDir]);
  } finally {
    rmSync(openMetrics, { force: true });
  }
  return history;
}
