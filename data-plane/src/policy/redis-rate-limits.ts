import { Redis } from 'ioredis';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { LimitRule, RateLimitGate, RateLimiter, RateRefusal } from './rate-limits.ts';

/** Where a node's rate limits are counted: in Redis (exact, global) or in its own buckets (its share). */
export type RateLimitBackend = 'redis' | 'local';

export interface RedisRateLimitOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). May carry a password: never logged. */
  readonly url: string;
  /** Prefix of every bucket key (default `portcullis:ratelimit:`); nodes sharing limits use the same one. */
  readonly keyPrefix?: string;
  /** How long a call waits for Redis before it is answered from the local share instead (default 50 ms). */
  readonly commandTimeoutMs?: number;
  /** While on local shares, how often Redis is asked whether it answers again (default 1000 ms). */
  readonly probeIntervalMs?: number;
}

export const DEFAULT_REDIS_KEY_PREFIX = 'portcullis:ratelimit:';
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 50;
const DEFAULT_PROBE_INTERVAL_MS = 1000;
/** How long startup waits for the first connection before serving from local shares. */
const FIRST_CONNECT_WAIT_MS = 2000;

/**
 * One token bucket per key in a hash (`t` tokens, `at` ms of the last refill, Redis's own clock so
 * every node agrees), all buckets of a call taken together or none. ARGV holds per-minute rate and
 * burst per key. Returns {0, 0} when admitted, else {index of the first empty bucket (1-based), ms
 * until it holds a token}. A bucket expires once it would be full again anyway.
 */
const TAKE_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local have = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1]) / 60000
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 't', 'at')
  local tokens = tonumber(state[1])
  local at = tonumber(state[2])
  if tokens == nil or at == nil then
    tokens = burst
  else
    tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  end
  if tokens < 1 then
    return {i, math.ceil((1 - tokens) / rate)}
  end
  have[i] = tokens
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1]) / 60000
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 't', tostring(have[i] - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate) + 1000)
end
return {0, 0}
`;

interface ScriptedRedis extends Redis {
  portcullisTakeTokens(...args: Array<string | number>): Promise<[number, number]>;
}

/** `redis://host:port/db` without user or password, for logs. */
export function redactedRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return '(unparseable Redis URL)';
  }
}

/**
 * Exact global rate limits: every node of a gateway counts each limit in one token bucket in Redis
 * (an atomic Lua script per call), so the nodes together admit exactly the limit, however traffic is
 * spread over them. The request path never waits long for it: a call that Redis does not answer
 * within the command timeout (or any call while Redis is unreachable) is answered from this node's
 * local share (`RateLimiter`, the limit divided by the live nodes) at once; the switch is logged
 * once, shown by `backend` (and the metric `portcullis_rate_limit_backend`), and undone as soon as
 * Redis answers a probe again.
 */
export class RedisRateLimiter implements RateLimitGate {
  private readonly redis: ScriptedRedis;
  private readonly prefix: string;
  private readonly where: string;
  private current: RateLimitBackend = 'local';
  private probing: NodeJS.Timeout | undefined;
  private probeInFlight = false;
  private closed = false;
  /** Times the node fell back to local shares. */
  fallbacks = 0;

  constructor(
    private readonly local: RateLimiter,
    options: RedisRateLimitOptions,
    private readonly logger: Logger,
  ) {
    this.prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    this.where = redactedRedisUrl(options.url);
    const timeout = options.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
    const redis = new Redis(options.url, {
      lazyConnect: true,
      // Nothing queues while Redis is away: a call is answered from the local share instead.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeout,
      connectTimeout: Math.max(1000, timeout * 4),
      retryStrategy: (attempt) => Math.min(100 * attempt, 1000),
      enableAutoPipelining: true,
    });
    redis.defineCommand('portcullisTakeTokens', { lua: TAKE_SCRIPT });
    // ioredis reports every failed reconnect as an error event; the backend switch logs it once.
    redis.on('error', (error: Error) => this.logger.debug({ redis: this.where, err: error.message }, 'redis error'));
    redis.on('ready', () => this.probe());
    this.redis = redis as ScriptedRedis;
    this.startProbing(options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS);
  }

  /** Connects (waiting at most a moment): the node starts on Redis when it answers, else on local shares. */
  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const wait = new Promise<Error>((resolve) => {
      timer = setTimeout(
        () => resolve(new Error(`no answer within ${FIRST_CONNECT_WAIT_MS} ms`)),
        FIRST_CONNECT_WAIT_MS,
      );
    });
    const connected = (async () => {
      await this.redis.connect();
      await this.redis.ping();
      this.onRedis();
    })().then(
      () => undefined,
      (error: unknown) => error,
    );
    const failure = await Promise.race([connected, wait]);
    clearTimeout(timer);
    if (this.current === 'local') this.fellBack(failure ?? new Error('no answer'));
  }

  get backend(): RateLimitBackend {
    return this.current;
  }

  take(rules: readonly LimitRule[], toolCall: boolean): RateRefusal | undefined | Promise<RateRefusal | undefined> {
    if (this.current === 'local') return this.local.take(rules, toolCall);
    const applying = toolCall ? rules : rules.filter((rule) => rule.kind !== 'toolCalls');
    if (applying.length === 0) return undefined;
    const args: Array<string | number> = [applying.length];
    for (const rule of applying) args.push(this.prefix + rule.bucket);
    for (const rule of applying) args.push(rule.perMinute, rule.burst);
    return this.redis.portcullisTakeTokens(...args).then(
      ([index, retryAfterMs]) => {
        const rule = index > 0 ? applying[index - 1] : undefined;
        return rule === undefined ? undefined : { rule, sharePerMinute: rule.perMinute, retryAfterMs };
      },
      (error: unknown) => {
        this.fellBack(error);
        return this.local.take(rules, toolCall);
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probing);
    this.redis.disconnect();
  }

  private fellBack(error: unknown): void {
    if (this.current === 'local' && this.fallbacks > 0) return;
    this.current = 'local';
    this.fallbacks += 1;
    this.logger.warn(
      { redis: this.where, err: errorMessage(error) },
      'rate limits fall back to local shares (each node its share of every limit): Redis does not answer',
    );
  }

  private onRedis(): void {
    if (this.current === 'redis') return;
    this.current = 'redis';
    this.logger.info({ redis: this.where }, 'rate limits are counted in Redis (exact across nodes)');
  }

  private startProbing(intervalMs: number): void {
    this.probing = setInterval(() => this.probe(), intervalMs);
    this.probing.unref();
  }

  /** While on local shares: one PING; an answer within the timeout puts the limits back on Redis. */
  private probe(): void {
    if (this.closed || this.current === 'redis' || this.probeInFlight || this.redis.status !== 'ready') return;
    this.probeInFlight = true;
    this.redis.ping().then(
      () => {
        this.probeInFlight = false;
        if (!this.closed) this.onRedis();
      },
      () => {
        this.probeInFlight = false;
      },
    );
  }
}
