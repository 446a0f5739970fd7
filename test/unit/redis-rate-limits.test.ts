import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createLogger } from '../../common/src/index.ts';
import { compileLimits, RateLimiter } from '../../data-plane/src/policy/rate-limits.ts';
import { RedisRateLimiter, redactedRedisUrl } from '../../data-plane/src/policy/redis-rate-limits.ts';
import { eventually } from '../support/eventually.ts';
import { OwnRedis, SHARED_REDIS_URL, deleteRedisKeys, uniqueRedisPrefix } from '../support/redis.ts';

const logger = createLogger({ level: 'silent' });
const NO_LIMIT = { requestsPerMinute: 0, toolCallsPerMinute: 0, burst: 0 };

/** A node's limiter on Redis, its local share computed for `liveNodes` nodes; closed after the test. */
async function nodeLimiter(url: string, keyPrefix: string, liveNodes = 2, commandTimeoutMs = 1000) {
  const local = new RateLimiter();
  local.setLiveNodes(liveNodes);
  const limiter = new RedisRateLimiter(local, { url, keyPrefix, commandTimeoutMs, probeIntervalMs: 50 }, logger);
  await limiter.start();
  after(() => limiter.close());
  return limiter;
}

describe('rate limits counted in Redis', () => {
  const prefixes: string[] = [];
  after(async () => {
    for (const prefix of prefixes) await deleteRedisKeys(SHARED_REDIS_URL, prefix);
  });
  function prefix(name: string): string {
    const made = uniqueRedisPrefix(name);
    prefixes.push(made);
    return made;
  }

  test('two nodes sharing a limit of 6 per minute admit exactly 6 of 40 concurrent calls', async () => {
    const keyPrefix = prefix('exact');
    const nodes = [await nodeLimiter(SHARED_REDIS_URL, keyPrefix), await nodeLimiter(SHARED_REDIS_URL, keyPrefix)];
    for (const node of nodes) assert.equal(node.backend, 'redis');
    const rules = compileLimits('key', 'k1', 'agent', { ...NO_LIMIT, toolCallsPerMinute: 6 });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => nodes[i % 2]!.take(rules, true)));
    const refusals = results.filter((r) => r !== undefined);
    assert.equal(results.length - refusals.length, 6, 'exactly the limit, though each node alone may take 3');
    for (const refusal of refusals) {
      assert.equal(refusal.rule.bucket, 'key:k1:toolCalls');
      assert.equal(refusal.sharePerMinute, 6, 'the whole limit, not a share');
      assert.ok(refusal.retryAfterMs > 0 && refusal.retryAfterMs <= 10_000, `${refusal.retryAfterMs} ms`);
    }
    // A requests-only operation does not touch a toolCalls limit.
    assert.equal(await nodes[0]!.take(rules, false), undefined);
  });

  test('all limits of a call or none: a refusal by the team spends nothing of the key', async () => {
    const keyPrefix = prefix('all-or-none');
    const node = await nodeLimiter(SHARED_REDIS_URL, keyPrefix, 1);
    const rules = [
      ...compileLimits('key', 'k2', 'agent', { ...NO_LIMIT, requestsPerMinute: 100 }),
      ...compileLimits('team', 't2', 'ops', { ...NO_LIMIT, requestsPerMinute: 1 }),
    ];
    assert.equal(await node.take(rules, false), undefined);
    const refusal = await node.take(rules, false);
    assert.equal(refusal?.rule.scope, 'team');
    const redis = new Redis(SHARED_REDIS_URL);
    after(() => redis.disconnect());
    const keyTokens = Number(await redis.hget(`${keyPrefix}key:k2:requests`, 't'));
    assert.ok(keyTokens > 98.9 && keyTokens < 100, `one token taken from the key's bucket, not two: ${keyTokens}`);
    assert.ok((await redis.pttl(`${keyPrefix}key:k2:requests`)) > 0, 'buckets expire');
  });

  test('a Redis that does not answer in time: the call is answered from the local share at once, and Redis is \
used again once it answers', async () => {
    await using redis = await OwnRedis.start();
    const node = await nodeLimiter(redis.url, uniqueRedisPrefix('slow'), 2, 100);
    assert.equal(node.backend, 'redis');
    const rules = compileLimits('key', 'k3', 'agent', { ...NO_LIMIT, requestsPerMinute: 4 });
    const admin = new Redis(redis.url);
    after(() => admin.disconnect());
    await admin.client('PAUSE', 1500, 'ALL');
    const started = performance.now();
    const first = await node.take(rules, false);
    const waited = performance.now() - started;
    assert.equal(first, undefined);
    assert.ok(waited < 600, `waited ${waited.toFixed(0)} ms for a Redis paused 1500 ms (timeout 100 ms)`);
    assert.equal(node.backend, 'local');
    assert.equal(node.fallbacks, 1);
    // Local share of 4 per minute on 2 nodes: one more token, then refused without asking Redis.
    assert.equal(node.take(rules, false), undefined);
    const refusal = node.take(rules, false);
    assert.ok(refusal !== undefined && !(refusal instanceof Promise));
    assert.equal(refusal.sharePerMinute, 2);
    await eventually('limits back on Redis', () => node.backend === 'redis', 10_000);
    assert.equal(await node.take(rules, false), undefined, 'the Redis bucket still holds tokens');
    assert.equal(node.fallbacks, 1, 'one fallback counted');
  });

  test('the Redis URL is shown without user or password', () => {
    assert.equal(redactedRedisUrl('redis://admin:s3cret@cache.internal:6380/2'), 'redis://cache.internal:6380/2');
    assert.equal(redactedRedisUrl('rediss://:s3cret@cache.internal'), 'rediss://cache.internal');
  });
});
