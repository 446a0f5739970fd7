import type { ToolPrice, UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';

/** Where an upstream may report a cost of its own, in integer micro-units, on a tools/call result. */
export const REPORTED_COST_META_KEY = 'dev.portcullis/costMicros';

/** The largest reported cost taken as meant (a million currency units); anything larger is ignored as a bug. */
const MAX_REPORTED_COST = 1e12;

/** Tool prices of one snapshot, by upstream name: a lookup per call, no allocation. */
export class PriceList {
  private constructor(
    private readonly byUpstream: ReadonlyMap<
      string,
      { readonly fallback: number; readonly tools: ReadonlyMap<string, number> }
    >,
  ) {}

  static readonly EMPTY = new PriceList(new Map());

  static of(prices: readonly ToolPrice[] | undefined, upstreams: readonly UpstreamConfig[]): PriceList {
    if (prices === undefined || prices.length === 0) return PriceList.EMPTY;
    const names = new Map(upstreams.map((upstream) => [upstream.id, upstream.name]));
    const byUpstream = new Map<string, { fallback: number; tools: Map<string, number> }>();
    for (const price of prices) {
      const name = names.get(price.upstreamId);
      if (name === undefined) continue;
      let entry = byUpstream.get(name);
      if (entry === undefined) byUpstream.set(name, (entry = { fallback: 0, tools: new Map() }));
      if (price.tool === '') entry.fallback = price.priceMicros;
      else entry.tools.set(price.tool, price.priceMicros);
    }
    return new PriceList(byUpstream);
  }

  /** The price of one call of `tool` (the upstream's own name) on `upstream`, in micro-units; 0 when unpriced. */
  priceOf(upstream: string, tool: string): number {
    const entry = this.byUpstream.get(upstream);
    if (entry === undefined) return 0;
    return entry.tools.get(tool) ?? entry.fallback;
  }
}

/** The cost an upstream reported on a result (`_meta["dev.portcullis/costMicros"]`), or 0 when none or malformed. */
export function reportedCost(result: Record<string, unknown>): number {
  const meta = result['_meta'];
  if (!isPlainObject(meta)) return 0;
  const cost = meta[REPORTED_COST_META_KEY];
  return typeof cost === 'number' && Number.isSafeInteger(cost) && cost >= 0 && cost <= MAX_REPORTED_COST ? cost : 0;
}
