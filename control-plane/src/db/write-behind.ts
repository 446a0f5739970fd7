import { Backoff, errorMessage, type Logger } from '../../../common/src/index.ts';

export interface WriteBehindOptions<V> {
  /** What is written, for the logs ("ended sessions", "node answers"). */
  what: string;
  logger: Logger;
  /** Writes a batch; a rejection keeps the whole batch for the next attempt. */
  write(batch: V[]): Promise<void>;
  /** Combines a value waiting for a key with a newer one (default: the newer replaces it). */
  fold?(older: V, newer: V): V;
  /** Values failing this at write time are dropped (say, expired ones). */
  keep?(value: V): boolean;
  /** How long the first value of a burst waits for the others (default 0: the next turn). */
  windowMs?: number;
  /** First delay before a failed write is tried again; it doubles up to `maxRetryDelayMs`. Default 250 ms. */
  retryDelayMs?: number;
  /** Default 30 s. */
  maxRetryDelayMs?: number;
}

/**
 * Writes that can wait: `put` returns at once, values for the same key fold into one, and what
 * waits is written in batches. A failed write (the database away) is tried again with backoff
 * until it succeeds, so an outage delays these writes and loses none of them while this process
 * runs; whoever called `put` (a node's stream, say) carries on meanwhile.
 */
export class WriteBehind<K, V> {
  private pending = new Map<K, V>();
  /** What the write under way carries. */
  private inFlight = new Map<K, V>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<boolean> | undefined;
  private readonly retryBackoff: Backoff;
  private waitBeforeRetry = 0;
  private failing = false;
  private closed = false;
  private readonly fold: (older: V, newer: V) => V;

  constructor(private readonly options: WriteBehindOptions<V>) {
    this.retryBackoff = new Backoff({ baseMs: options.retryDelayMs ?? 250, maxMs: options.maxRetryDelayMs ?? 30_000 });
    this.fold = options.fold ?? ((_older, newer) => newer);
  }

  /** Queues `value` for `key`; returns at once. */
  put(key: K, value: V): void {
    if (this.closed) return;
    const older = this.pending.get(key);
    this.pending.set(key, older === undefined ? value : this.fold(older, value));
    if (!this.failing) this.schedule(this.options.windowMs ?? 0);
  }

  /** Keys with a value not written yet (the database is away, or a write is under way). */
  get pendingCount(): number {
    let count = this.pending.size;
    for (const key of this.inFlight.keys()) if (!this.pending.has(key)) count++;
    return count;
  }

  /** Whether a value for `key` is not written yet (waiting, or in the write under way). */
  has(key: K): boolean {
    return this.pending.has(key) || this.inFlight.has(key);
  }

  /** Writes what waits now (without the window); resolves when it is written or a write failed. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (;;) {
      if (this.writing) {
        if (!(await this.writing)) return;
      } else if (this.pending.size > 0) {
        if (!(await this.start())) return;
      } else {
        return;
      }
    }
  }

  /** One last attempt at what waits; nothing is queued or retried afterwards. */
  async close(): Promise<void> {
    this.failing = false;
    await this.flush();
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size > 0)
      this.options.logger.warn({ count: this.pending.size }, `${this.options.what} not written at shutdown`);
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.timer !== undefined || this.writing !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.start();
    }, delayMs);
    // Waiting writes never keep a process alive; shutdown flushes them.
    this.timer.unref();
  }

  private start(): Promise<boolean> {
    this.writing = this.writeNow().then((written) => {
      this.writing = undefined;
      if (this.pending.size > 0) this.schedule(written ? (this.options.windowMs ?? 0) : this.waitBeforeRetry);
      return written;
    });
    return this.writing;
  }

  /** True when the batch was written. */
  private async writeNow(): Promise<boolean> {
    try {
      return await this.writeTaken();
    } finally {
      this.inFlight = new Map();
    }
  }

  private async writeTaken(): Promise<boolean> {
    const taken = this.pending;
    this.pending = new Map();
    this.inFlight = taken;
    const keep = this.options.keep;
    const batch = [...taken.values()].filter((value) => keep === undefined || keep(value));
    try {
      if (batch.length > 0) await this.options.write(batch);
    } catch (error) {
      // Keep what failed under what came meanwhile (newer values fold over it), and try again later.
      for (const [key, value] of taken) {
        const newer = this.pending.get(key);
        this.pending.set(key, newer === undefined ? value : this.fold(value, newer));
      }
      if (!this.failing)
        this.options.logger.warn(
          { err: errorMessage(error), count: this.pending.size },
          `could not write ${this.options.what}; retrying in the background`,
        );
      this.failing = true;
      this.waitBeforeRetry = this.retryBackoff.next();
      return false;
    }
    if (this.failing)
      this.options.logger.info({ count: batch.length }, `${this.options.what} written after the database came back`);
    this.failing = false;
    this.retryBackoff.reset();
    return true;
  }
}
