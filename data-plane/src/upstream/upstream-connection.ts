import { AsyncLocalStorage } from 'node:async_hooks';
import { Client, ProtocolError, SSEClientTransport, StreamableHTTPClientTransport, type ClientCapabilities, type PriorDiscovery } from '@modelcontextprotocol/client';
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import { z } from 'zod';
import { PortcullisError, errorMessage, type Logger } from '../../../common/src/index.ts';
import { Transport, UpstreamState, type UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { RedirectedError } from './http-channel.ts';
import type { LeanRelay } from './lean-relay.ts';
import { attachLeanRelay } from './relay-wiring.ts';
import { paramHeaderDeclarations, paramHeaders } from '../mcp/param-headers.ts';
import { ProgressTap, type ProgressRoute } from './progress-tap.ts';
import { StdioPipeTransport } from './stdio-transport.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';
import { RpcCode, UpstreamErrorCode, classifyFailure, describeFailure, isSessionExpired, relayError } from './upstream-errors.ts';
import type { CatalogKind, RelayOptions, RpcMessage } from './upstream-router.ts';
import { UpstreamSubscriptions, isModernConnection } from './upstream-subscriptions.ts';
import { effectiveSettings, type UpstreamDefaults, type UpstreamSettings } from './upstream-settings.ts';

/** Any JSON object: results are relayed as the upstream sent them, not re-shaped by a schema. */
const PassthroughResult = z.looseObject({});

export type CatalogItem = Readonly<Record<string, unknown>>;
/** One upstream's catalogs; a kind is absent when the upstream does not declare that capability. */
export type UpstreamCatalogs = Partial<Record<CatalogKind, readonly CatalogItem[]>>;

export const CATALOG_KINDS: readonly CatalogKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates'];

/** How each catalog is listed: method, result field, the capability that offers it, the field naming an entry. */
const LISTING: Record<CatalogKind, { method: string; field: string; capability: string; key: string }> = {
  tools: { method: 'tools/list', field: 'tools', capability: 'tools', key: 'name' },
  prompts: { method: 'prompts/list', field: 'prompts', capability: 'prompts', key: 'name' },
  resources: { method: 'resources/list', field: 'resources', capability: 'resources', key: 'uri' },
  resourceTemplates: { method: 'resources/templates/list', field: 'resourceTemplates', capability: 'resources', key: 'uriTemplate' },
};

/** Which catalogs a `notifications/…/list_changed` refreshes. */
const LIST_CHANGED: Record<string, readonly CatalogKind[]> = {
  'notifications/tools/list_changed': ['tools'],
  'notifications/prompts/list_changed': ['prompts'],
  'notifications/resources/list_changed': ['resources', 'resourceTemplates'],
};

/** What the gateway offers upstream servers, so they offer their sampling, elicitation and roots features. */
const CLIENT_CAPABILITIES: ClientCapabilities = { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } };
const SERVER_REQUESTS = ['sampling/createMessage', 'elicitation/create', 'roots/list'] as const;

/** Requests that may be sent again after a transparent re-initialization (they change nothing upstream). */
const SAFE_TO_RETRY = new Set(['ping', 'server/discover', 'tools/list', 'prompts/list', 'prompts/get', 'resources/list', 'resources/templates/list', 'resources/read', 'resources/subscribe', 'resources/unsubscribe', 'completion/complete', 'logging/setLevel']);

const MAX_LIST_PAGES = 1_000;
const TRANSIENT_BACKOFF_BASE_MS = 250;
const TRANSIENT_BACKOFF_MAX_MS = 30_000;
/** Auth and config failures (401/403, command not found) are retried slowly: 30 s doubling to 5 min. */
const FATAL_BACKOFF_BASE_MS = 30_000;
const FATAL_BACKOFF_MAX_MS = 5 * 60_000;
/** A connection that stayed up this long resets the backoff; a crash loop keeps backing off. */
const STABLE_AFTER_MS = 10_000;
const STDERR_TAIL_BYTES = 1_024;

