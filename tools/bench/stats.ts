/**
 * Order statistics of timing and memory samples.
 *
 * @module
 */

/** Summary of a sample set. */
export interface Summary {
  /** Number of samples. */
  readonly n: number;
  /** Median. */
  readonly p50: number;
  /** 95th percentile (linear interpolation between closest ranks). */
  readonly p95: number;
  /** Smallest sample. */
  readonly min: number;
  /** Largest sample. */
  readonly max: number;
  /** Arithmetic mean. */
  readonly mean: number;
}

/**
 * The `p`-th percentile (0..100) of ascending `sorted` values, linearly
 * interpolated between the closest ranks (the "R-7" definition spreadsheets
 * use). Undefined for no values.
 */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low]!;
  const b = sorted[high]!;
  return a + (b - a) * (rank - low);
}

/** Summary of `values`, or undefined when there are none. */
export function summarize(values: readonly number[]): Summary | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50)!,
    p95: percentile(sorted, 95)!,
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: sorted.reduce((sum, v) => sum + v, 0) / sorted.length,
  };
}

/** Median of `values`, or undefined. */
export function median(values: readonly number[]): number | undefined {
  return summarize(values)?.p50;
}

/** Adds `from`'s counts into `into` (per-key sums). */
export function addCounts(
  into: Record<string, number>,
  from: Readonly<Record<string, number>>,
): void {
  for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
}

/** Total of a count map. */
export function total(counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((sum, v) => sum + v, 0);
}

/** Length of the union of `[start, end)` intervals. */
export function unionLength(intervals: readonly (readonly [number, number])[]): number {
  const sorted = [...intervals].filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let end = -Infinity;
  for (const [s, e] of sorted) {
    if (e <= end) continue;
    covered += e - Math.max(s, end);
    end = e;
  }
  return covered;
}
