import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import type { BudgetLease, BudgetSpend } from '../../../proto/gen/portcullis/v1/config.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { badInput, parseId, parseInput } from './validation.ts';

/** The largest budget: a billion currency units (in micro-units, still a safe integer). */
export const MAX_BUDGET_MICROS = 1e15;
/** The join of an audit record (`e`) to the budgets (`b`) above its key that its cost is charged to. */
const CHARGES = `(b.scope = 'KEY' AND e.key_id = b.owner_id::text) OR
  (b.scope = 'TEAM' AND e.team_id = b.owner_id::text) OR
  (b.scope = 'CUSTOMER' AND e.customer_id = b.owner_id::text)`;

/** The settings row holding the audit chain's seq that spending is reconciled through (reconcile). */
const AUDITED_SEQ = 'budget_audited_seq';
/** How many slices of a budget the live nodes share at most: a node is granted 1/(4 n) of it at a time. */
const SLICES_PER_NODE = 4;

const OWNER_TABLES = { KEY: 'virtual_keys', TEAM: 'teams', CUSTOMER: 'customers' } as const;

const setBudgetSchema = z
  .object({
    scope: z.enum(['KEY', 'TEAM', 'CUSTOMER']),
    ownerId: z.string(),
    period: z.enum(['DAY', 'WEEK', 'MONTH', 'NONE']),
    amountMicros: z
      .number()
      .int('must be a whole number of micro-units')
      .min(0, 'must not be negative; 0 allows no spending at all')
      .max(MAX_BUDGET_MICROS, `is above ${MAX_BUDGET_MICROS} micro-units (a billion currency units)`),
  })
  .strict();

/** SQL: the start of budget `b`'s period holding the time `at` (UTC calendar; NONE: one period since the epoch). */
const periodStartAt = (at: string) =>
  `CASE b.period WHEN 'NONE' THEN 'epoch'::timestamptz ELSE date_trunc(lower(b.period), ${at}, 'UTC') END`;
/** SQL: the end of budget `b`'s period holding the time `at` (NULL for NONE). */
const periodEndAt = (at: string) =>
  `CASE b.period WHEN 'NONE' THEN NULL ELSE date_trunc(lower(b.period), ${at}, 'UTC') + ('1 ' || ` +
  `lower(b.period))::interval END`;
const PERIOD_START = periodStartAt('now()');
const PERIOD_END = periodEndAt('now()');

const usageRow = z.object({
  id: z.string(),
  scope: z.enum(['KEY', 'TEAM', 'CUSTOMER']),
  owner_id: z.string(),
  period: z.enum(['DAY', 'WEEK', 'MONTH', 'NONE']),
  amount_micros: z.coerce.number(),
  period_start: z.date(),
  period_end: z.date().nullable(),
  spent: z.coerce.number(),
  granted: z.coerce.number(),
});

export interface BudgetView {
  id: string;
  scope: 'KEY' | 'TEAM' | 'CUSTOMER';
  ownerId: string;
  period: 'DAY' | 'WEEK' | 'MONTH' | 'NONE';
  amountMicros: number;
  periodStart: Date | null;
  periodEnd: Date | null;
  /** What nodes reported spent in the current period. */
  spentMicros: number;
  /** What nodes hold as leases in the current period (spent included). */
  grantedMicros: number;
  /** amount - spent: what may still be spent this period. */
  remainingMicros: number;
}

function toView(raw: unknown): BudgetView {
  const row = usageRow.parse(raw);
  return {
    id: row.id,
    scope: row.scope,
    ownerId: row.owner_id,
    period: row.period,
    amountMicros: row.amount_micros,
    periodStart: row.period === 'NONE' ? null : row.period_start,
    periodEnd: row.period_end,
    spentMicros: row.spent,
    grantedMicros: row.granted,
    remainingMicros: Math.max(0, row.amount_micros - row.spent),
  };
}

