import type { Client, McpSubscription } from '@modelcontextprotocol/client';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import { isModernProtocolVersion } from '../mcp/protocol.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';
import { RpcCode } from './upstream-errors.ts';

/** After a listen stream the upstream ended on its own, wait this long before listening again. */
const RELISTEN_DELAY_MS = 1_000;

/** Whether a connected client negotiated the stateless (2026-07-28+) era. */
export function isModernConnection(client: Client): boolean {
  const version = client.getNegotiatedProtocolVersion();
  return version !== undefined && isModernProtocolVersion(version);
}

/**
 * The resource URIs a node is subscribed to on one upstream, held in the upstream's era and kept
 * across reconnects. A 2025-era upstream is sent `resources/subscribe` per URI. A 2026-07-28
 * upstream has no such method: it is held one `subscriptions/listen` stream naming every
 * subscribed URI, replaced (the new one acknowledged before the old one closes) whenever the set
 * changes. Either way the upstream's `notifications/resources/updated` arrive on the shared client
 * and are routed to the agents holding the URI by the node's own subscription registry.
 */
export class UpstreamSubscriptions {
  private readonly uris = new Set<string>();
  private listening: McpSubscription | undefined;
  /** Listen changes run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private relistenTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly upstream: string,
    private readonly logger: Logger,
  ) {}

  /** URIs subscribed on this upstream. */
  get size(): number {
    return this.uris.size;
  }

  /** A 2026-07-28 upstream: subscribes by listening again with `uri` added; rejects when the upstream does not honour it. */
  listenFor(client: Client, uri: string): Promise<Record<string, unknown>> {
    return this.serialize(async () => {
      if (this.uris.has(uri)) return {};
      this.uris.add(uri);
      try {
        const honored = await this.relisten(client);
        if (!honored.includes(uri)) throw new UpstreamRpcError(RpcCode.INVALID_PARAMS, `upstream "${this.upstream}" does not offer change notifications for ${uri}`);
      } catch (error) {
        this.uris.delete(uri);
        throw error;
      }
      return {};
    });
  }

  /** A 2026-07-28 upstream: unsubscribes by listening again without `uri` (or closing the stream when none is left). */
  stopListeningFor(client: Client, uri: string): Promise<Record<string, unknown>> {
    return this.serialize(async () => {
      if (!this.uris.delete(uri)) return {};
      await this.relisten(client);
      return {};
    });
  }

  /** A 2025-era upstream accepted `resources/subscribe` (or `unsubscribe`) for `uri`: remember it for reconnects. */
  record(method: 'resources/subscribe' | 'resources/unsubscribe', uri: string): void {
    if (method === 'resources/subscribe') this.uris.add(uri);
    else this.uris.delete(uri);
  }

  /**
   * A new connection to the upstream is up: the old one's subscriptions died with it, so they are
   * made again on the new one, in its era. Failures are logged; agents keep their subscriptions.
   */
  restore(client: Client, modern: boolean): void {
    if (this.uris.size === 0) return;
    this.listening = undefined;
    if (modern) {
      void this.serialize(() => this.relisten(client)).catch((error: unknown) => this.logger.warn({ err: error }, 'could not listen again for resource updates after reconnecting'));
      return;
    }
    for (const uri of this.uris) {
      client.subscribeResource({ uri }).catch((error: unknown) => this.logger.warn({ err: error, uri }, 'could not subscribe again after reconnecting'));
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

  /** Opens a listen stream for the current URIs, then closes the previous one. Resolves with the URIs the upstream honoured. */
  private async relisten(client: Client): Promise<readonly string[]> {
    const previous = this.listening;
    if (this.uris.size === 0 || this.closed) {
      this.listening = undefined;
      await previous?.close().catch(() => undefined);
      return [];
    }
    const next = await client.listen({ resourceSubscriptions: [...this.uris] });
    this.listening = next;
    void next.closed.then((cause) => this.onListenClosed(client, next, cause));
    await previous?.close().catch(() => undefined);
    return next.honoredFilter.resourceSubscriptions ?? [];
  }

  /** The upstream ended the current stream (not a replacement by us): listen again shortly, on the same client. */
  private onListenClosed(client: Client, subscription: McpSubscription, cause: 'local' | 'graceful' | 'remote'): void {
    if (cause === 'local' || this.listening !== subscription || this.closed) return;
    this.listening = undefined;
    clearTimeout(this.relistenTimer);
    this.relistenTimer = setTimeout(() => {
      if (this.listening !== undefined || this.closed || client.transport === undefined) return;
      void this.serialize(() => this.relisten(client)).catch((error: unknown) => this.logger.warn({ error: errorMessage(error) }, 'could not listen again for resource updates'));
    }, RELISTEN_DELAY_MS);
    this.relistenTimer.unref();
  }
}
