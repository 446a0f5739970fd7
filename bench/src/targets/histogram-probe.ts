import type { Probe } from '../load/run-load.ts';

/**
 * Reads a Prometheus histogram from a `/metrics` endpoint before and after the measured phase and
 * reports, for the calls in between, its mean and its p50/p99 estimated from the bucket counts
 * (linear within a bucket, as Prometheus' histogram_quantile does). Series are summed over labels.
 */

interface Histogram {
  count: number;
  sum: number;
  /** Cumulative counts by upper bound, ascending. */
  buckets: Array<{ le: number; count: number }>;
}

export function parseHistogram(text: string, name: string): Histogram | undefined {
  let count = 0;
  let sum = 0;
  let found = false;
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^(\S+?)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, metric, labels = '', value] = match;
    const v = Number(value);
    if (metric === `${name}_count`) {
      count += v;
      found = true;
    } else if (metric === `${name}_sum`) sum += v;
    else if (metric === `${name}_bucket`) {
      const le = /le="([^"]+)"/.exec(labels)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + v);
    }
  }
  if (!found) return undefined;
  return { count, sum, buckets: [...buckets].map(([le, c]) => ({ le, count: c })).sort((a, b) => a.le - b.le) };
}

function quantile(buckets: Array<{ le: number; count: number }>, q: number): number | undefined {
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1e-12, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return undefined;
}

export function histogramProbe(
  metricsUrl: string,
  name: string,
  label: string,
  headers: Record<string, string> = {},
): Probe {
  let before: Histogram | undefined;
  const read = async (): Promise<Histogram | undefined> => {
    const response = await fetch(metricsUrl, { headers, signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new Error(`GET ${metricsUrl}: HTTP ${response.status}`);
    return parseHistogram(await response.text(), name);
  };
  return {
    name: label,
    async before() {
      before = await read().catch(() => undefined);
    },
    async after() {
      const after = await read();
      if (!after) return { [label]: `not exported: no histogram ${name} at ${metricsUrl}` };
      const base = before ?? { count: 0, sum: 0, buckets: [] };
      const count = after.count - base.count;
      if (count <= 0) return { [label]: `no observations in ${name} during the run` };
      const buckets = after.buckets.map(({ le, count: c }) => ({
        le,
        count: c - (base.buckets.find((b) => b.le === le)?.count ?? 0),
      }));
      const out: Record<string, number | string> = { [`${label}MeanMs`]: ((after.sum - base.sum) / count) * 1000 };
      const p50 = quantile(buckets, 0.5);
      const p99 = quantile(buckets, 0.99);
      if (p50 !== undefined) out[`${label}P50Ms`] = p50 * 1000;
      if (p99 !== undefined) out[`${label}P99Ms`] = p99 * 1000;
      return out;
    },
  };
}