/** Budgets with what their leases of the period holding `$1` (a timestamptz; null: now) spent and hold. */
const AT = 'coalesce($1::timestamptz, now())';
const USAGE = `
  SELECT b.id, b.scope, b.owner_id, b.period, b.amount_micros, p.start AS period_start, p.finish AS period_end,
    coalesce(sum(l.spent_micros), 0) AS spent, coalesce(sum(l.granted_micros), 0) AS granted
  FROM budgets b
  CROSS JOIN LATERAL (SELECT ${periodStartAt(AT)} AS start, ${periodEndAt(AT)} AS finish) p
  LEFT JOIN budget_leases l ON l.budget_id = b.id AND l.period_start = p.start`;

/**
 * A node's grant: 1/(4 n) of the budget, at least the dearest call, and a whole number of dearest
 * calls, so leases of uniformly priced tools leave no remainder stranded on a node.
 */
export function sliceOf(amount: number, liveNodes: number, dearest: number): number {
  const share = Math.max(1, Math.ceil(amount / (SLICES_PER_NODE * liveNodes)));
  return dearest > 0 ? Math.ceil(share / dearest) * dearest : share;
}

/**
 * What a node running low on a budget is granted (0: it is not low, or nothing is left): a slice, or,
 * when it has spent more than that this period (a busy node), as much again as it was granted so far,
 * so that a node serving most of the traffic needs a few top-ups instead of one per slice (at 16
 * nodes a slice may be one call). Never more than half of what no node holds, so the other nodes can
 * still be topped up, and a whole number of dearest calls.
 */
export function grantOf(
  row: { amount_micros: number; total_granted: number; granted: number; spent: number; dearest: number },
  liveNodes: number,
): number {
  const ungranted = row.amount_micros - row.total_granted;
  const slice = sliceOf(row.amount_micros, liveNodes, row.dearest);
  // Low as the node sees it (it asks below half of its last grant, about half of all it holds when busy), or
  // less than a slice left.
  if (ungranted <= 0 || row.granted - row.spent >= Math.max(slice, row.granted / 4)) return 0;
  const half = row.dearest > 0 ? Math.floor(ungranted / 2 / row.dearest) * row.dearest : Math.floor(ungranted / 2);
  return Math.min(ungranted, Math.max(slice, Math.min(row.granted, half)));
}

const leaseRow = z.object({
  id: z.string(),
  scope: z.string(),
  owner_id: z.string(),
  amount_micros: z.coerce.number(),
  period_start: z.date(),
  period_end: z.date().nullable(),
  total_granted: z.coerce.number(),
  /** This node's lease of the period: whether it has one, what it was granted and spent. */
  has_lease: z.boolean(),
  granted: z.coerce.number(),
  spent: z.coerce.number(),
  /** The dearest tool price: a slice is a whole number of them. */
  dearest: z.coerce.number(),
});
type LeaseRow = z.infer<typeof leaseRow>;

/**
 * Every budget (or those of `$2`) in its current period, with what all nodes were granted and this
 * node's (`$1`) lease.
 */
const LEASES = `
  SELECT b.id, lower(b.scope) AS scope, b.owner_id, b.amount_micros, p.start AS period_start, p.finish AS period_end,
    (SELECT coalesce(sum(l.granted_micros), 0) FROM budget_leases l WHERE l.budget_id = b.id AND l.period_start =
      p.start) AS total_granted,
    m.node_id IS NOT NULL AS has_lease, coalesce(m.granted_micros, 0) AS granted, coalesce(m.spent_micros, 0) AS spent,
    (SELECT coalesce(max(price_micros), 0) FROM tool_prices) AS dearest
  FROM budgets b CROSS JOIN LATERAL (SELECT ${PERIOD_START} AS start, ${PERIOD_END} AS finish) p
  LEFT JOIN budget_leases m ON m.budget_id = b.id AND m.period_start = p.start AND m.node_id = $1
  WHERE $2::uuid[] IS NULL OR b.id = ANY($2::uuid[])
  ORDER BY b.id`;