export interface UpstreamStatus {
  readonly state: UpstreamState;
  /** Why the upstream is DOWN or DEGRADED (or, while READY, the last failure of a catalog refresh). */
  readonly error: string | undefined;
  /** Undefined until the upstream has been listed once. */
  readonly catalogs: UpstreamCatalogs | undefined;
  readonly capabilities: Readonly<Record<string, unknown>> | undefined;
  readonly serverName: string | undefined;
  readonly serverVersion: string | undefined;
  readonly protocolVersion: string | undefined;
}

export interface UpstreamConnectionOptions {
  config: UpstreamConfig;
  defaults: UpstreamDefaults;
  clientInfo: { name: string; version: string };
  logger: Logger;
  /** Called on every state change and catalog refresh (with the catalogs that changed). */
  onStatus: (connection: UpstreamConnection, changed: readonly CatalogKind[]) => void;
  /** Notifications the upstream sent outside any relayed request. */
  onNotification: (connection: UpstreamConnection, notification: RpcMessage) => void;
}

/** The relayed request a server-to-client message belongs to, carried through the SDK's async work. */
interface CallContext {
  readonly connection: UpstreamConnection;
  readonly options: RelayOptions;
  /** Where the call's progress goes when it is relayed on the SDK's path (see progress-tap.ts). */
  progress?: ProgressRoute;
}
const currentCall = new AsyncLocalStorage<CallContext>();
const ignoreProgress = (): void => undefined;

interface Opened {
  client: Client;
  catalogs: UpstreamCatalogs;
}

const STATE_NAMES: Record<number, string> = {
  [UpstreamState.UPSTREAM_STATE_CONNECTING]: 'connecting',
  [UpstreamState.UPSTREAM_STATE_READY]: 'ready',
  [UpstreamState.UPSTREAM_STATE_DEGRADED]: 'degraded',
  [UpstreamState.UPSTREAM_STATE_DOWN]: 'down',
  [UpstreamState.UPSTREAM_STATE_DISABLED]: 'disabled',
};

export function stateName(state: UpstreamState): string {
  return STATE_NAMES[state] ?? 'unknown';
}

/**
 * One upstream MCP server as a node holds it: a single SDK client shared by every agent on the
 * node, its catalogs, its health, and its state. It reconnects with exponential backoff and
 * jitter when the connection fails, closes or stops answering pings, re-initializes transparently
 * when an HTTP upstream forgets its session, and refreshes its catalogs on `list_changed`.
 */
export class UpstreamConnection {
  private configValue: UpstreamConfig;
  private settingsValue: UpstreamSettings;
  private readonly options: UpstreamConnectionOptions;
  private readonly logger: Logger;
  private client: Client | undefined;
  private opening: Client | undefined;
  private status: UpstreamStatus = { state: UpstreamState.UPSTREAM_STATE_CONNECTING, error: undefined, catalogs: undefined, capabilities: undefined, serverName: undefined, serverVersion: undefined, protocolVersion: undefined };
  private attempts = 0;
  private readySince = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private healthFailures = 0;
  private checking = false;
  private reinitializing: Promise<void> | undefined;
  private stopped = false;
  private stderrTail = '';
  /**
   * The era verdict of the last successful connect, reused when reconnecting the same config so a
   * restart skips the negotiation probe (for stdio that probe spawns the server an extra time:
   * ~1 s instead of ~0.35 s for server-everything). Cleared when a connect fails.
   */
  private prior: PriorDiscovery | undefined;
  private readonly inflight = new Set<CallContext>();
  /** The lean relay beside each connected 2025-era client (see lean-relay.ts); absent: the SDK's path. */
  private readonly leanRelays = new WeakMap<Client, LeanRelay>();
  private readonly refreshing = new Set<CatalogKind>();
  private readonly subscriptions: UpstreamSubscriptions;
  private readonly progressTap = new ProgressTap(() => {
    const call = currentCall.getStore();
    return call?.connection === this ? call.progress : undefined;
  });
  private readonly refreshAgain = new Set<CatalogKind>();

