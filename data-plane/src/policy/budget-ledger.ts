import type { BudgetLease, BudgetSpend } from '../../../proto/gen/portcullis/v1/config.ts';

/** One budget's lease on this node for one period. */
interface LeaseState {
  readonly budgetId: string;
  readonly scope: string;
  readonly ownerId: string;
  readonly periodStartMs: number;
  periodEndMs: number;
  /** Everything granted to this node this period. */
  granted: number;
  /** Spent by settled calls. */
  spent: number;
  /** Held by calls in flight (their price). */
  reserved: number;
  /** What of the budget no node holds: 0 means no top-up will come this period. */
  ungranted: number;
  /** The last grant's size: the lease is low below half of it. */
  lastGrant: number;
  dirty: boolean;
  /** When this lease was last reported (now() ms; 0: never). */
  reportedAt: number;
}

/** A call's hold on the leases of every budget above it; settled (or released) when it ends. */
export interface Reservation {
  readonly states: readonly LeaseState[];
  readonly price: number;
}

/** Why a call may not spend: the budget, and whether more may come (a top-up) or not this period. */
export interface BudgetRefusal {
  readonly scope: string;
  readonly ownerId: string;
  readonly exhausted: boolean;
  readonly retryAfterMs: number | undefined;
}

/** How long spend reports wait to be sent together, unless a lease runs low. */
const REPORT_DELAY_MS = 50;
/**
 * A low lease with nothing newly spent is reported again (asking for the top-up once more) at most
 * this often: calls refused while a top-up is on its way must not each send the control plane a
 * report (agents retrying every few ms would queue grants faster than it answers them).
 */
export const LOW_LEASE_RESEND_MS = 250;

/**
 * This node's budget leases (BudgetLeases from the control plane) and what it spent of them. A call
 * reserves its price on the lease of every budget above its key before it runs and may not start
 * when any lease lacks it, so the node never spends beyond what it was granted; nothing here waits
 * on the control plane. Spending is reported back (cumulative per budget and period), at once when a
 * lease runs below half of its last grant, so the control plane tops it up before it is empty.
 */
export class BudgetLedger {
  private byOwner = new Map<string, LeaseState>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly report: (entries: BudgetSpend[]) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes the control plane's leases (every budget's, for its current period). */
  apply(leases: readonly BudgetLease[]): void {
    const next = new Map<string, LeaseState>();
    for (const lease of leases) {
      const owner = `${lease.scope}:${lease.ownerId}`;
      const current = this.byOwner.get(owner);
      if (
        current !== undefined &&
        current.budgetId === lease.budgetId &&
        current.periodStartMs === lease.periodStartMs
      ) {
        if (lease.grantedMicros > current.granted) current.lastGrant = lease.grantedMicros - current.granted;
        current.granted = Math.max(current.granted, lease.grantedMicros);
        current.spent = Math.max(current.spent, Math.min(lease.spentMicros, current.granted));
        current.ungranted = lease.ungrantedMicros;
        current.periodEndMs = lease.periodEndMs;
        next.set(owner, current);
      } else {
        next.set(owner, {
          budgetId: lease.budgetId,
          scope: lease.scope,
          ownerId: lease.ownerId,
          periodStartMs: lease.periodStartMs,
          periodEndMs: lease.periodEndMs,
          granted: lease.grantedMicros,
          // What an earlier process of this node spent (reported before it ended) stays spent.
          spent: Math.min(lease.spentMicros, lease.grantedMicros),
          reserved: 0,
          ungranted: lease.ungrantedMicros,
          lastGrant: lease.grantedMicros,
          dirty: false,
          reportedAt: 0,
        });
      }
    }
    this.byOwner = next;
  }

  /**
   * Reserves `price` on the lease of every owner in `owners` that `budgeted` names, all or none.
   * An owner with a budget but no lease (or one whose period ended) may spend nothing.
   */
  reserve(
    owners: readonly string[],
    budgeted: ReadonlySet<string>,
    price: number,
  ): Reservation | BudgetRefusal | undefined {
    if (budgeted.size === 0) return undefined;
    const states: LeaseState[] = [];
    const now = this.now();
    for (const owner of owners) {
      if (!budgeted.has(owner)) continue;
      const state = this.byOwner.get(owner);
      const separator = owner.indexOf(':');
      if (state === undefined || (state.periodEndMs !== 0 && now >= state.periodEndMs)) {
        this.flushSoon(0);
        return {
          scope: owner.slice(0, separator),
          ownerId: owner.slice(separator + 1),
          exhausted: false,
          retryAfterMs: 1000,
        };
      }
      if (state.granted - state.spent - state.reserved < price || (price === 0 && state.granted - state.spent <= 0)) {
        const exhausted = state.ungranted === 0 && state.reserved === 0;
        if (!exhausted) this.flushSoon(0);
        return {
          scope: state.scope,
          ownerId: state.ownerId,
          exhausted,
          retryAfterMs: !exhausted ? 1000 : state.periodEndMs === 0 ? undefined : state.periodEndMs - now,
        };
      }
      states.push(state);
    }
    if (states.length === 0) return undefined;
    for (const state of states) state.reserved += price;
    return { states, price };
  }

  /** Ends a reservation: `cost` is charged (at most what each lease still holds), the rest released. */
  settle(reservation: Reservation, cost: number): void {
    let low = false;
    for (const state of reservation.states) {
      state.reserved -= reservation.price;
      const charge = Math.max(0, Math.min(cost, state.granted - state.spent - state.reserved));
      if (charge === 0) continue;
      state.spent += charge;
      state.dirty = true;
      if (state.granted - state.spent - state.reserved < state.lastGrant / 2) low = true;
    }
    this.flushSoon(low ? 0 : REPORT_DELAY_MS);
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private flushSoon(delayMs: number): void {
    if (this.timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => this.flush(), delayMs);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    const entries: BudgetSpend[] = [];
    const now = this.now();
    for (const state of this.byOwner.values()) {
      if (!state.dirty && state.granted - state.spent - state.reserved >= state.lastGrant / 2) continue;
      if (!state.dirty && now - state.reportedAt < LOW_LEASE_RESEND_MS) continue;
      state.dirty = false;
      state.reportedAt = now;
      entries.push({ budgetId: state.budgetId, periodStartMs: state.periodStartMs, spentMicros: state.spent });
    }
    if (entries.length > 0) this.report(entries);
  }
}

export function isReservation(value: Reservation | BudgetRefusal): value is Reservation {
  return 'states' in value;
}
