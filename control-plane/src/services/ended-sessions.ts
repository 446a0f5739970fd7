import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import { EndedSession } from '../db/entities.ts';
import { WriteBehind } from '../db/write-behind.ts';

/** An ended 2025-era session as the control plane keeps it. */
export interface EndedSessionRecord {
  readonly sessionId: string;
  readonly keyId: string;
  /** The node that received the DELETE. */
  readonly fromNodeId: string;
  /** When the id would have expired anyway (ms since the epoch): the row is pruned after it. */
  readonly expiresAt: number;
}

export interface EndedSessionStoreOptions {
  /** How often rows past their expiry are deleted. Default 10 minutes. */
  pruneIntervalMs?: number;
  /** First delay before a failed write is tried again; it doubles up to `maxRetryDelayMs`. Default 250 ms. */
  retryDelayMs?: number;
  /** Default 30 s. */
  maxRetryDelayMs?: number;
  /**
   * A node's hello reuses a read of the table this recent (many nodes reconnecting at once read it once). Default 1 s.
   */
  readFreshnessMs?: number;
  now?: () => number;
}

/** Rows written per INSERT. */
const WRITE_BATCH = 500;

/**
 * Persists ended sessions in `ended_sessions`, shared by every control-plane replica, so that a
 * restart of every replica together with every node that knew of them does not make ended ids
 * valid again.
 *
 * Writes are fire-and-forget for the caller (a DELETE never waits on the database): `record` queues,
 * a flush runs on the next turn of the event loop, and a failed flush (the database away) is retried
 * with backoff until it succeeds or the entries expire, so an outage of the database loses nothing
 * this process holds. What a crash of this process loses before the flush, the nodes re-announce when
 * they reconnect (they keep their own list until the ids expire).
 */
export class EndedSessionStore {
  private readonly writes: WriteBehind<string, EndedSessionRecord>;
  private readonly pruneTimer: NodeJS.Timeout;
  private read: { at: number; rows: Promise<EndedSessionRecord[]> } | undefined;
  private readonly now: () => number;

  private constructor(
    private readonly dataSource: DataSource,
    private readonly logger: Logger,
    private readonly options: Required<Omit<EndedSessionStoreOptions, 'now'>>,
    now: () => number,
  ) {
    this.now = now;
    this.writes = new WriteBehind({
      what: 'ended sessions',
      logger,
      write: async (batch) => {
        for (let start = 0; start < batch.length; start += WRITE_BATCH)
          await this.write(batch.slice(start, start + WRITE_BATCH));
      },
      keep: (entry) => entry.expiresAt > this.now(),
      retryDelayMs: options.retryDelayMs,
      maxRetryDelayMs: options.maxRetryDelayMs,
    });
    this.pruneTimer = setInterval(
      () =>
        void this.prune().catch((error: unknown) =>
          this.logger.warn({ err: errorMessage(error) }, 'could not prune expired ended sessions'),
        ),
      options.pruneIntervalMs,
    );
    this.pruneTimer.unref();
  }

  /** Prunes expired rows first, then prunes every `pruneIntervalMs`. */
  static async start(
    dataSource: DataSource,
    logger: Logger,
    options: EndedSessionStoreOptions = {},
  ): Promise<EndedSessionStore> {
    const store = new EndedSessionStore(
      dataSource,
      logger,
      {
        pruneIntervalMs: options.pruneIntervalMs ?? 10 * 60_000,
        retryDelayMs: options.retryDelayMs ?? 250,
        maxRetryDelayMs: options.maxRetryDelayMs ?? 30_000,
        readFreshnessMs: options.readFreshnessMs ?? 1_000,
      },
      options.now ?? Date.now,
    );
    await store.prune();
    return store;
  }

  /** Queues an ended session for writing; returns at once. */
  record(entry: EndedSessionRecord): void {
    this.writes.put(entry.sessionId, entry);
  }

  /** Entries not written yet (the database is away, or the write is under way). */
  get pendingCount(): number {
    return this.writes.pendingCount;
  }

  /** The ended sessions in the table that have not expired; concurrent and recent calls share one read. */
  live(): Promise<EndedSessionRecord[]> {
    const now = this.now();
    if (this.read !== undefined && now - this.read.at < this.options.readFreshnessMs) return this.read.rows;
    const rows = this.readLive();
    this.read = { at: now, rows };
    rows.catch(() => {
      if (this.read?.rows === rows) this.read = undefined;
    });
    return rows;
  }

  /** Deletes rows whose session expired anyway; returns how many. */
  async prune(): Promise<number> {
    const rows: Array<{ n: string }> = await this.dataSource.query(
      `WITH gone AS (DELETE FROM ended_sessions WHERE expires_at <= $1 RETURNING 1) SELECT count(*) AS n FROM gone`,
      [new Date(this.now())],
    );
    const pruned = Number(rows[0]?.n ?? 0);
    if (pruned > 0) this.logger.debug({ pruned }, 'pruned expired ended sessions');
    return pruned;
  }

  /**
   * Stops the timers after one last attempt to write what is pending (the nodes that know them re-announce the rest
   * when they reconnect).
   */
  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.writes.close();
  }

  private async readLive(): Promise<EndedSessionRecord[]> {
    const rows = await this.dataSource
      .getRepository(EndedSession)
      .createQueryBuilder('e')
      .where('e.expiresAt > :now', { now: new Date(this.now()) })
      .getMany();
    return rows.map((row) => ({
      sessionId: row.sessionId,
      keyId: row.keyId,
      fromNodeId: row.fromNodeId,
      expiresAt: row.expiresAt.getTime(),
    }));
  }

  private async write(batch: readonly EndedSessionRecord[]): Promise<void> {
    if (batch.length === 0) return;
    await this.dataSource.query(
      `INSERT INTO ended_sessions (session_sha256, session_id, key_id, from_node_id, expires_at)
       SELECT decode(e.sha, 'hex'), e.session_id, e.key_id, e.from_node_id, to_timestamp(e.expires_at / 1000.0)
       FROM jsonb_to_recordset($1::jsonb) AS e(sha text, session_id text, key_id text, from_node_id text,
         expires_at bigint)
       ON CONFLICT (session_sha256) DO NOTHING`,
      [
        JSON.stringify(
          batch.map((entry) => ({
            sha: sessionSha256(entry.sessionId),
            session_id: entry.sessionId,
            key_id: entry.keyId,
            from_node_id: entry.fromNodeId,
            expires_at: entry.expiresAt,
          })),
        ),
      ],
    );
  }
}

function sessionSha256(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('hex');
}
