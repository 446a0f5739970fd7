import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RunningProcess, freePort } from './processes.ts';

/** The machine's Redis, shared by tests: each test keeps to its own key prefix (`uniqueRedisPrefix`). */
export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

/** A key prefix no other test (or run) uses. */
export function uniqueRedisPrefix(test: string): string {
  return `portcullis-test:${test}:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under `prefix` in the Redis at `url`, and returns how many there were. */
export async function deleteRedisKeys(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    return keys.length;
  } finally {
    redis.disconnect();
  }
}

/** Keys under `prefix` in the Redis at `url`. */
export async function redisKeys(url: string, prefix: string): Promise<string[]> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return await redis.keys(`${prefix}*`);
  } finally {
    redis.disconnect();
  }
}

/**
 * A `redis-server` of the test's own (no persistence) on a free port, for outage tests: `kill` it like a crash,
 * `start` it again on the same port. Disposing kills it.
 */
export class OwnRedis implements AsyncDisposable {
  private process: RunningProcess | undefined;

  private constructor(
    readonly port: number,
    readonly password: string | undefined,
  ) {}

  /** With `password`, the server requires it (`requirepass`) and `url` carries it. */
  static async start(password?: string): Promise<OwnRedis> {
    const redis = new OwnRedis(await freePort(), password);
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://${this.password === undefined ? '' : `:${this.password}@`}127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.process = new RunningProcess(`redis-server:${this.port}`, 'redis-server', [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...(this.password === undefined ? [] : ['--requirepass', this.password]),
    ]);
    await this.process.waitFor(/Ready to accept connections/, 15_000);
  }

  async kill(): Promise<void> {
    await this.process?.kill();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