/** Whether a node's lease of this budget needs a grant: it has none yet, or less than a slice left of it. */
function needsGrant(row: LeaseRow, liveNodes: number): boolean {
  return !row.has_lease || grantOf(row, liveNodes) > 0;
}

function toLease(row: LeaseRow): BudgetLease {
  return {
    budgetId: row.id,
    scope: row.scope,
    ownerId: row.owner_id,
    periodStartMs: row.period_start.getTime(),
    grantedMicros: row.granted,
    periodEndMs: row.period_end?.getTime() ?? 0,
    ungrantedMicros: Math.max(0, row.amount_micros - row.total_granted),
    spentMicros: row.spent,
  };
}

/**
 * Budgets (one per key, team or customer) and the leases nodes spend from. A node is granted a slice
 * of what no node holds yet (more when it is busy: grantOf) whenever it runs low; grants are made
 * under the budget row's lock, so the leases of a period never add up to more than the budget.
 */
export class BudgetService {
  constructor(private readonly store: ConfigStore) {}

  async set(rawInput: unknown): Promise<BudgetView> {
    const input = parseInput(setBudgetSchema, rawInput, 'input');
    const ownerId = parseId(input.ownerId, 'input.ownerId');
    const id = await withConfigChange(this.store, async (manager) => {
      const owner: unknown[] = await manager.query(`SELECT 1 FROM ${OWNER_TABLES[input.scope]} WHERE id = $1`, [
        ownerId,
      ]);
      if (owner.length === 0)
        throw badInput('input.ownerId', `no ${input.scope.toLowerCase()} has id "${ownerId}"; check scope and ownerId`);
      const rows: Array<{ id: string }> = await manager.query(
        `INSERT INTO budgets (id, scope, owner_id, period, amount_micros) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, owner_id) DO UPDATE SET period = excluded.period, amount_micros = excluded.amount_micros
         RETURNING id`,
        [randomUUID(), input.scope, ownerId, input.period, input.amountMicros],
      );
      return { result: rows[0]!.id, changed: true };
    });
    return (await this.usage([id]))[0]!;
  }

  async remove(rawId: string): Promise<boolean> {
    const id = parseId(rawId, 'id');
    return withConfigChange(this.store, async (manager) => {
      const rows: unknown[] = await manager.query(
        `WITH d AS (DELETE FROM budgets WHERE id = $1 RETURNING 1) SELECT * FROM d`,
        [id],
      );
      if (rows.length === 0)
        throw new PortcullisError(
          ErrorCode.NOT_FOUND,
          `id: no budget has id "${id}"; list them with the budgets query`,
          {
            field: 'id',
          },
        );
      return { result: true, changed: true };
    });
  }

  /**
   * Budgets with their usage in the period holding `at` (default now): what the nodes' leases of that
   * period spent (reported, and reconciled from audit records by their time) and were granted. The
   * leases of every period are kept, so a past period reads as it ended; a future one has spent
   * nothing yet. All budgets, or those of `ids`.
   */
  async usage(ids?: readonly string[], at?: Date): Promise<BudgetView[]> {
    const where = ids === undefined ? '' : 'WHERE b.id = ANY($2)';
    const rows: unknown[] = await this.store.dataSource.query(
      `${USAGE} ${where} GROUP BY b.id, p.start, p.finish ORDER BY b.scope, b.owner_id LIMIT 10000`,
      ids === undefined ? [at ?? null] : [at ?? null, [...ids]],
    );
    return rows.map(toView);
  }

