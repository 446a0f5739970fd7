import type { RateLimits } from '../../../proto/gen/portcullis/v1/config.ts';

export type LimitScope = 'key' | 'team' | 'customer';
/** `requests`: every operation; `toolCalls`: tools/call only. */
export type LimitKind = 'requests' | 'toolCalls';

/** One limit of one key, team or customer, compiled once per snapshot. */
export interface LimitRule {
  /** The bucket's identity across snapshots: `<scope>:<owner id>:<kind>`. */
  readonly bucket: string;
  readonly scope: LimitScope;
  readonly ownerId: string;
  readonly ownerName: string;
  readonly kind: LimitKind;
  /** Across every node together. */
  readonly perMinute: number;
  /** Across every node together; at least 1. */
  readonly burst: number;
}

/** The rules of one owner's limits (none when it has none). */
export function compileLimits(
  scope: LimitScope,
  ownerId: string,
  ownerName: string,
  limits: RateLimits | undefined,
): LimitRule[] {
  if (limits === undefined) return [];
  const rules: LimitRule[] = [];
  const add = (kind: LimitKind, perMinute: number) => {
    if (perMinute <= 0) return;
    const burst = Math.max(1, limits.burst > 0 ? Math.min(limits.burst, perMinute) : perMinute);
    rules.push({ bucket: `${scope}:${ownerId}:${kind}`, scope, ownerId, ownerName, kind, perMinute, burst });
  };
  add('requests', limits.requestsPerMinute);
  add('toolCalls', limits.toolCallsPerMinute);
  return rules;
}

/** Why an operation was refused: the first limit without a token, and when it will have one. */
export interface RateRefusal {
  readonly rule: LimitRule;
  /** This node's share of the limit, per minute. */
  readonly sharePerMinute: number;
  readonly retryAfterMs: number;
}

/**
 * What the limits step needs of a rate limiter: take a token from every rule that applies, all or
 * none (a promise when the count lives elsewhere, see RedisRateLimiter).
 */
export interface RateLimitGate {
  take(rules: readonly LimitRule[], toolCall: boolean): RateRefusal | undefined | Promise<RateRefusal | undefined>;
}

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
}

const MS_PER_MINUTE = 60_000;

/**
 * Token buckets of this node: each limit's share is the whole limit divided by the live nodes the
 * control plane counts (NodeShare), so the nodes together admit about the limit without talking to
 * each other on the request path. A bucket holds at most its share of the burst (at least one
 * token) and refills continuously at its share of the rate. Buckets are kept by owner and kind
 * across snapshots, so a new snapshot neither refills nor empties them.
 */
export class RateLimiter implements RateLimitGate {
  private liveNodes = 1;
  private readonly buckets = new Map<string, Bucket>();

  /** The number of live nodes sharing every limit (the control plane's NodeShare); at least 1. */
  setLiveNodes(count: number): void {
    this.liveNodes = Math.max(1, Math.floor(count));
  }

  get sharedBy(): number {
    return this.liveNodes;
  }

  /**
   * Takes one token from every rule that applies to the operation, all or none: undefined when
   * admitted, otherwise the refusal of the first rule without a token.
   */
  take(rules: readonly LimitRule[], toolCall: boolean, now = performance.now()): RateRefusal | undefined {
    const share = 1 / this.liveNodes;
    for (const rule of rules) {
      if (rule.kind === 'toolCalls' && !toolCall) continue;
      const bucket = this.refilled(rule, share, now);
      if (bucket.tokens < 1) {
        const perMs = (rule.perMinute * share) / MS_PER_MINUTE;
        return {
          rule,
          sharePerMinute: rule.perMinute * share,
          retryAfterMs: Math.ceil((1 - bucket.tokens) / perMs),
        };
      }
    }
    for (const rule of rules) {
      if (rule.kind === 'toolCalls' && !toolCall) continue;
      this.buckets.get(rule.bucket)!.tokens -= 1;
    }
    return undefined;
  }

  private refilled(rule: LimitRule, share: number, now: number): Bucket {
    const capacity = Math.max(1, rule.burst * share);
    let bucket = this.buckets.get(rule.bucket);
    if (bucket === undefined) {
      bucket = { tokens: capacity, at: now };
      this.buckets.set(rule.bucket, bucket);
      return bucket;
    }
    const perMs = (rule.perMinute * share) / MS_PER_MINUTE;
    bucket.tokens = Math.min(capacity, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    return bucket;
  }
}
