import type { Client, McpSubscription } from '@modelcontextprotocol/client';
import { Backoff, PortcullisError, errorMessage, type Logger } from '../../../common/src/index.ts';
import { isModernProtocolVersion } from '../mcp/protocol.ts';
import { RpcCode, UpstreamErrorCode } from './upstream-errors.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';

/** After a listen stream the upstream ended, or one that failed: listen again after about 1 s, backing off to 30 s. */
const RELISTEN_BACKOFF = { baseMs: 1_000, maxMs: 30_000 };

/** The list-change notifications a 2026-07-28 upstream is asked for on the node's listen stream. */
export interface ListChangedFilter {
  toolsListChanged?: true;
  promptsListChanged?: true;
  resourcesListChanged?: true;
}

/** Whether a connected client negotiated the stateless (2026-07-28+) era. */
export function isModernConnection(client: Client): boolean {
  const version = client.getNegotiatedProtocolVersion();
  return version !== undefined && isModernProtocolVersion(version);
}

/** The list changes an upstream's capabilities say it announces. */
export function listChangedFilter(capabilities: Readonly<Record<string, unknown>> | undefined): ListChangedFilter {
  const announces = (kind: string) =>
    (capabilities?.[kind] as { listChanged?: unknown } | undefined)?.listChanged === true;
  return {
    ...(announces('tools') ? { toolsListChanged: true } : {}),
    ...(announces('prompts') ? { promptsListChanged: true } : {}),
    ...(announces('resources') ? { resourcesListChanged: true } : {}),
  };
}

/**
 * The resource URIs a node is subscribed to on one upstream, held in the upstream's era and kept
 * across reconnects. A 2025-era upstream is sent `resources/subscribe` per URI. A 2026-07-28
 * upstream has no such method: it is held one `subscriptions/listen` stream naming the list
 * changes it announces and every subscribed URI, replaced (the new one acknowledged before the old
 * one closes) whenever the set changes. Either way the upstream's notifications arrive on the
 * shared client: list changes refresh its catalogs, `notifications/resources/updated` is routed
 * to the agents holding the URI by the node's own subscription registry.
 *
 * No listen holds anyone past their own time: an agent's subscribe waits at most its call timeout
 * (also when an earlier change is still waiting for the upstream), and a new connection waits for
 * its first acknowledgement only briefly (`attach`).
 */
