import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { LogLevels, ResourceSubscriptions } from '../mcp/agent-state.ts';
import type { CatalogViews } from '../mcp/catalog-views.ts';
import { isPlainObject, type RpcId } from '../mcp/json-rpc.ts';
import { SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from '../mcp/protocol.ts';
import type { AllowList } from '../policy/allow-list.ts';
import type { Principal } from '../policy/principal.ts';
import type { CatalogKind, RpcMessage } from '../upstream/upstream-router.ts';
import type { ResumableStream } from './event-store.ts';
import { SSE_HEADERS, notificationJson, sseEvent } from './response-channel.ts';

/** Same interval as the SDK's SSE keep-alive comments. */
export const DEFAULT_SSE_KEEP_ALIVE_MS = 15_000;

const KEEP_ALIVE = ': keep-alive\n\n';

const KINDS: readonly CatalogKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates'];

const LIST_CHANGED_METHOD: Readonly<Record<CatalogKind, string>> = {
  tools: 'notifications/tools/list_changed',
  prompts: 'notifications/prompts/list_changed',
  resources: 'notifications/resources/list_changed',
  resourceTemplates: 'notifications/resources/list_changed',
};

/** Which change notifications a stream takes (2025-era streams take them all; listen streams what was honored). */
export interface StreamFilter {
  readonly tools: boolean;
  readonly prompts: boolean;
  readonly resources: boolean;
}

const ALL: StreamFilter = Object.freeze({ tools: true, prompts: true, resources: true });

export interface OpenStreamOptions {
  /**
   * The presented secret, to re-authenticate the stream against a new snapshot. Never logged.
   * Undefined for an anonymous-access stream: it is re-checked by `keyId` (ended when that key is revoked).
   */
  readonly secret: string | undefined;
  readonly keyId: string;
  /** 2025 era: the session key that signed the session (the stream ends when it is rotated out). */
  readonly signingKeyId?: string;
  readonly allowList: AllowList;
  /**
   * Who holds resource subscriptions for this stream: the 2025-era session id (subscriptions made
   * by POSTs of that session land here) or a listen stream's own id.
   */
  readonly holder: string;
  /** 2026-07-28 listen streams: the subscription id stamped on every notification, and the honored filter. */
  readonly subscriptionId?: RpcId;
  readonly filter?: StreamFilter;
  /** Headers to add when this call writes the response head (e.g. Mcp-Session-Id). */
  readonly headers?: Record<string, string>;
  /** The head was already written by the caller (legacy HTTP+SSE transport). */
  readonly headWritten?: boolean;
  /** Called once when the stream ends for any reason. */
  readonly onClose?: () => void;
  /**
   * 2025-era `GET /mcp` streams: events carry ids and are recorded here, and the stream outlives its
   * connection (until the store drops it) so that a GET with `Last-Event-ID` resumes it.
   */
  readonly resumable?: { readonly stream: ResumableStream; readonly priming: boolean };
}

export interface AgentStream {
  /** The response that opened the stream (a resumed stream delivers on a later one: see `resumable`). */
  readonly res: ServerResponse;
  readonly resumable: ResumableStream | undefined;
  readonly options: OpenStreamOptions;
  allowList: AllowList;
  /** The serialized view of each catalog this stream's agent last could see. */
  readonly lastViews: Partial<Record<CatalogKind, string>>;
  /** What `toolsListShape` said for its key when the agent last could see its tools. */
  toolsShape: string;
  readonly keepAlive: NodeJS.Timeout;
  /** Writes one JSON-RPC message as an SSE event (stamping the subscription id on listen streams). */
  send(method: string, params: Record<string, unknown> | undefined): void;
  /** Writes a serialized JSON-RPC message as is. */
  write(json: string): void;
}

export interface AgentStreamsOptions {
  readonly views: CatalogViews;
  readonly subscriptions: ResourceSubscriptions;
  readonly logLevels: LogLevels;
  readonly logger: Logger;
  readonly serverInfo: { name: string; version: string };
  readonly keepAliveMs?: number;
  /** Notification streams open at once per 2025-era session (a new one ends the oldest; default 8). */
  readonly maxStreamsPerSession?: number;
  /** Streams open at once per virtual key, of every kind (a new one ends the key's oldest; default 1,000). */
  readonly maxStreamsPerKey?: number;
  /**
   * Re-authenticates a stream's secret against a new snapshot (default: as a virtual key). The node
   * passes one that also knows verified OAuth access tokens (still unexpired, mapped anew).
   */
  readonly reauthenticate?: (config: AppliedConfig, secret: string) => Principal | undefined;
  /**
   * What else shapes a key's tools/list beside its view of the catalog (code mode's scope), as a
   * string that changes when that does; a change sends `tools/list_changed`. Given the principal when
   * known (a new snapshot), else the stream's key id (when it opens). Absent: nothing else.
   */
  readonly toolsListShape?: (principal: Principal | undefined, keyId: string) => string;
}

export const DEFAULT_MAX_OPEN_STREAMS_PER_SESSION = 8;
export const DEFAULT_MAX_OPEN_STREAMS_PER_KEY = 1_000;

/**
 * The long-lived SSE streams this node holds for agents: 2025-era `GET /mcp` notification streams,
 * legacy HTTP+SSE transport streams, and 2026-07-28 `subscriptions/listen` streams. Each remembers
 * the catalogs its key could last see and is sent `list_changed` when one of them changes (be it
 * through an upstream catalog or a new snapshot); `resources/updated` reaches the streams whose
 * holder subscribed the URI; unsolicited upstream log messages reach 2025-era sessions that set a
 * level with `logging/setLevel` and may use that upstream. A stream whose key is revoked (or whose
 * session key was rotated out) is ended. Each session and each key may hold a bounded number of
 * streams open: a new one beyond the bound ends that session's (or key's) oldest, never another's.
 */
export class AgentStreams {
  private readonly streams = new Set<AgentStream>();
  private readonly byHolder = new Map<string, Set<AgentStream>>();
  private readonly byKey = new Map<string, Set<AgentStream>>();
  private readonly maxPerSession: number;
  private readonly maxPerKey: number;
  private readonly reauthenticate: (config: AppliedConfig, secret: string) => Principal | undefined;
  private readonly views: CatalogViews;
  private readonly subscriptions: ResourceSubscriptions;
  private readonly logLevels: LogLevels;
  private readonly logger: Logger;
  private readonly serverInfo: { name: string; version: string };
  private readonly keepAliveMs: number;
  private readonly toolsListShape: (principal: Principal | undefined, keyId: string) => string;

  constructor(options: AgentStreamsOptions) {
    this.toolsListShape = options.toolsListShape ?? (() => '');
    this.views = options.views;
    this.subscriptions = options.subscriptions;
    this.logLevels = options.logLevels;
    this.logger = options.logger;
    this.serverInfo = options.serverInfo;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_SSE_KEEP_ALIVE_MS;
    this.maxPerSession = Math.max(1, options.maxStreamsPerSession ?? DEFAULT_MAX_OPEN_STREAMS_PER_SESSION);
    this.maxPerKey = Math.max(1, options.maxStreamsPerKey ?? DEFAULT_MAX_OPEN_STREAMS_PER_KEY);
    this.reauthenticate = options.reauthenticate ?? ((config, secret) => config.authenticate(secret));
  }

  get size(): number {
    return this.streams.size;
  }

  /** How many streams of each kind (listen streams carry a subscription id). */
  count(kind: 'session' | 'listen'): number {
    let n = 0;
    for (const stream of this.streams) {
      if (stream.resumable?.connected === false) continue;
      if ((stream.options.subscriptionId !== undefined) === (kind === 'listen')) n += 1;
    }
    return n;
  }

  open(res: ServerResponse, options: OpenStreamOptions): AgentStream {
    this.makeRoom(this.byHolder.get(options.holder), this.maxPerSession);
    this.makeRoom(this.byKey.get(options.keyId), this.maxPerKey);
    if (options.headWritten !== true) {
      res.writeHead(200, options.headers === undefined ? SSE_HEADERS : { ...SSE_HEADERS, ...options.headers });
      res.flushHeaders();
    }
    const resumable = options.resumable?.stream;
    if (resumable !== undefined) {
      // The agent opened a fresh stream rather than resuming: its dropped ones will never be resumed.
      for (const other of [...(this.byHolder.get(options.holder) ?? [])])
        if (other.resumable?.connected === false) this.end(other, false);
      resumable.start(res, options.resumable?.priming === true);
    }
    const keepAlive = setInterval(
      () => (resumable === undefined ? res.write(KEEP_ALIVE) : resumable.comment(KEEP_ALIVE)),
      this.keepAliveMs,
    );
    keepAlive.unref();
    const lastViews: Partial<Record<CatalogKind, string>> = {};
    const filter = options.filter ?? ALL;
    for (const kind of KINDS) if (wants(filter, kind)) lastViews[kind] = this.views.view(options.allowList, kind).json;
    const subscriptionId = options.subscriptionId;
    const stream: AgentStream = {
      res,
      resumable,
      options,
      allowList: options.allowList,
      lastViews,
      toolsShape: this.toolsListShape(undefined, options.keyId),
      keepAlive,
      write: (json) => {
        if (resumable !== undefined) resumable.send(json);
        else if (!res.writableEnded && !res.destroyed) res.write(sseEvent(json));
      },
      send: (method, params) => {
        const stamped =
          subscriptionId === undefined
            ? params
            : {
                ...params,
                _meta: {
                  ...(isPlainObject(params?.['_meta']) ? params['_meta'] : undefined),
                  [SUBSCRIPTION_ID_META_KEY]: subscriptionId,
                },
              };
        stream.write(notificationJson(method, stamped));
      },
    };
    this.streams.add(stream);
    let holders = this.byHolder.get(options.holder);
    if (holders === undefined) this.byHolder.set(options.holder, (holders = new Set()));
    holders.add(stream);
    let ofKey = this.byKey.get(options.keyId);
    if (ofKey === undefined) this.byKey.set(options.keyId, (ofKey = new Set()));
    ofKey.add(stream);
    // A resumable stream outlives its connection; it is forgotten when the store gives it up.
    if (resumable === undefined) res.on('close', () => this.forget(stream));
    else resumable.onAbandoned = () => this.forget(stream);
    return stream;
  }

  /** A merged catalog changed: tell each stream whose visible list of that kind changed. */
  catalogChanged(kind: CatalogKind): void {
    for (const stream of this.streams) this.refresh(stream, kind);
  }

  /** A new snapshot is being served: re-authenticate every stream and tell those whose views changed. */
  configChanged(config: AppliedConfig | undefined): void {
    for (const stream of this.streams) {
      const secret = stream.options.secret;
      const principal =
        config === undefined
          ? undefined
          : secret === undefined
            ? config.principalByKeyId(stream.options.keyId)
            : this.reauthenticate(config, secret);
      const signingKeyId = stream.options.signingKeyId;
      const stillSigned =
        signingKeyId === undefined || (config?.sessionKeys.some((k) => k.id === signingKeyId) ?? false);
      if (principal === undefined || principal.keyId !== stream.options.keyId || !stillSigned) {
        this.logger.info({ keyId: stream.options.keyId }, 'closing agent stream: key or session no longer valid');
        this.end(stream, false);
        continue;
      }
      stream.allowList = principal.allowList;
      const shape = this.toolsListShape(principal, stream.options.keyId);
      if (shape !== stream.toolsShape) {
        stream.toolsShape = shape;
        // The tools listing changed shape (code mode switched on or off): the view comparison below may not see it.
        if (stream.lastViews.tools !== undefined) {
          stream.lastViews.tools = this.views.view(stream.allowList, 'tools').json;
          stream.send(LIST_CHANGED_METHOD.tools, undefined);
        }
      }
      for (const kind of KINDS) this.refresh(stream, kind);
    }
  }

  /** A notification an upstream sent outside any request. */
  upstreamNotification(upstream: string, notification: RpcMessage): void {
    if (notification.method === 'notifications/resources/updated') {
      const uri = notification.params?.['uri'];
      if (typeof uri !== 'string') return;
      const holders = this.subscriptions.holdersOf(upstream, uri);
      if (holders === undefined) return;
      const params = withoutUpstreamSubscriptionId(notification.params);
      for (const holder of holders) {
        for (const stream of this.byHolder.get(holder) ?? []) {
          if (this.views.mayReadResource(stream.allowList, uri, upstream)) stream.send(notification.method, params);
        }
      }
      return;
    }
    if (notification.method === 'notifications/message') {
      for (const stream of this.streams) {
        if (stream.options.subscriptionId !== undefined) continue;
        if (!this.logLevels.allows(stream.options.holder, notification.params?.['level'], false)) continue;
        if (this.views.mayUseUpstream(stream.allowList, upstream))
          stream.send(notification.method, notification.params);
      }
    }
    // Other unsolicited notifications (task status on a shared connection, etc.) cannot be attributed to one agent:
    // dropped.
  }

  /** Ends the streams of one holder (its session was ended). */
  endHolder(holder: string): void {
    for (const stream of [...(this.byHolder.get(holder) ?? [])]) this.end(stream, false);
  }

  /** Ends every stream: listen streams with their graceful-close result, as the SDK does on shutdown. */
  closeAll(): void {
    for (const stream of this.streams) this.end(stream, true);
  }

  /** Ends the oldest streams of a session or key until one more fits within `max`. */
  private makeRoom(streams: Set<AgentStream> | undefined, max: number): void {
    if (streams === undefined) return;
    for (const oldest of [...streams]) {
      if (streams.size < max) return;
      this.logger.debug(
        { keyId: oldest.options.keyId },
        'closing the oldest agent stream: its session or key opened more than it may hold',
      );
      this.end(oldest, false);
    }
  }

  private refresh(stream: AgentStream, kind: CatalogKind): void {
    const last = stream.lastViews[kind];
    if (last === undefined) return;
    const view = this.views.view(stream.allowList, kind).json;
    if (view === last) return;
    stream.lastViews[kind] = view;
    stream.send(LIST_CHANGED_METHOD[kind], undefined);
  }

  private end(stream: AgentStream, graceful: boolean): void {
    const id = stream.options.subscriptionId;
    if (graceful && id !== undefined) {
      stream.write(
        JSON.stringify({
          jsonrpc: '2.0',
          id,
          result: {
            resultType: 'complete',
            _meta: { [SUBSCRIPTION_ID_META_KEY]: id, [SERVER_INFO_META_KEY]: this.serverInfo },
          },
        }),
      );
    }
    this.forget(stream);
    if (stream.resumable !== undefined) stream.resumable.close();
    else stream.res.end();
  }

  private forget(stream: AgentStream): void {
    if (!this.streams.delete(stream)) return;
    clearInterval(stream.keepAlive);
    const holders = this.byHolder.get(stream.options.holder);
    holders?.delete(stream);
    if (holders?.size === 0) this.byHolder.delete(stream.options.holder);
    const ofKey = this.byKey.get(stream.options.keyId);
    ofKey?.delete(stream);
    if (ofKey?.size === 0) this.byKey.delete(stream.options.keyId);
    stream.options.onClose?.();
  }
}

function wants(filter: StreamFilter, kind: CatalogKind): boolean {
  return kind === 'tools' ? filter.tools : kind === 'prompts' ? filter.prompts : filter.resources;
}

/**
 * A 2026-07-28 upstream stamps updates with the id of the gateway's own listen stream to it; that
 * id means nothing to agents (listen streams get theirs stamped instead), so it is dropped.
 */
function withoutUpstreamSubscriptionId(
  params: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  const meta = params?.['_meta'];
  if (!isPlainObject(meta) || !(SUBSCRIPTION_ID_META_KEY in meta)) return params;
  const { [SUBSCRIPTION_ID_META_KEY]: _dropped, ...rest } = meta;
  return Object.keys(rest).length === 0
    ? Object.fromEntries(Object.entries(params ?? {}).filter(([k]) => k !== '_meta'))
    : { ...params, _meta: rest };
}
