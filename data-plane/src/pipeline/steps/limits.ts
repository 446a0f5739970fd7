import { RpcErrorCode } from '../../mcp/protocol.ts';
import type { AppliedConfig } from '../../config/applied-config.ts';
import { isReservation, type BudgetLedger, type BudgetRefusal } from '../../policy/budget-ledger.ts';
import { reportedCost } from '../../policy/prices.ts';
import type { RateLimitGate, RateRefusal } from '../../policy/rate-limits.ts';
import { GatewayError } from '../gateway-error.ts';
import { refused, type Operation, type Outcome, type Step } from '../operation.ts';
import { NOT_CHARGED } from '../tool-results.ts';

const NO_OWNERS: readonly string[] = [];

const KIND_TEXT = { requests: 'requests', toolCalls: 'tool calls' } as const;

/** The refusal of an operation over a rate limit: which limit, and when to retry. */
export function rateLimited(refusal: RateRefusal): GatewayError {
  const { rule } = refusal;
  const retryAfterSeconds = Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
  const error = new GatewayError(
    RpcErrorCode.RateLimited,
    `Rate limit exceeded: the ${rule.scope} "${rule.ownerName}" may make ${rule.perMinute} ${KIND_TEXT[rule.kind]} ` +
      `per minute; retry after ${retryAfterSeconds} s`,
    {
      limit: { scope: rule.scope, id: rule.ownerId, name: rule.ownerName, kind: rule.kind, perMinute: rule.perMinute },
      retryAfterSeconds,
    },
  );
  error.retryAfterSeconds = retryAfterSeconds;
  return error;
}

export interface LimitsOptions {
  readonly getConfig: () => AppliedConfig | undefined;
  /** This node's rate-limit buckets; absent, nothing is rate limited. */
  readonly rateLimiter?: RateLimitGate | undefined;
  /** This node's budget leases; absent, budgets are not enforced. */
  readonly budgetLedger?: BudgetLedger | undefined;
}

/** The refusal of a call its budget leases cannot pay for. */
export function budgetRefused(refusal: BudgetRefusal): GatewayError {
  const retryAfterSeconds =
    refusal.retryAfterMs === undefined ? undefined : Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
  const why = refusal.exhausted
    ? `the budget of the ${refusal.scope} "${refusal.ownerId}" is spent for this period`
    : `this node's lease of the budget of the ${refusal.scope} "${refusal.ownerId}" is used up and is being topped up`;
  const when = retryAfterSeconds === undefined ? '; raise the budget to go on' : `; retry after ${retryAfterSeconds} s`;
  const error = new GatewayError(RpcErrorCode.BudgetExhausted, `Budget exceeded: ${why}${when}`, {
    budget: { scope: refusal.scope, ownerId: refusal.ownerId },
    exhausted: refusal.exhausted,
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
  });
  if (retryAfterSeconds !== undefined) error.retryAfterSeconds = retryAfterSeconds;
  return error;
}

/**
 * Rate limits (key, team, customer; all apply) before the upstream is called: every operation
 * counts against `requests` limits, a tools/call also against `toolCalls` limits. Checked against
 * this node's token buckets (RateLimiter: no I/O on the request path) or, when the node counts
 * limits in Redis, against one bucket per limit there (RedisRateLimiter: one round trip, bounded by
 * a short timeout). After a tools/call came back with a result, its cost is set on the operation
 * (`costMicros`, see operation.ts).
 */
export function limitsStep(options: LimitsOptions): Step {
  const limiter = options.rateLimiter;
  const budgets = (operation: Operation, next: (operation: Operation) => Promise<Outcome>): Promise<Outcome> => {
    if (operation.method !== 'tools/call') return next(operation);
    const ledger = options.budgetLedger;
    const config = options.getConfig();
    const principal = operation.principal;
    if (ledger === undefined || config === undefined || principal === undefined || config.budgeted.size === 0)
      return next(operation).then((outcome) => charged(operation, outcome, options.getConfig));
    const held = ledger.reserve(principal.owners ?? NO_OWNERS, config.budgeted, priceOf(operation, config));
    if (held !== undefined && !isReservation(held)) return Promise.resolve(refused(budgetRefused(held)));
    return next(operation).then(
      (outcome) => {
        const result = charged(operation, outcome, options.getConfig);
        if (held !== undefined) ledger.settle(held, operation.costMicros ?? 0);
        return result;
      },
      (error: unknown) => {
        if (held !== undefined) ledger.settle(held, 0);
        throw error;
      },
    );
  };
  return {
    name: 'limits',
    run(operation, next) {
      const rules = operation.principal?.limits;
      if (limiter === undefined || rules === undefined || rules.length === 0) return budgets(operation, next);
      const taken = limiter.take(rules, operation.method === 'tools/call');
      if (taken === undefined) return budgets(operation, next);
      if (!(taken instanceof Promise)) return Promise.resolve(refused(rateLimited(taken)));
      return taken.then((refusal) =>
        refusal === undefined ? budgets(operation, next) : refused(rateLimited(refusal)),
      );
    },
  };
}

function priceOf(operation: Operation, config: AppliedConfig): number {
  const target = operation.target;
  const tool = target?.kind === 'upstream' ? target.params['name'] : undefined;
  return target?.kind === 'upstream' && typeof tool === 'string' ? config.prices.priceOf(target.upstream, tool) : 0;
}

/** The outcome, unchanged, after the call's cost was set on the operation (when it reached its upstream). */
function charged(operation: Operation, outcome: Outcome, getConfig: () => AppliedConfig | undefined): Outcome {
  const target = operation.target;
  if (outcome.kind !== 'result' || outcome.unavailable === true || target?.kind !== 'upstream') return outcome;
  if (NOT_CHARGED.has(outcome.result)) return outcome;
  const tool = target.params['name'];
  const price = typeof tool === 'string' ? (getConfig()?.prices.priceOf(target.upstream, tool) ?? 0) : 0;
  operation.costMicros = price + reportedCost(outcome.result);
  return outcome;
}
