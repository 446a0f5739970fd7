import { RpcErrorCode } from '../../mcp/protocol.ts';
import type { RateLimiter, RateRefusal } from '../../policy/rate-limits.ts';
import { GatewayError } from '../gateway-error.ts';
import { refused, type Step } from '../operation.ts';

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

/**
 * Rate limits (key, team, customer; all apply) before the upstream is called: every operation
 * counts against `requests` limits, a tools/call also against `toolCalls` limits. Checked against
 * this node's token buckets only (see RateLimiter): no I/O on the request path. Budget leases will
 * be taken here as well.
 */
export function limitsStep(limiter?: RateLimiter): Step {
  if (limiter === undefined) return { name: 'limits', run: (operation, next) => next(operation) };
  return {
    name: 'limits',
    run(operation, next) {
      const rules = operation.principal?.limits;
      if (rules === undefined || rules.length === 0) return next(operation);
      const refusal = limiter.take(rules, operation.method === 'tools/call');
      return refusal === undefined ? next(operation) : Promise.resolve(refused(rateLimited(refusal)));
    },
  };
}
