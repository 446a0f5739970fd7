import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { UpstreamRouter } from '../upstream/upstream-router.ts';
import { LOGGING_LEVELS } from './protocol.ts';

/**
 * Resource subscriptions held on this node, ref-counted per URI: the owning upstream is sent
 * `resources/subscribe` when the first holder subscribes and `resources/unsubscribe` when the last
 * one lets go. A holder is a 2025-era session id (delivery on that session's GET or SSE stream on
 * this node) or a 2026-07-28 `subscriptions/listen` stream.
 */
export class ResourceSubscriptions {
  private readonly byUri = new Map<string, { readonly upstream: string; readonly holders: Set<string> }>();
  private readonly byHolder = new Map<string, Set<string>>();

  constructor(
    private readonly router: UpstreamRouter,
    private readonly logger: Logger,
    /** Most URIs one holder may subscribe to. */
    private readonly maxPerHolder = 1000,
  ) {}

  /** Subscribes `holder` to `uri` on `upstream`; rejects as the upstream's subscribe did (the first time). */
  async subscribe(holder: string, uri: string, upstream: string, meta?: Record<string, unknown>): Promise<void> {
    let uris = this.byHolder.get(holder);
    if (uris?.has(uri)) return;
    if (uris !== undefined && uris.size >= this.maxPerHolder)
      throw new RangeError(`at most ${this.maxPerHolder} resource subscriptions per session`);
    let entry = this.byUri.get(uri);
    if (entry === undefined) {
      await this.router.request(upstream, {
        method: 'resources/subscribe',
        params: meta === undefined ? { uri } : { uri, _meta: meta },
      });
      entry = this.byUri.get(uri);
      if (entry === undefined) this.byUri.set(uri, (entry = { upstream, holders: new Set() }));
    }
    entry.holders.add(holder);
    if (uris === undefined) this.byHolder.set(holder, (uris = new Set()));
    uris.add(uri);
  }

  /** Drops one subscription; the upstream is told when nobody on this node holds the URI any more. */
  unsubscribe(holder: string, uri: string): void {
    const uris = this.byHolder.get(holder);
    if (uris === undefined || !uris.delete(uri)) return;
    if (uris.size === 0) this.byHolder.delete(holder);
    this.release(holder, uri);
  }

  /** Drops every subscription of a holder (its session ended or its listen stream closed). */
  forget(holder: string): void {
    const uris = this.byHolder.get(holder);
    if (uris === undefined) return;
    this.byHolder.delete(holder);
    for (const uri of uris) this.release(holder, uri);
  }

  /** Who on this node is subscribed to `uri` (on `upstream`). */
  holdersOf(upstream: string, uri: string): ReadonlySet<string> | undefined {
    const entry = this.byUri.get(uri);
    return entry !== undefined && entry.upstream === upstream ? entry.holders : undefined;
  }

  get size(): number {
    return this.byUri.size;
  }

  private release(holder: string, uri: string): void {
    const entry = this.byUri.get(uri);
    if (entry === undefined) return;
    entry.holders.delete(holder);
    if (entry.holders.size > 0) return;
    this.byUri.delete(uri);
    this.router
      .request(entry.upstream, { method: 'resources/unsubscribe', params: { uri } })
      .catch((error: unknown) =>
        this.logger.debug({ err: error, upstream: entry.upstream }, 'resources/unsubscribe failed'),
      );
  }
}

/**
 * The log level each 2025-era session asked for with `logging/setLevel`, kept on the node that
 * received it (bounded; the oldest entries go first). The level is not relayed upstream:
 * upstream connections are shared by every agent, so one agent's level must not change what
 * another receives. Upstream `notifications/message` are filtered per session instead.
 */
export class LogLevels {
  private readonly levels: LRUCache<string, number>;

  constructor(max = 10_000) {
    this.levels = new LRUCache({ max });
  }

  set(sessionId: string, level: string): boolean {
    const rank = LOGGING_LEVELS.indexOf(level);
    if (rank === -1) return false;
    this.levels.set(sessionId, rank);
    return true;
  }

  /** Whether a message at `level` goes to the session (unknown levels pass; no level set: `unset`). */
  allows(sessionId: string | undefined, level: unknown, unset: boolean): boolean {
    const wanted = sessionId === undefined ? undefined : this.levels.get(sessionId);
    if (wanted === undefined) return unset;
    const rank = typeof level === 'string' ? LOGGING_LEVELS.indexOf(level) : -1;
    return rank === -1 || rank >= wanted;
  }

  has(sessionId: string): boolean {
    return this.levels.has(sessionId);
  }

  forget(sessionId: string): void {
    this.levels.delete(sessionId);
  }
}
