/**
 * Least-squares straight line through (time, value) points, for capacity planning ("at this
 * rate, where will disk usage be in 90 days?"). Pure: no I/O, usable in workflows and activities.
 */

export const msPerDay = 86_400_000;

export interface TimedValue {
  timeMs: number;
  value: number;
}

export interface LinearTrend {
  /** Points the line was fitted to. */
  pointCount: number;
  /** Time of the latest point; the line is expressed from here. */
  lastTimeMs: number;
  /** Change of the fitted value per day (0 when there is no trend to measure). */
  slopePerDay: number;
  /** The fitted line's value at lastTimeMs (its intercept with the origin at the last point). */
  interceptAtLastPoint: number;
  /**
   * Share of the variance the line explains, 0..1. 1 for constant data (a flat line fits it
   * exactly); 0 when a slope cannot be measured (one point, or every point at the same time).
   */
  r2: number;
  /** The fitted line's value at a time. */
  forecastAt(timeMs: number): number;
}

/**
 * Fits value = a + b·t by ordinary least squares. Times are taken relative to their mean, in
 * days: epoch milliseconds squared (~1e24) would lose every digit that matters to cancellation.
 * Throws a RangeError for no points or a non-finite number (a caller filters NaN samples first).
 */
export function fitLinearTrend(points: readonly TimedValue[]): LinearTrend {
  if (points.length === 0) throw new RangeError('fitLinearTrend: no points to fit');
  for (const p of points) {
    if (!Number.isFinite(p.timeMs) || !Number.isFinite(p.value)) throw new RangeError(`fitLinearTrend: non-finite point (${p.timeMs}, ${p.value})`);
  }
  const n = points.length;
  const lastTimeMs = points.reduce((latest, p) => Math.max(latest, p.timeMs), -Infinity);
  const meanTimeMs = points.reduce((sum, p) => sum + p.timeMs, 0) / n;
  const meanValue = points.reduce((sum, p) => sum + p.value, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const p of points) {
    const dx = (p.timeMs - meanTimeMs) / msPerDay;
    const dy = p.value - meanValue;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  // No spread in time (one point, or all at one instant): no slope can be measured; the mean is the best level.
  const slopePerDay = sxx > 0 ? sxy / sxx : 0;
  const interceptAtLastPoint = meanValue + slopePerDay * ((lastTimeMs - meanTimeMs) / msPerDay);
  let r2: number;
  if (sxx === 0) r2 = 0;
  else if (syy === 0) r2 = 1;
  // Clamped: rounding can push sxy² slightly above sxx·syy.
  else r2 = Math.min(1, Math.max(0, (sxy * sxy) / (sxx * syy)));
  return {
    pointCount: n,
    lastTimeMs,
    slopePerDay,
    interceptAtLastPoint,
    r2,
    forecastAt: (timeMs: number) => interceptAtLastPoint + slopePerDay * ((timeMs - lastTimeMs) / msPerDay),
  };
}

/** The fitted line's value `days` after the last point (e.g. 90 for "in three months"). */
export function valueDaysAfterLastPoint(trend: LinearTrend, days: number): number {
  return trend.interceptAtLastPoint + trend.slopePerDay * days;
}
