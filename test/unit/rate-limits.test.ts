import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rateLimited } from '../../data-plane/src/pipeline/steps/limits.ts';
import { compileLimits, RateLimiter } from '../../data-plane/src/policy/rate-limits.ts';

describe('rate limits: token buckets with a share per node', () => {
  it('admits the burst, then refuses until the bucket refills, naming the limit and when to retry', () => {
    const limiter = new RateLimiter();
    const rules = compileLimits('team', 't1', 'payments', { requestsPerMinute: 0, toolCallsPerMinute: 60, burst: 3 });
    for (let i = 0; i < 3; i++) assert.equal(limiter.take(rules, true, 0), undefined, `call ${i}`);
    const refusal = limiter.take(rules, true, 0);
    assert.ok(refusal);
    assert.equal(refusal.rule.scope, 'team');
    assert.equal(refusal.retryAfterMs, 1000, 'one token a second at 60 a minute');
    assert.ok(limiter.take(rules, true, 999), 'not yet a whole token');
    assert.equal(limiter.take(rules, true, 2000), undefined, 'refilled');
    assert.equal(limiter.take(rules, false, 2000), undefined, 'a tool-call limit does not count lists');
    const error = rateLimited(refusal);
    assert.equal(error.httpStatus, 429);
    assert.equal(error.retryAfterSeconds, 1);
    assert.match(error.message, /the team "payments" may make 60 tool calls per minute; retry after 1 s/);
  });

  it('each node enforces its share: the limit divided by the live nodes', () => {
    const rules = compileLimits('key', 'k', 'agent', { requestsPerMinute: 10, toolCallsPerMinute: 0, burst: 0 });
    const alone = new RateLimiter();
    const shared = new RateLimiter();
    shared.setLiveNodes(2);
    const admitted = (limiter: RateLimiter) => {
      let n = 0;
      while (limiter.take(rules, false, 0) === undefined) n++;
      return n;
    };
    assert.equal(admitted(alone), 10);
    assert.equal(admitted(shared), 5);
  });

  it('all limits that apply must have a token; a refused operation takes none', () => {
    const limiter = new RateLimiter();
    const key = compileLimits('key', 'k', 'agent', { requestsPerMinute: 100, toolCallsPerMinute: 0, burst: 0 });
    const customer = compileLimits('customer', 'c', 'acme', { requestsPerMinute: 1, toolCallsPerMinute: 0, burst: 0 });
    const rules = [...key, ...customer];
    assert.equal(limiter.take(rules, false, 0), undefined);
    assert.equal(limiter.take(rules, false, 0)?.rule.scope, 'customer');
    // The key's bucket lost only the admitted request: 99 more fit once the customer allows them.
    let n = 0;
    while (limiter.take(key, false, 0) === undefined) n++;
    assert.equal(n, 99);
  });
});
