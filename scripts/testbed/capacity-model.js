// The sandbox's capacity history (monthly review: 30-day trends, 3-month linear forecast), as one
// model used twice: scripts/testbed/capacity-history.ts backfills 30 days of it into Prometheus
// and capacity-metrics.js exposes its current values, so the backfilled history and the live scrapes
// are the same series. Each series is a straight line from the start of the history (`originMs`)
// plus a daily wave; the wave averages out over whole days, so a least-squares line through the
// history finds `slopePerDay`. Plain CommonJS: capacity-metrics.js runs under bare Node.js.
'use strict';

const msPerDay = 86_400_000;
const secondsPerDay = 86_400;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const namespace = 'short-drama-prod';

/** How much history Prometheus gets on start, and at what resolution. */
const historyDays = 30;
const sampleIntervalSeconds = 300;

/**
 * The series, by name. `job` is the scrape job they come from (as in a cluster: cAdvisor and volume
 * stats from the kubelet, database size from postgres_exporter); `labels` are the exposed ones
 * (Prometheus adds job and instance). For a gauge, start/slopePerDay/dailyAmplitude describe its
 * value; for the counter they describe its rate (cores = CPU seconds per second) and the counter
 * is that rate's integral since originMs.
 */
const capacitySeries = {
  appCpu: {
    metric: 'container_cpu_usage_seconds_total',
    type: 'counter',
    help: 'Cumulative cpu time consumed by the container in core-seconds',
    job: 'kubelet',
    labels: { namespace, pod: 'short-drama-app-0', container: 'app' },
    unit: 'cores',
    start: 0.2,
    slopePerDay: 0.004,
    dailyAmplitude: 0.04,
  },
  appMemory: {
    metric: 'container_memory_working_set_bytes',
    type: 'gauge',
    help: 'Current working set of the container in bytes',
    job: 'kubelet',
    labels: { namespace, pod: 'short-drama-app-0', container: 'app' },
    unit: 'bytes',
    start: 256 * MiB,
    slopePerDay: 2 * MiB,
    dailyAmplitude: 8 * MiB,
  },
  databaseVolumeUsed: {
    metric: 'kubelet_volume_stats_used_bytes',
    type: 'gauge',
    help: 'Number of used bytes in the volume',
    job: 'kubelet',
    labels: { namespace, persistentvolumeclaim: 'postgres-pvc' },
    unit: 'bytes',
    start: 4 * GiB,
    slopePerDay: 40 * MiB,
    dailyAmplitude: 8 * MiB,
  },
  databaseVolumeCapacity: {
    metric: 'kubelet_volume_stats_capacity_bytes',
    type: 'gauge',
    help: 'Capacity in bytes of the volume',
    job: 'kubelet',
    labels: { namespace, persistentvolumeclaim: 'postgres-pvc' },
    unit: 'bytes',
    start: 10 * GiB,
    slopePerDay: 0,
    dailyAmplitude: 0,
  },
  databaseSize: {
    metric: 'pg_database_size_bytes',
    type: 'gauge',
    help: 'Disk space used by the database',
    job: 'postgres-exporter',
    labels: { namespace, datname: 'short_drama_prod' },
    unit: 'bytes',
    start: 3 * GiB,
    slopePerDay: 32 * MiB,
    dailyAmplitude: 4 * MiB,
  },
};

/** The scrape jobs of the series, each once, in series order (capacity-metrics.js serves each at /metrics/<job>). */
const capacityJobs = [...new Set(Object.values(capacitySeries).map((series) => series.job))];

/** Labels as the text formats write them inside the braces: namespace="short-drama-prod",datname="short_drama_prod". */
function labelText(labels) {
  return Object.entries(labels)
    .map(([label, value]) => `${label}="${value}"`)
    .join(',');
}

function parameters(name) {
  const p = capacitySeries[name];
  if (!p) throw new Error(`unknown capacity series "${name}"`);
  return p;
}

/** Angle of the daily wave: by UTC time of day (peak at 12:00 UTC), whatever the origin. */
function wavePhase(timeMs) {
  return 2 * Math.PI * (timeMs / msPerDay - 0.25);
}

/** The straight line alone (for the counter: its rate, in cores): what a linear forecast should find. */
function trend(name, timeMs, originMs) {
  const p = parameters(name);
  return p.start + p.slopePerDay * ((timeMs - originMs) / msPerDay);
}

/** The line plus the daily wave: the gauge's value, or the counter's instantaneous rate. */
function level(name, timeMs, originMs) {
  return trend(name, timeMs, originMs) + parameters(name).dailyAmplitude * Math.sin(wavePhase(timeMs));
}

/** What the exporter shows at timeMs: the level for gauges (whole bytes), the integral of the level since originMs for the counter. */
function value(name, timeMs, originMs) {
  const p = parameters(name);
  if (p.type === 'gauge') return Math.round(level(name, timeMs, originMs));
  const days = (timeMs - originMs) / msPerDay;
  const lineSeconds = (p.start * days + (p.slopePerDay * days * days) / 2) * secondsPerDay;
  const waveSeconds = ((p.dailyAmplitude * secondsPerDay) / (2 * Math.PI)) * (Math.cos(wavePhase(originMs)) - Math.cos(wavePhase(timeMs)));
  return lineSeconds + waveSeconds;
}

module.exports = { msPerDay, historyDays, sampleIntervalSeconds, capacitySeries, capacityJobs, labelText, value };