  constructor(options: UpstreamConnectionOptions) {
    this.options = options;
    this.configValue = options.config;
    this.settingsValue = effectiveSettings(options.config, options.defaults);
    this.logger = options.logger.child({ upstream: options.config.name });
    this.subscriptions = new UpstreamSubscriptions(options.config.name, this.logger);
  }

  get name(): string {
    return this.configValue.name;
  }

  get config(): UpstreamConfig {
    return this.configValue;
  }

  get settings(): UpstreamSettings {
    return this.settingsValue;
  }

  get current(): UpstreamStatus {
    return this.status;
  }

  /** The server process of a connected stdio upstream. */
  get pid(): number | undefined {
    const transport = this.client?.transport;
    return transport instanceof StdioPipeTransport ? transport.pid : undefined;
  }

  /** Requests relayed right now. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Starts connecting in the background (or reports DISABLED); progress is reported through `onStatus`. */
  start(): void {
    if (this.configValue.disabled) {
      this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DISABLED, error: undefined });
      return;
    }
    void this.connect();
  }

  /**
   * Takes settings that need no reconnect (timeouts, health, pins, unprefixed names) from a newer
   * snapshot of the same upstream.
   */
  update(config: UpstreamConfig): void {
    const before = this.settingsValue;
    this.configValue = config;
    this.settingsValue = effectiveSettings(config, this.options.defaults);
    if (this.healthTimer && before.healthIntervalMs !== this.settingsValue.healthIntervalMs) this.startHealth();
  }

  /** Closes the connection for good (the upstream was removed or changed); calls in flight fail at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.subscriptions.close();
    clearTimeout(this.retryTimer);
    clearInterval(this.healthTimer);
    const clients = [this.client, this.opening].filter((c): c is Client => c !== undefined);
    this.client = undefined;
    this.opening = undefined;
    await Promise.all(
      clients.map((client) => {
        client.onclose = undefined;
        return client.close().catch(() => undefined);
      }),
    );
  }

  /**
   * Relays one request and resolves with the upstream's result JSON, unchanged. A request that
   * meets an expired session re-initializes the connection and is sent again once, if it is safe
   * to repeat.
   */
  async request(message: RpcMessage, options: RelayOptions = {}): Promise<Record<string, unknown>> {
    if (message.method === 'resources/subscribe' || message.method === 'resources/unsubscribe') return this.changeSubscription(message.method, message, options);
    return this.relay(message, options);
  }

  /**
   * Resource subscriptions are remembered so a reconnect can make them again; a 2026-07-28 upstream,
   * which has no `resources/subscribe`, is subscribed through one `subscriptions/listen` stream.
   */
  private async changeSubscription(method: 'resources/subscribe' | 'resources/unsubscribe', message: RpcMessage, options: RelayOptions): Promise<Record<string, unknown>> {
    const uri = message.params?.['uri'];
    if (typeof uri !== 'string') throw new UpstreamRpcError(RpcCode.INVALID_PARAMS, `Invalid params: ${method} needs a string uri`);
    const client = this.usableClient();
    if (isModernConnection(client)) {
      try {
        return await (method === 'resources/subscribe' ? this.subscriptions.listenFor(client, uri) : this.subscriptions.stopListeningFor(client, uri));
      } catch (error) {
        throw error instanceof UpstreamRpcError ? error : relayError(this.name, 'subscriptions/listen', error, { aborted: false, timeoutMs: this.settingsValue.callTimeoutMs });
      }
    }
    const result = await this.relay(message, options);
    this.subscriptions.record(method, uri);
    return result;
  }

  private async relay(message: RpcMessage, options: RelayOptions): Promise<Record<string, unknown>> {
    const timeoutMs = options.timeoutMs ?? this.settingsValue.callTimeoutMs;
    for (let retried = false; ; retried = true) {
      if (this.reinitializing) await this.reinitializing.catch(() => undefined);
      const client = this.usableClient();
      const hadSession = client.transport?.sessionId !== undefined;
      try {
        return await this.send(client, message, options, timeoutMs);
      } catch (error) {
        const aborted = options.cancellation?.aborted ?? false;
        if (!retried && !aborted && isSessionExpired(error, hadSession)) {
          await this.reinitialize(client, error).catch(() => undefined);
          if (this.isSafeToRetry(message)) continue;
          throw new PortcullisError(UpstreamErrorCode.UNAVAILABLE, `upstream "${this.name}" lost its session; the connection was re-initialized, but ${describeRequest(message)} is not safe to send twice`, { upstream: this.name });
        }
        const relayed = relayError(this.name, message.method, error, { aborted, timeoutMs });
        if (relayed instanceof PortcullisError && relayed.code === UpstreamErrorCode.UNAVAILABLE) this.checkSoon();
        throw relayed;
      }
    }
  }

  /** Sends a notification (e.g. `notifications/roots/list_changed`). */
  async notify(message: RpcMessage): Promise<void> {
    const client = this.usableClient();
    try {
      await client.notification({ method: message.method, ...(message.params ? { params: message.params } : {}) });
    } catch (error) {
      throw relayError(this.name, message.method, error, { aborted: false, timeoutMs: 0 });
    }
  }

  /** The tool with this upstream name, as last listed. */
  tool(name: string): CatalogItem | undefined {
    return this.status.catalogs?.tools?.find((t) => t['name'] === name);
  }

  private isSafeToRetry(message: RpcMessage): boolean {
    if (SAFE_TO_RETRY.has(message.method)) return true;
    if (message.method !== 'tools/call') return false;
    const annotations = this.tool(String(message.params?.['name']))?.['annotations'] as Record<string, unknown> | undefined;
    return annotations?.['readOnlyHint'] === true || annotations?.['idempotentHint'] === true;
  }

  private usableClient(): Client {
    const state = this.status.state;
    if (this.client && (state === UpstreamState.UPSTREAM_STATE_READY || state === UpstreamState.UPSTREAM_STATE_DEGRADED)) return this.client;
    const why = this.status.error ? `: ${this.status.error}` : '';
    throw new PortcullisError(UpstreamErrorCode.UNAVAILABLE, state === UpstreamState.UPSTREAM_STATE_DISABLED ? `upstream "${this.name}" is disabled` : `upstream "${this.name}" is not connected (${stateName(state)}${why})`, { upstream: this.name });
  }

  private async send(client: Client, message: RpcMessage, options: RelayOptions, timeoutMs: number): Promise<Record<string, unknown>> {
    const call: CallContext = { connection: this, options };
    const { params, agentProgressToken } = relayParams(message.params, options.meta);
    const onProgress = options.onProgress;
    const onprogress =
      agentProgressToken !== undefined && onProgress
        ? (progress: Record<string, unknown>) => onProgress({ ...progress, progressToken: agentProgressToken })
        : undefined;
    this.inflight.add(call);
    try {
      const lean = this.leanRelays.get(client);
      if (lean?.carries(message.method)) {
        try {
          return await lean.request(message.method, params, { cancellation: options.cancellation, timeoutMs, onProgress: onprogress, inContext: (deliver) => currentCall.run(call, deliver) });
        } catch (error) {
          if (!(error instanceof RedirectedError)) throw error;
          // The upstream redirects its endpoint: its requests go through the SDK's transport, which follows redirects.
          this.leanRelays.delete(client);
          this.logger.info({ status: error.status }, 'upstream redirects relayed requests; relaying through the SDK transport');
        }
      }
      // The tap delivers progress in wire order; the SDK's own callback only keeps the timeout reset by it.
      if (onprogress) call.progress = { sink: onprogress, tokens: new Set() };
      return await currentCall.run(call, () =>
        client.request({ method: message.method, ...(params ? { params } : {}) }, PassthroughResult, {
          signal: options.cancellation?.signal(),
          timeout: timeoutMs,
          resetTimeoutOnProgress: true,
          ...(onprogress ? { onprogress: ignoreProgress } : {}),
          ...(options.returnInputRequired ? { allowInputRequired: true } : {}),
          ...this.paramHeadersFor(client, message.method, params),
        }),
      );
    } finally {
      this.inflight.delete(call);
      if (call.progress) this.progressTap.release(call.progress);
    }
  }

  /**
   * A 2026-07-28 upstream's `tools/call` carries the `Mcp-Param-*` headers its tool declares
   * (SEP-2243), as the SDK's `callTool` would send them; the upstream rejects a call without them.
   */
  private paramHeadersFor(client: Client, method: string, params: Record<string, unknown> | undefined): { headers?: Record<string, string> } {
    if (method !== 'tools/call' || !isModernConnection(client)) return {};
    const name = params?.['name'];
    const declarations = typeof name === 'string' ? paramHeaderDeclarations(this.tool(name)?.['inputSchema']) : [];
    if (declarations.length === 0) return {};
    const headers = paramHeaders(declarations, params?.['arguments']);
    return Object.keys(headers).length === 0 ? {} : { headers };
  }

  private async connect(): Promise<void> {
    this.retryTimer = undefined;
    if (this.stopped) return;
    this.setStatus({ state: UpstreamState.UPSTREAM_STATE_CONNECTING });
    let opened: Opened;
    try {
      opened = await this.open();
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.stopped) {
      await opened.client.close().catch(() => undefined);
      return;
    }
    this.adopt(opened);
  }

  /** A new client, connected, with its catalogs listed. Runs outside any relayed call's context. */
  private open(): Promise<Opened> {
    return currentCall.exit(async () => {
      const client: Client = new Client(this.options.clientInfo, {
        versionNegotiation: { mode: 'auto' },
        capabilities: CLIENT_CAPABILITIES,
        listChanged: {
          tools: { autoRefresh: false, debounceMs: 0, onChanged: () => this.refresh(client, ['tools']) },
          prompts: { autoRefresh: false, debounceMs: 0, onChanged: () => this.refresh(client, ['prompts']) },
          resources: { autoRefresh: false, debounceMs: 0, onChanged: () => this.refresh(client, ['resources', 'resourceTemplates']) },
        },
      });
      for (const method of SERVER_REQUESTS) {
        client.setRequestHandler(method, ((request: { params?: Record<string, unknown> }) => this.serverRequest(method, request.params)) as never);
      }
      client.fallbackNotificationHandler = async (notification) => this.onUpstreamNotification(client, notification);
      client.onerror = (error) => this.logger.debug({ err: errorMessage(error) }, 'upstream transport error');
      this.opening = client;
      try {
        await client.connect(this.createTransport(), { timeout: this.settingsValue.connectTimeoutMs, ...(this.prior ? { prior: this.prior } : {}) });
        const catalogs = await this.listCatalogs(client);
        this.progressTap.attach(client);
        const lean = attachLeanRelay(client, { upstream: this.name, url: this.configValue.url, headers: this.headers() });
        if (lean) this.leanRelays.set(client, lean);
        const discover = client.getDiscoverResult();
        this.prior = client.getProtocolEra() === 'modern' && discover ? { kind: 'modern', discover } : { kind: 'legacy' };
        return { client, catalogs };
      } catch (error) {
        this.prior = undefined;
        client.onclose = undefined;
        await client.close().catch(() => undefined);
        throw error;
      } finally {
        if (this.opening === client) this.opening = undefined;
      }
    });
  }

  private adopt({ client, catalogs }: Opened): void {
    this.client = client;
    this.readySince = Date.now();
    this.healthFailures = 0;
    client.onclose = () => this.onClosed(client);
    const server = client.getServerVersion();
    this.setStatus(
      {
        state: UpstreamState.UPSTREAM_STATE_READY,
        error: undefined,
        catalogs,
        capabilities: client.getServerCapabilities() as Record<string, unknown> | undefined,
        serverName: server?.name,
        serverVersion: server?.version,
        protocolVersion: client.getNegotiatedProtocolVersion(),
      },
      CATALOG_KINDS,
    );
    this.startHealth();
    this.subscriptions.restore(client, isModernConnection(client));
    this.logger.info({ protocolVersion: client.getNegotiatedProtocolVersion(), tools: catalogs.tools?.length ?? 0 }, 'upstream ready');
  }

  private createTransport() {
    const config = this.configValue;
    switch (config.transport) {
      case Transport.TRANSPORT_STDIO: {
        this.stderrTail = '';
        return new StdioPipeTransport({
          command: config.command,
          args: config.args,
          env: { ...getDefaultEnvironment(), ...Object.fromEntries(config.env.map((e) => [e.name, e.value])) },
          ...(config.cwd ? { cwd: config.cwd } : {}),
          stderr: 'pipe',
          onStderr: (chunk) => {
            this.stderrTail = (this.stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
          },
        });
      }
      case Transport.TRANSPORT_STREAMABLE_HTTP:
        return new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: this.headers() } });
      case Transport.TRANSPORT_SSE:
        return new SSEClientTransport(new URL(config.url), { requestInit: { headers: this.headers() } });
      default:
        throw new PortcullisError('BAD_CONFIG', `upstream "${config.name}" has no transport`);
    }
  }

  private headers(): Record<string, string> {
    return Object.fromEntries(this.configValue.headers.filter((h) => h.name !== '').map((h) => [h.name, h.value]));
  }

  /** Lists every catalog the upstream declares, all pages. A kind the upstream answers with an error is left empty. */
  private async listCatalogs(client: Client): Promise<UpstreamCatalogs> {
    const capabilities = (client.getServerCapabilities() ?? {}) as Record<string, unknown>;
    const kinds = CATALOG_KINDS.filter((kind) => capabilities[LISTING[kind].capability] !== undefined);
    const lists = await Promise.all(
      kinds.map(async (kind) => {
        try {
          return await this.listAll(client, kind);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          this.logger.warn({ err: error.message, kind }, 'upstream refused to list a catalog it declares; treating it as empty');
          return [];
        }
      }),
    );
    return Object.fromEntries(kinds.map((kind, i) => [kind, lists[i]])) as UpstreamCatalogs;
  }

  private async listAll(client: Client, kind: CatalogKind): Promise<CatalogItem[]> {
    const { method, field, key } = LISTING[kind];
    const items: CatalogItem[] = [];
    const cursors = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; ; page++) {
      if (page === MAX_LIST_PAGES) throw new Error(`${method} did not end after ${MAX_LIST_PAGES} pages`);
      const result = await client.request({ method, params: cursor === undefined ? {} : { cursor } }, PassthroughResult, { timeout: this.settingsValue.callTimeoutMs });
      const list = result[field];
      if (!Array.isArray(list)) throw new Error(`${method} answered without a "${field}" array`);
      for (const item of list) {
        if (isPlainObject(item) && typeof item[key] === 'string') items.push(item);
        else this.logger.warn({ kind }, `upstream listed an entry without a "${key}"; skipped`);
      }
      const next = result['nextCursor'];
      if (typeof next !== 'string' || next === '') return items;
      if (cursors.has(next)) throw new Error(`${method} repeated the cursor ${JSON.stringify(next)}`);
      cursors.add(next);
      cursor = next;
    }
  }

  /** Re-lists the given catalogs; a change arriving while one is being listed lists it again afterwards. */
  private refresh(client: Client, kinds: readonly CatalogKind[]): void {
    for (const kind of kinds) {
      if (this.refreshing.has(kind)) {
        this.refreshAgain.add(kind);
        continue;
      }
      this.refreshing.add(kind);
      void currentCall.exit(async () => {
        try {
          do {
            this.refreshAgain.delete(kind);
            const items = await this.listAll(client, kind);
            if (this.client !== client) return;
            this.setStatus({ catalogs: { ...this.status.catalogs, [kind]: items } }, [kind]);
          } while (this.refreshAgain.has(kind));
        } catch (error) {
          this.logger.warn({ err: errorMessage(error), kind }, 'refreshing a catalog failed');
        } finally {
          this.refreshing.delete(kind);
          this.refreshAgain.delete(kind);
        }
      });
    }
  }

  private onUpstreamNotification(client: Client, notification: { method: string; params?: Record<string, unknown> }): void {
    const refreshes = LIST_CHANGED[notification.method];
    if (refreshes) {
      this.refresh(client, refreshes);
      return;
    }
    if (notification.method === 'notifications/cancelled' || notification.method === 'notifications/progress') return;
    const message: RpcMessage = notification.params === undefined ? { method: notification.method } : { method: notification.method, params: notification.params };
    const call = currentCall.getStore();
    if (call?.connection === this && call.options.onNotification) {
      call.options.onNotification(message);
      return;
    }
    this.options.onNotification(this, message);
  }

  /**
   * A server-to-client request (sampling, elicitation, roots): answered by the relayed call that
   * caused it. Over Streamable HTTP (and in the 2026-07-28 era) the SDK delivers it in that call's
   * async context; over stdio and SSE the protocol does not say, so it goes to the only request in
   * flight on this upstream, or, when several are, to the oldest of them if they all come from one
   * agent (`RelayOptions.agent`): whichever call asked, that agent is the one to answer. Requests of
   * different agents in flight, or none, refuse it rather than ask an agent another agent's question.
   */
  private async serverRequest(method: string, params: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    const call = this.relatedCall();
    if (!call) {
      throw new ProtocolError(RpcCode.METHOD_NOT_FOUND, `Method not found: the gateway cannot relate ${method} to an agent's request (${this.inflight.size} requests ${this.inflight.size === 0 ? '' : 'of different agents '}in flight on upstream "${this.name}")`);
    }
    const onRequest = call.options.onRequest;
    if (!onRequest) throw new ProtocolError(RpcCode.METHOD_NOT_FOUND, `Method not found: the agent cannot answer ${method}`);
    try {
      return await onRequest(params === undefined ? { method } : { method, params });
    } catch (error) {
      if (error instanceof UpstreamRpcError) throw new ProtocolError(error.code, error.message, error.data);
      if (error instanceof ProtocolError) throw error;
      throw new ProtocolError(RpcCode.INTERNAL_ERROR, `the agent could not answer ${method}: ${errorMessage(error)}`);
    }
  }

  private relatedCall(): CallContext | undefined {
    const call = currentCall.getStore();
    if (call?.connection === this) return call;
    // A Set iterates in insertion order: the first is the oldest call in flight.
    const [oldest, ...others] = this.inflight;
    if (oldest === undefined) return undefined;
    if (others.length === 0) return oldest;
    const agent = oldest.options.agent;
    if (agent === undefined || others.some((other) => other.options.agent !== agent)) return undefined;
    return oldest.options.onRequest ? oldest : (others.find((other) => other.options.onRequest) ?? oldest);
  }

  private startHealth(): void {
    clearInterval(this.healthTimer);
    this.healthTimer = setInterval(() => currentCall.exit(() => void this.checkHealth()), this.settingsValue.healthIntervalMs);
    this.healthTimer.unref();
  }

  /** A relayed request found the upstream unreachable: check now rather than at the next interval. */
  private checkSoon(): void {
    setImmediate(() => currentCall.exit(() => void this.checkHealth()));
  }

  /** One health probe: `ping` (2025 era) or `server/discover` (2026-07-28, which has no ping). */
  private async checkHealth(): Promise<void> {
    const client = this.client;
    if (!client || this.checking || this.reinitializing || this.stopped) return;
    this.checking = true;
    const threshold = this.settingsValue.healthFailureThreshold;
    try {
      const timeout = Math.min(this.settingsValue.callTimeoutMs, Math.max(1_000, this.settingsValue.healthIntervalMs));
      if (client.getProtocolEra() === 'modern') await client.discover({ timeout });
      else await client.ping({ timeout });
      if (this.client !== client) return;
      this.healthFailures = 0;
      if (this.status.state === UpstreamState.UPSTREAM_STATE_DEGRADED) {
        this.logger.info('upstream answers pings again');
        this.setStatus({ state: UpstreamState.UPSTREAM_STATE_READY, error: undefined });
      }
    } catch (error) {
      if (this.client !== client) return;
      if (isSessionExpired(error, client.transport?.sessionId !== undefined)) {
        await this.reinitialize(client, error).catch(() => undefined);
        return;
      }
      this.healthFailures += 1;
      const reason = `health check failed ${this.healthFailures}/${threshold}: ${describeFailure(error)}`;
      if (this.healthFailures >= threshold) this.drop(client, new Error(reason));
      else if (this.status.state === UpstreamState.UPSTREAM_STATE_READY || this.status.state === UpstreamState.UPSTREAM_STATE_DEGRADED) {
        this.logger.warn({ err: reason }, 'upstream degraded');
        this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DEGRADED, error: reason });
      }
    } finally {
      this.checking = false;
    }
  }

  /** The upstream forgot the session: open a new connection in its place (once, however many callers noticed). */
  private reinitialize(old: Client, cause: unknown): Promise<void> {
    if (this.client !== old) return this.reinitializing ?? Promise.resolve();
    this.reinitializing ??= currentCall.exit(async () => {
      this.logger.warn({ err: errorMessage(cause) }, 'upstream session expired; re-initializing');
      try {
        const opened = await this.open();
        if (this.stopped || this.client !== old) {
          await opened.client.close().catch(() => undefined);
          return;
        }
        old.onclose = undefined;
        void old.close().catch(() => undefined);
        this.adopt(opened);
      } catch (error) {
        if (this.client === old) this.drop(old, error);
        throw error;
      } finally {
        this.reinitializing = undefined;
      }
    });
    return this.reinitializing;
  }

  /** Gives up on a live client (pings failing, re-initialization failed) and reconnects. */
  private drop(client: Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    clearInterval(this.healthTimer);
    client.onclose = undefined;
    void client.close().catch(() => undefined);
    this.fail(error, true);
  }

  private onClosed(client: Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    clearInterval(this.healthTimer);
    const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
    const what = this.configValue.transport === Transport.TRANSPORT_STDIO ? 'the server process exited' : 'the connection closed';
    this.fail(new Error(tail ? `${what}; its last output: ${tail}` : what), true);
  }

  /** Records the failure and schedules the next attempt: fast exponential backoff with jitter, slow for auth/config errors. */
  private fail(error: unknown, wasLive = false): void {
    if (this.stopped) return;
    if (wasLive && Date.now() - this.readySince >= STABLE_AFTER_MS) this.attempts = 0;
    const fatal = classifyFailure(error) === 'fatal';
    const reason = describeFailure(error);
    const ceiling = fatal ? Math.min(FATAL_BACKOFF_MAX_MS, FATAL_BACKOFF_BASE_MS * 2 ** Math.min(this.attempts, 16)) : Math.min(TRANSIENT_BACKOFF_MAX_MS, TRANSIENT_BACKOFF_BASE_MS * 2 ** Math.min(this.attempts, 16));
    this.attempts += 1;
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DOWN, error: reason });
    this.logger.warn({ err: reason, retryInMs: delay, fatal }, 'upstream unavailable');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => currentCall.exit(() => void this.connect()), delay);
    this.retryTimer.unref();
  }

  private setStatus(change: Partial<UpstreamStatus>, catalogs: readonly CatalogKind[] = []): void {
    this.status = { ...this.status, ...change };
    this.options.onStatus(this, catalogs);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeRequest(message: RpcMessage): string {
  return message.method === 'tools/call' ? `tools/call ${String(message.params?.['name'])}` : message.method;
}

/**
 * The params to send upstream: the agent's `_meta` merged in, minus its progress token, which the
 * SDK replaces with its own (the relay maps progress back to the agent's token).
 */
function relayParams(params: Record<string, unknown> | undefined, meta: Record<string, unknown> | undefined): { params: Record<string, unknown> | undefined; agentProgressToken: unknown } {
  const ownMeta = isPlainObject(params?.['_meta']) ? params['_meta'] : undefined;
  if (!ownMeta && !meta) return { params, agentProgressToken: undefined };
  const merged: Record<string, unknown> = { ...ownMeta, ...meta };
  const agentProgressToken = merged['progressToken'];
  delete merged['progressToken'];
  const out: Record<string, unknown> = { ...params };
  if (Object.keys(merged).length > 0) out['_meta'] = merged;
  else delete out['_meta'];
  return { params: out, agentProgressToken };
}
