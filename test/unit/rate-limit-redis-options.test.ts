import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dataPlaneOptions, dataPlaneSettings } from '../../cli/src/commands/settings.ts';
import { dataPlaneHelp } from '../../cli/src/commands/data-plane.ts';
import { readOptions } from '../../cli/src/options.ts';
import { createLogger } from '../../common/src/index.ts';

const connection = { controlPlaneAddress: '127.0.0.1:4001', nodeToken: 'x'.repeat(16) };
const logger = createLogger({ level: 'silent' });

test('--rate-limit-redis (or its variable) with prefix and timeout reach the node; off by default', () => {
  const off = dataPlaneOptions(readOptions(dataPlaneSettings, [], {}), connection, logger);
  assert.equal(off.rateLimitRedis, undefined, 'local shares unless a Redis is named');
  const set = dataPlaneOptions(
    readOptions(
      dataPlaneSettings,
      [
        '--rate-limit-redis',
        'redis://cache:6380/1',
        '--rate-limit-redis-prefix',
        'gw1:',
        '--rate-limit-redis-timeout-ms',
        '20',
      ],
      {},
    ),
    connection,
    logger,
  );
  assert.deepEqual(set.rateLimitRedis, { url: 'redis://cache:6380/1', keyPrefix: 'gw1:', commandTimeoutMs: 20 });
  const fromEnv = dataPlaneOptions(
    readOptions(dataPlaneSettings, [], { PORTCULLIS_RATE_LIMIT_REDIS_URL: 'rediss://:pw@cache:6379' }),
    connection,
    logger,
  );
  assert.deepEqual(fromEnv.rateLimitRedis, {
    url: 'rediss://:pw@cache:6379',
    keyPrefix: 'portcullis:ratelimit:',
    commandTimeoutMs: 50,
  });
});

test('a bad Redis URL, prefix or timeout is refused naming the flag or variable', () => {
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--rate-limit-redis', 'http://cache:6379'], {}),
    /--rate-limit-redis: must be a Redis URL/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, [], { PORTCULLIS_RATE_LIMIT_REDIS_URL: 'cache:6379' }),
    /PORTCULLIS_RATE_LIMIT_REDIS_URL: must be a Redis URL/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--rate-limit-redis-timeout-ms', '0'], {}),
    /--rate-limit-redis-timeout-ms: must be at least 1/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--rate-limit-redis-prefix', 'a b'], {}),
    /--rate-limit-redis-prefix: must be 1-100/,
  );
});

test('--help of data-plane lists the Redis rate-limit settings with their variables', () => {
  for (const text of [
    '--rate-limit-redis <value>',
    'PORTCULLIS_RATE_LIMIT_REDIS_URL',
    'PORTCULLIS_RATE_LIMIT_REDIS_PREFIX',
  ])
    assert.ok(dataPlaneHelp.includes(text), text);
});
