/**
 * Exponential backoff with "equal jitter": the n-th retry waits between half and all of
 * `min(maxMs, baseMs * 2^n)`, so a fleet that failed together does not retry together, and no
 * retry comes sooner than half its step. The one place the project computes a retry delay.
 */
export interface BackoffPolicy {
  /** The first step (n = 0). */
  readonly baseMs: number;
  /** The largest step. */
  readonly maxMs: number;
}

/** Steps past this exponent are all `maxMs` anyway (and 2 ** n stays a safe number). */
const MAX_EXPONENT = 30;

/** The delay before retry number `attempt` (0-based), jittered. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(0, attempt), MAX_EXPONENT));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** Counts the attempts of one retry loop; `next()` gives the delay before the next one. */
export class Backoff {
  private attemptsValue = 0;

  constructor(private readonly policy: BackoffPolicy) {}

  /** Retries scheduled since the last reset. */
  get attempts(): number {
    return this.attemptsValue;
  }

  /** The delay before the next attempt (under `policy`, or another one sharing this count). */
  next(policy: BackoffPolicy = this.policy): number {
    const delay = backoffDelay(policy, this.attemptsValue);
    this.attemptsValue += 1;
    return delay;
  }

  /** Success: the next failure starts again from the first step. */
  reset(): void {
    this.attemptsValue = 0;
  }
}
