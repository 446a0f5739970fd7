import { z } from 'zod';
import type { DataPlaneOptions } from '../../../data-plane/src/index.ts';
import {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_KEY_PREFIX,
} from '../../../data-plane/src/policy/redis-rate-limits.ts';
import type { OptionTable, ParsedOptions } from '../options.ts';

/** Exact global rate limits in Redis instead of each node's share (off by default). */
export const rateLimitSettings = {
  rateLimitRedis: {
    flag: 'rate-limit-redis',
    env: 'PORTCULLIS_RATE_LIMIT_REDIS_URL',
    description:
      'exact global rate limits: count every limit in one token bucket in this Redis (redis://[user:password@]' +
      'host:port[/db], rediss:// for TLS), shared by all nodes using it; while Redis does not answer within ' +
      '--rate-limit-redis-timeout-ms the node enforces its local share and returns to Redis once it answers. ' +
      'Give a URL with a password through the environment variable (a command line shows in ps); never logged',
    schema: z
      .string()
      .trim()
      .refine((v) => {
        try {
          const url = new URL(v);
          return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
        } catch {
          return false;
        }
      }, 'must be a Redis URL, redis://host:port or rediss://host:port (optionally with user:password@ and /db)')
      .optional(),
    defaultLabel: 'off (each node enforces its share of every limit)',
  },
  rateLimitRedisPrefix: {
    flag: 'rate-limit-redis-prefix',
    env: 'PORTCULLIS_RATE_LIMIT_REDIS_PREFIX',
    description: 'prefix of the rate-limit keys in Redis; nodes that share limits must use the same one',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9:._{}-]{1,100}$/, 'must be 1-100 letters, digits or ":._{}-"')
      .default(DEFAULT_REDIS_KEY_PREFIX),
    defaultLabel: DEFAULT_REDIS_KEY_PREFIX,
  },
  rateLimitRedisTimeoutMs: {
    flag: 'rate-limit-redis-timeout-ms',
    env: 'PORTCULLIS_RATE_LIMIT_REDIS_TIMEOUT_MS',
    description:
      'how long a call waits for Redis to count it; past that (or at once while Redis is unreachable) the call is ' +
      "counted against this node's local share",
    schema: z.coerce
      .number({ error: 'must be a number of milliseconds' })
      .int('must be a whole number of milliseconds')
      .min(1, 'must be at least 1')
      .max(10_000, 'must be at most 10000')
      .default(DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    defaultLabel: String(DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
  },
} satisfies OptionTable;

export function rateLimitOptions(
  settings: ParsedOptions<typeof rateLimitSettings>,
): Pick<DataPlaneOptions, 'rateLimitRedis'> {
  if (settings.rateLimitRedis === undefined) return {};
  return {
    rateLimitRedis: {
      url: settings.rateLimitRedis,
      keyPrefix: settings.rateLimitRedisPrefix,
      commandTimeoutMs: settings.rateLimitRedisTimeoutMs,
    },
  };
}
