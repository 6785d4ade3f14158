// Types of capacity-model.js (plain CommonJS, shared with capacity-metrics.js).

export type CapacitySeriesName = 'appCpu' | 'appMemory' | 'databaseVolumeUsed' | 'databaseVolumeCapacity' | 'databaseSize';

export interface CapacitySeries {
  /** Exact metric name, e.g. container_cpu_usage_seconds_total. */
  metric: string;
  type: 'counter' | 'gauge';
  help: string;
  /** Scrape job the series comes from (Prometheus adds it, and instance, to the labels below). */
  job: string;
  /** Labels the exporter exposes. */
  labels: Readonly<Record<string, string>>;
  /** Unit of start, slopePerDay and dailyAmplitude: the gauge's value, or the counter's rate. */
  unit: 'cores' | 'bytes';
  /** Value (counter: rate) at the start of the history. */
  start: number;
  /** Linear growth per day. */
  slopePerDay: number;
  /** Amplitude of the daily wave (peak at 12:00 UTC). */
  dailyAmplitude: number;
}

export declare const msPerDay: number;
export declare const historyDays: number;
export declare const sampleIntervalSeconds: number;
export declare const capacitySeries: Readonly<Record<CapacitySeriesName, CapacitySeries>>;
/** The scrape jobs of the series, each once, in series order. */
export declare const capacityJobs: readonly string[];
/** Labels as the text formats write them inside the braces: namespace="short-drama-prod",datname="short_drama_prod". */
export declare function labelText(labels: Readonly<Record<string, string>>): string;
/** The exposed sample: the gauge in whole units, the counter as its cumulative value since originMs. */
export declare function value(name: CapacitySeriesName, timeMs: number, originMs: number): number;