  /**
   * Records what a node reports it spent, tops up its leases that run low, and returns every
   * budget's lease for it (current periods). Only a grant that changes something takes locks: the
   * rows of the budgets to top up (or to give this node its first lease of a period), in id order
   * as reconcile locks them, so the grants of nodes to different budgets, and every refresh that
   * changes nothing, no longer wait on each other (the embedded database has one connection).
   */
  async grant(nodeId: string, liveNodes: number, spends: readonly BudgetSpend[]): Promise<BudgetLease[]> {
    await this.recordSpends(nodeId, spends);
    const nodes = Math.max(1, liveNodes);
    const seen = (await this.store.dataSource.query(LEASES, [nodeId, null])).map((raw: unknown) => leaseRow.parse(raw));
    const due = seen.filter((row: LeaseRow) => needsGrant(row, nodes)).map((row: LeaseRow) => row.id);
    const fresh = due.length === 0 ? [] : await this.topUp(nodeId, nodes, due);
    // What a live node holds is kept from reclaim (which waits `afterMs` past the last touch).
    await this.store.dataSource.query(
      `UPDATE budget_leases SET updated_at = now() WHERE node_id = $1 AND granted_micros > spent_micros
       AND updated_at < now() - interval '1 second'`,
      [nodeId],
    );
    const byId = new Map(fresh.map((row) => [row.id, row]));
    return seen.map((row: LeaseRow) => toLease(byId.get(row.id) ?? row));
  }

  /** A node's reported spending (cumulative per budget and period): never beyond its grant, never less than before. */
  private async recordSpends(nodeId: string, spends: readonly BudgetSpend[]): Promise<void> {
    if (spends.length === 0) return;
    const latest = new Map<string, BudgetSpend>();
    for (const spend of spends) {
      const key = `${spend.budgetId}@${spend.periodStartMs}`;
      if ((latest.get(key)?.spentMicros ?? -1) < spend.spentMicros) latest.set(key, spend);
    }
    const entries = [...latest.values()];
    await this.store.dataSource.query(
      `UPDATE budget_leases l SET spent_micros = greatest(l.spent_micros, least(s.spent, l.granted_micros)),
       updated_at = now()
       FROM unnest($2::uuid[], $3::double precision[], $4::bigint[]) AS s(budget_id, start_ms, spent)
       WHERE l.budget_id = s.budget_id AND l.period_start = to_timestamp(s.start_ms / 1000) AND l.node_id = $1`,
      [
        nodeId,
        entries.map((spend) => spend.budgetId),
        entries.map((spend) => spend.periodStartMs),
        entries.map((spend) => String(spend.spentMicros)),
      ],
    );
  }

