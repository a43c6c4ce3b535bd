/** The small statistics of the benchmark: percentiles of latencies, medians and spreads of runs. */

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/**
 * The p-th percentile (0..100) with linear interpolation between the closest ranks (numpy's
 * default), so that p50 of an even count is the mean of the middle two. NaN for no values.
 */
export function percentile(values: readonly number[], p: number): number {
  if (p < 0 || p > 100 || Number.isNaN(p)) throw new RangeError(`percentile ${p} is outside 0..100`);
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lower = Math.floor(rank);
  const upper = Math.ceil(rank);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (rank - lower);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Median and range of a point's runs; NaN everywhere for no values. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export interface LatencyPercentiles {
  p50: number;
  p95: number;
  p99: number;
}

export function latencyPercentiles(milliseconds: readonly number[]): LatencyPercentiles {
  return {
    p50: percentile(milliseconds, 50),
    p95: percentile(milliseconds, 95),
    p99: percentile(milliseconds, 99),
  };
}