export class UpstreamSubscriptions {
  private readonly uris = new Set<string>();
  private listChanged: ListChangedFilter = {};
  private listening: McpSubscription | undefined;
  /** Listen changes run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private relistenTimer: NodeJS.Timeout | undefined;
  private readonly relistenBackoff = new Backoff(RELISTEN_BACKOFF);
  private closed = false;

  constructor(
    private readonly upstream: string,
    private readonly logger: Logger,
    /** How long a listen may wait for its acknowledgement (the upstream's call timeout). */
    private readonly ackTimeoutMs: () => number,
  ) {}

  /** URIs subscribed on this upstream. */
  get size(): number {
    return this.uris.size;
  }

  /**
   * A new 2026-07-28 connection: listens on it for `listChanged` and the URIs subscribed so far
   * (the old connection's stream died with it). Resolves when the upstream acknowledged, or after
   * `waitMs` with the listen still going on: an upstream slow to acknowledge serves meanwhile.
   */
  async attach(client: Client, listChanged: ListChangedFilter, waitMs: number): Promise<void> {
    this.listChanged = listChanged;
    this.listening = undefined;
    const listen = this.serialize(() => this.relisten(client));
    listen.catch((error: unknown) => {
      this.logger.warn({ err: errorMessage(error) }, 'could not listen for changes; trying again');
      this.relistenSoon(client);
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn({ waitMs }, 'the upstream has not acknowledged subscriptions/listen yet; serving meanwhile');
        resolve();
      }, waitMs);
    });
    await Promise.race([
      listen.then(
        () => undefined,
        () => undefined,
      ),
      waited,
    ]);
    clearTimeout(timer);
  }

  /** A 2026-07-28 upstream: subscribes by listening again with `uri` added; rejects when it is not honoured. */
  listenFor(client: Client, uri: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const change = this.serialize(async () => {
      if (this.uris.has(uri)) return {};
      this.uris.add(uri);
      try {
        const honored = await this.relisten(client, timeoutMs);
        if (!honored.includes(uri))
          throw new UpstreamRpcError(
            RpcCode.INVALID_PARAMS,
            `upstream "${this.upstream}" does not offer change notifications for ${uri}`,
          );
      } catch (error) {
        this.uris.delete(uri);
        throw error;
      }
      return {};
    });
    return this.within(change, timeoutMs);
  }

  /** A 2026-07-28 upstream: unsubscribes by listening again without `uri` (closing the stream when nothing is left). */
  stopListeningFor(client: Client, uri: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const change = this.serialize(async () => {
      if (!this.uris.delete(uri)) return {};
      await this.relisten(client, timeoutMs);
      return {};
    });
    return this.within(change, timeoutMs);
  }

  /** A 2025-era upstream accepted `resources/subscribe` (or `unsubscribe`) for `uri`: remember it for reconnects. */
  record(method: 'resources/subscribe' | 'resources/unsubscribe', uri: string): void {
    if (method === 'resources/subscribe') this.uris.add(uri);
    else this.uris.delete(uri);
  }

  /**
   * A new 2025-era connection to the upstream is up: the old one's subscriptions died with it, so
   * they are made again. Failures are logged; agents keep their subscriptions.
   */
  restore(client: Client): void {
    this.listening = undefined;
    for (const uri of this.uris) {
      client
        .subscribeResource({ uri })
        .catch((error: unknown) =>
          this.logger.warn({ err: error, uri }, 'could not subscribe again after reconnecting'),
        );
    }
  }

  /** The connection is closing for good. */
  close(): void {
    this.closed = true;
    clearTimeout(this.relistenTimer);
    const listening = this.listening;
    this.listening = undefined;
    void listening?.close().catch(() => undefined);
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The caller's wait for a queued change, bounded by its own timeout (the change itself goes on). */
  private within<T>(change: Promise<T>, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const message = `upstream "${this.upstream}" did not answer subscriptions/listen within ${timeoutMs} ms`;
        reject(new PortcullisError(UpstreamErrorCode.TIMEOUT, message, { upstream: this.upstream }));
      }, timeoutMs);
    });
    return Promise.race([change, timedOut]).finally(() => clearTimeout(timer));
  }

  /** Opens a listen stream for the current filter, then closes the previous one; resolves with the URIs honoured. */
  private async relisten(client: Client, timeoutMs = this.ackTimeoutMs()): Promise<readonly string[]> {
    const previous = this.listening;
    const filter = { ...this.listChanged, ...(this.uris.size > 0 ? { resourceSubscriptions: [...this.uris] } : {}) };
    if (Object.keys(filter).length === 0 || this.closed) {
      this.listening = undefined;
      await previous?.close().catch(() => undefined);
      return [];
    }
    const next = await client.listen(filter, { timeout: timeoutMs });
    this.listening = next;
    this.relistenBackoff.reset();
    void next.closed.then((cause) => this.onListenClosed(client, next, cause));
    await previous?.close().catch(() => undefined);
    return next.honoredFilter.resourceSubscriptions ?? [];
  }

  /** The upstream ended the current stream (not a replacement by us): listen again shortly, on the same client. */
  private onListenClosed(client: Client, subscription: McpSubscription, cause: 'local' | 'graceful' | 'remote'): void {
    if (cause === 'local' || this.listening !== subscription || this.closed) return;
    this.listening = undefined;
    this.relistenSoon(client);
  }

  private relistenSoon(client: Client): void {
    clearTimeout(this.relistenTimer);
    this.relistenTimer = setTimeout(() => {
      if (this.listening !== undefined || this.closed || client.transport === undefined) return;
      void this.serialize(() => this.relisten(client)).catch((error: unknown) => {
        this.logger.warn({ err: errorMessage(error) }, 'could not listen again for changes');
        this.relistenSoon(client);
      });
    }, this.relistenBackoff.next());
    this.relistenTimer.unref();
  }
}
