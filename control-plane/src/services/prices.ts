import { z } from 'zod';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { badInput, parseId, parseInput } from './validation.ts';

/** The largest price of one call: 1,000 currency units (a larger one is surely a typo). */
export const MAX_PRICE_MICROS = 1_000_000_000;

const setToolPriceSchema = z
  .object({
    upstreamId: z.string(),
    tool: z
      .string()
      .min(1, 'is empty; leave tool out for the upstream default')
      .max(128, "is longer than 128 characters; give the upstream's own tool name")
      .nullish(),
    priceMicros: z
      .number()
      .int('must be a whole number of micro-units')
      .min(0, 'must not be negative; 0 makes the tool free, null removes the price')
      .max(MAX_PRICE_MICROS, `is above ${MAX_PRICE_MICROS} micro-units (1,000 currency units) a call`)
      .nullish(),
  })
  .strict();

export interface ToolPriceView {
  upstreamId: string;
  /** The upstream's own tool name; null: the upstream's default. */
  tool: string | null;
  priceMicros: number;
}

const priceRow = z.object({
  upstream_id: z.string(),
  tool: z.string(),
  price_micros: z.union([z.string(), z.number()]),
});

function view(row: unknown): ToolPriceView {
  const parsed = priceRow.parse(row);
  return { upstreamId: parsed.upstream_id, tool: parsed.tool || null, priceMicros: Number(parsed.price_micros) };
}

/** Prices per tool call (per tool, defaulting per upstream), sent to nodes in the snapshot. */
export class PriceService {
  constructor(private readonly store: ConfigStore) {}

  /** Sets (or with priceMicros null, removes) one price; returns it, or null when removed. */
  async set(rawInput: unknown): Promise<ToolPriceView | null> {
    const input = parseInput(setToolPriceSchema, rawInput, 'input');
    const upstreamId = parseId(input.upstreamId, 'input.upstreamId');
    const tool = input.tool ?? '';
    return withConfigChange(this.store, async (manager) => {
      const known: unknown[] = await manager.query(`SELECT 1 FROM upstreams WHERE id = $1`, [upstreamId]);
      if (known.length === 0)
        throw badInput('input.upstreamId', `no upstream has id "${upstreamId}"; list them with the upstreams query`);
      if (input.priceMicros === null || input.priceMicros === undefined) {
        const removed: unknown[] = await manager.query(
          `WITH d AS (DELETE FROM tool_prices WHERE upstream_id = $1 AND tool = $2 RETURNING 1) SELECT * FROM d`,
          [upstreamId, tool],
        );
        return { result: null, changed: removed.length > 0 };
      }
      const rows: unknown[] = await manager.query(
        `INSERT INTO tool_prices (upstream_id, tool, price_micros) VALUES ($1, $2, $3)
         ON CONFLICT (upstream_id, tool) DO UPDATE SET price_micros = excluded.price_micros, updated_at = now()
         RETURNING upstream_id, tool, price_micros`,
        [upstreamId, tool, input.priceMicros],
      );
      return { result: view(rows[0]), changed: true };
    });
  }

  /** Every price, by upstream and tool (the default first). */
  async list(): Promise<ToolPriceView[]> {
    const rows: unknown[] = await this.store.dataSource.query(
      `SELECT upstream_id, tool, price_micros FROM tool_prices ORDER BY upstream_id, tool LIMIT 10000`,
    );
    return rows.map(view);
  }
}
