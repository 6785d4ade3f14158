import { fitLinearTrend, msPerDay, valueDaysAfterLastPoint, type TimedValue } from '../../common/forecast';

const day0 = Date.parse('2026-01-01T00:00:00Z');
const daily = (values: number[]): TimedValue[] => values.map((value, i) => ({ timeMs: day0 + i * msPerDay, value }));

describe('fitLinearTrend (least-squares line over time)', () => {
  test('an exact line: slope per day, value at the last point, r2 = 1, forecasts along it', () => {
    const trend = fitLinearTrend(daily(Array.from({ length: 10 }, (_, i) => 5 + 2 * i)));
    expect(trend.pointCount).toBe(10);
    expect(trend.lastTimeMs).toBe(day0 + 9 * msPerDay);
    expect(trend.slopePerDay).toBeCloseTo(2, 12);
    expect(trend.interceptAtLastPoint).toBeCloseTo(23, 12);
    expect(trend.r2).toBeCloseTo(1, 12);
    expect(trend.forecastAt(day0 + 10 * msPerDay)).toBeCloseTo(25, 12);
    expect(trend.forecastAt(day0)).toBeCloseTo(5, 12);
    expect(valueDaysAfterLastPoint(trend, 90)).toBeCloseTo(23 + 180, 10);
  });

  test('a known noisy fit, worked by hand: slope 0.5/day, 2.5 at the last point, r2 = 0.25', () => {
    const trend = fitLinearTrend(daily([1, 3, 2]));
    expect(trend.slopePerDay).toBeCloseTo(0.5, 12);
    expect(trend.interceptAtLastPoint).toBeCloseTo(2.5, 12);
    expect(trend.r2).toBeCloseTo(0.25, 12);
  });

  test('epoch-millisecond times and values the size of time(): no precision lost (slope 86400/day)', () => {
    const start = Date.parse('2026-11-01T00:00:00Z');
    const points = Array.from({ length: 721 }, (_, i) => ({ timeMs: start + i * 3_600_000, value: (start + i * 3_600_000) / 1000 }));
    const trend = fitLinearTrend(points);
    expect(trend.slopePerDay).toBeCloseTo(86_400, 6);
    expect(trend.r2).toBeCloseTo(1, 12);
    expect(trend.interceptAtLastPoint).toBeCloseTo(points.at(-1)!.value, 3);
    expect(valueDaysAfterLastPoint(trend, 90)).toBeCloseTo(points.at(-1)!.value + 90 * 86_400, 3);
  });

  test('points out of order: the line is expressed from the latest one', () => {
    const trend = fitLinearTrend(daily([10, 20, 30]).reverse());
    expect(trend.lastTimeMs).toBe(day0 + 2 * msPerDay);
    expect(trend.slopePerDay).toBeCloseTo(10, 12);
    expect(trend.interceptAtLastPoint).toBeCloseTo(30, 12);
  });

  test('constant data: flat line, r2 = 1, never NaN', () => {
    const trend = fitLinearTrend(daily([7, 7, 7, 7]));
    expect(trend).toMatchObject({ slopePerDay: 0, interceptAtLastPoint: 7, r2: 1 });
    expect(valueDaysAfterLastPoint(trend, 90)).toBe(7);
  });

  test('one point, or every point at one instant: no slope (0), the mean as level, r2 = 0', () => {
    const one = fitLinearTrend([{ timeMs: day0, value: 42 }]);
    expect(one).toMatchObject({ pointCount: 1, slopePerDay: 0, interceptAtLastPoint: 42, r2: 0, lastTimeMs: day0 });
    expect(one.forecastAt(day0 + 30 * msPerDay)).toBe(42);
    const sameInstant = fitLinearTrend([
      { timeMs: day0, value: 1 },
      { timeMs: day0, value: 3 },
    ]);
    expect(sameInstant).toMatchObject({ slopePerDay: 0, interceptAtLastPoint: 2, r2: 0 });
  });

  test('no points or a non-finite number is a RangeError, not NaN results', () => {
    expect(() => fitLinearTrend([])).toThrow(RangeError);
    expect(() => fitLinearTrend([{ timeMs: day0, value: Number.NaN }])).toThrow(/non-finite/);
    expect(() => fitLinearTrend([{ timeMs: Number.POSITIVE_INFINITY, value: 1 }])).toThrow(/non-finite/);
  });
});