  /** Grants `nodeId` a slice of each budget of `ids` it runs low on, under those budgets' locks. */
  private async topUp(nodeId: string, liveNodes: number, ids: readonly string[]): Promise<LeaseRow[]> {
    return this.store.dataSource.transaction(async (manager) => {
      // Locked first, read after: a statement that waited for a lock still sees the grants committed
      // meanwhile only if it starts after the wait (READ COMMITTED takes a snapshot per statement).
      await manager.query(`SELECT id FROM budgets WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, [[...ids]]);
      const rows = (await manager.query(LEASES, [nodeId, [...ids]])).map((raw: unknown) => leaseRow.parse(raw));
      // Less than a slice left (so less than the dearest call, maybe): top up while the node can still serve.
      const grants = rows.map((row: LeaseRow) => grantOf(row, liveNodes));
      // One statement for every budget: the node's first lease of a period, or more of it.
      await manager.query(
        `INSERT INTO budget_leases AS l (budget_id, period_start, node_id, granted_micros)
         SELECT g.budget_id, g.period_start, $1, g.more
         FROM unnest($2::uuid[], $3::timestamptz[], $4::bigint[]) AS g(budget_id, period_start, more)
         ON CONFLICT (budget_id, period_start, node_id) DO UPDATE SET
           granted_micros = l.granted_micros + EXCLUDED.granted_micros, updated_at = now()`,
        [
          nodeId,
          rows.map((row: LeaseRow) => row.id),
          rows.map((row: LeaseRow) => row.period_start.toISOString()),
          grants.map(String),
        ],
      );
      return rows.map((row: LeaseRow, i: number) => ({
        ...row,
        has_lease: true,
        granted: row.granted + grants[i]!,
        total_granted: row.total_granted + grants[i]!,
      }));
    });
  }

  /**
   * Reconciles spending with the audit trail: adds the cost of every audit record stored since the
   * last run to the lease (node and period of the record's time) of each budget above its key, and
   * raises the lease's spent (and grant) to at least that. Spending a node never reported, because it
   * was killed between a call and its report, so counts once its spooled records arrive. Returns how
   * many records were reconciled. Replicas take turns (the watermark row is locked).
   */
  async reconcile(): Promise<number> {
    return this.store.dataSource.transaction(async (manager) => {
      const marks: Array<{ value: string }> = await manager.query(
        `SELECT value FROM settings WHERE key = '${AUDITED_SEQ}' FOR UPDATE`,
      );
      const heads: Array<{ seq: string }> = await manager.query(`SELECT seq::text AS seq FROM audit_chain_head`);
      const from = marks[0]?.value ?? '0';
      const through = heads[0]?.seq ?? '0';
      if (BigInt(through) <= BigInt(from)) return 0;
      // Only the budgets these records charge are locked, in topUp's order (by id), so grants and
      // reconciled spending never interleave on one budget while grants to every other budget go on.
      // Audit rows are append-only, so the set found before locking is the set charged below.
      const charged: Array<{ id: string }> = await manager.query(
        `SELECT DISTINCT b.id FROM audit_events e JOIN budgets b ON ${CHARGES}
         WHERE e.seq > $1 AND e.seq <= $2 AND e.cost_micros > 0`,
        [from, through],
      );
      const ids = charged.map((row) => row.id);
      if (ids.length > 0)
        await manager.query(`SELECT id FROM budgets WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, [ids]);
      const counted: Array<{ records: string }> = await manager.query(
        `WITH hits AS (
           SELECT b.id AS budget_id, ${periodStartAt('e.time')} AS period_start, e.node_id,
                  sum(e.cost_micros) AS cost, count(*) AS records
           FROM audit_events e JOIN budgets b ON ${CHARGES}
           WHERE e.seq > $1 AND e.seq <= $2 AND e.cost_micros > 0 AND b.id = ANY($3::uuid[])
           GROUP BY 1, 2, 3),
         upserted AS (
           INSERT INTO budget_leases AS l
             (budget_id, period_start, node_id, granted_micros, spent_micros, audited_micros)
           SELECT budget_id, period_start, node_id, cost, cost, cost FROM hits
           ON CONFLICT (budget_id, period_start, node_id) DO UPDATE SET
             audited_micros = l.audited_micros + EXCLUDED.audited_micros,
             spent_micros = greatest(l.spent_micros, l.audited_micros + EXCLUDED.audited_micros),
             granted_micros = greatest(l.granted_micros, l.audited_micros + EXCLUDED.audited_micros),
             updated_at = now()
           RETURNING 1)
         SELECT coalesce(sum(records), 0)::text AS records FROM hits`,
        [from, through, ids],
      );
      await manager.query(
        `INSERT INTO settings (key, value) VALUES ('${AUDITED_SEQ}', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [through],
      );
      return Number(counted[0]?.records ?? 0);
    });
  }

  /**
   * Returns to the pool what nodes hold unspent when they have not been seen for `afterMs` (dead:
   * not connected, or silent past their heartbeats): their leases shrink to what they spent.
   */
  async reclaim(afterMs: number): Promise<number> {
    const rows: unknown[] = await this.store.dataSource.query(
      `WITH r AS (
         UPDATE budget_leases l SET granted_micros = l.spent_micros, updated_at = now()
         WHERE l.granted_micros > l.spent_micros AND l.updated_at < now() - $1 * interval '1 millisecond'
           AND NOT EXISTS (SELECT 1 FROM data_plane_nodes n WHERE n.id = l.node_id AND n.connected
                           AND n.last_seen_at > now() - $1 * interval '1 millisecond')
         RETURNING 1) SELECT * FROM r`,
      [afterMs],
    );
    return rows.length;
  }
}
