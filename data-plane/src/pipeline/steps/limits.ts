import { RpcErrorCode } from '../../mcp/protocol.ts';
import type { AppliedConfig } from '../../config/applied-config.ts';
import { reportedCost } from '../../policy/prices.ts';
import type { RateLimiter, RateRefusal } from '../../policy/rate-limits.ts';
import { GatewayError } from '../gateway-error.ts';
import { refused, type Operation, type Outcome, type Step } from '../operation.ts';

const KIND_TEXT = { requests: 'requests', toolCalls: 'tool calls' } as const;

/** The refusal of an operation over a rate limit: which limit, and when to retry. */
export function rateLimited(refusal: RateRefusal): GatewayError {
  const { rule } = refusal;
  const retryAfterSeconds = Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
  const error = new GatewayError(
    RpcErrorCode.RateLimited,
    `Rate limit exceeded: the ${rule.scope} "${rule.ownerName}" may make ${rule.perMinute} ${KIND_TEXT[rule.kind]} per minute; retry after ${retryAfterSeconds} s`,
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
  readonly rateLimiter?: RateLimiter | undefined;
}

/**
 * Rate limits (key, team, customer; all apply) before the upstream is called: every operation
 * counts against `requests` limits, a tools/call also against `toolCalls` limits. Checked against
 * this node's token buckets only (see RateLimiter): no I/O on the request path. After a tools/call
 * came back with a result, its cost is set on the operation (`costMicros`, see operation.ts).
 */
export function limitsStep(options: LimitsOptions): Step {
  const limiter = options.rateLimiter;
  return {
    name: 'limits',
    run(operation, next) {
      const rules = operation.principal?.limits;
      if (limiter !== undefined && rules !== undefined && rules.length > 0) {
        const refusal = limiter.take(rules, operation.method === 'tools/call');
        if (refusal !== undefined) return Promise.resolve(refused(rateLimited(refusal)));
      }
      if (operation.method !== 'tools/call') return next(operation);
      return next(operation).then((outcome) => charged(operation, outcome, options.getConfig));
    },
  };
}

/** The outcome, unchanged, after the call's cost was set on the operation (when it reached its upstream). */
function charged(operation: Operation, outcome: Outcome, getConfig: () => AppliedConfig | undefined): Outcome {
  const target = operation.target;
  if (outcome.kind !== 'result' || outcome.unavailable === true || target?.kind !== 'upstream') return outcome;
  const tool = target.params['name'];
  const price = typeof tool === 'string' ? (getConfig()?.prices.priceOf(target.upstream, tool) ?? 0) : 0;
  operation.costMicros = price + reportedCost(outcome.result);
  return outcome;
}
