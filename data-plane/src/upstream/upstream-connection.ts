import {
  Client,
  SSEClientTransport,
  StreamableHTTPClientTransport,
  type ClientCapabilities,
  type PriorDiscovery,
} from '@modelcontextprotocol/client';
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import { Backoff, PortcullisError, errorMessage, type BackoffPolicy, type Logger } from '../../../common/src/index.ts';
import { Transport, UpstreamState, type UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import type { LeanRelay } from './lean-relay.ts';
import { attachLeanRelay } from './relay-wiring.ts';
import { StdioPipeTransport } from './stdio-transport.ts';
import { tolerantFetch, tolerateMissingResultType, type DeviationKind } from './upstream-deviations.ts';
import { UpstreamErrorCode, classifyFailure, describeFailure, isSessionExpired } from './upstream-errors.ts';
import { UpstreamRelay, outsideCalls } from './upstream-relay.ts';
import { CATALOG_KINDS, listAll, listCatalogs, type CatalogItem, type UpstreamCatalogs } from './upstream-listing.ts';
import type { CatalogKind, RelayOptions, RpcMessage } from './upstream-router.ts';
import { UpstreamSubscriptions, isModernConnection, listChangedFilter } from './upstream-subscriptions.ts';
import {
  effectiveSettings,
  versionNegotiation,
  type UpstreamDefaults,
  type UpstreamSettings,
} from './upstream-settings.ts';

/** Which catalogs a `notifications/…/list_changed` refreshes. */
const LIST_CHANGED: Record<string, readonly CatalogKind[]> = {
  'notifications/tools/list_changed': ['tools'],
  'notifications/prompts/list_changed': ['prompts'],
  'notifications/resources/list_changed': ['resources', 'resourceTemplates'],
};

/** What the gateway offers upstream servers, so they offer their sampling, elicitation and roots features. */
const CLIENT_CAPABILITIES: ClientCapabilities = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
};
const SERVER_REQUESTS = ['sampling/createMessage', 'elicitation/create', 'roots/list'] as const;

const TRANSIENT_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 30_000 };
/** Auth and config failures (401/403, command not found) are retried slowly: 30 s doubling to 5 min. */
const FATAL_BACKOFF: BackoffPolicy = { baseMs: 30_000, maxMs: 5 * 60_000 };
/**
 * How long a new 2026-07-28 connection waits for its `subscriptions/listen` acknowledgement before
 * it serves anyway (the listen goes on, bounded by the call timeout): an upstream that never
 * acknowledges must not hold its readiness for the whole connect timeout.
 */
const LISTEN_READY_WAIT_MS = 2_000;
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
  /** The upstream deviated from the spec in a way the gateway carries (upstream-deviations.ts); called each time. */
  onDeviation?: (connection: UpstreamConnection, kind: DeviationKind) => void;
}

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
 * Relaying requests over it is upstream-relay.ts.
 *
 * Health: DEGRADED (still served, shown to operators) while pings fail below the threshold, or
 * while the last `healthFailureThreshold` relayed requests in a row failed on the gateway's side
 * (unreachable, timed out, an answer that cannot be relayed), however well it answers pings; the
 * next relayed request that succeeds makes it READY again. The upstream's own JSON-RPC errors and
 * tool results with `isError` are answers, not failures.
 */
export class UpstreamConnection {
  private configValue: UpstreamConfig;
  private settingsValue: UpstreamSettings;
  private readonly options: UpstreamConnectionOptions;
  private readonly logger: Logger;
  private client: Client | undefined;
  private opening: Client | undefined;
  private status: UpstreamStatus = {
    state: UpstreamState.UPSTREAM_STATE_CONNECTING,
    error: undefined,
    catalogs: undefined,
    capabilities: undefined,
    serverName: undefined,
    serverVersion: undefined,
    protocolVersion: undefined,
  };
  private readonly backoff = new Backoff(TRANSIENT_BACKOFF);
  private readySince = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private healthFailures = 0;
  /** Relayed requests that failed in a row (see the class comment). */
  private callFailures = 0;
  private checking = false;
  private reinitializingValue: Promise<void> | undefined;
  private stopped = false;
  private stderrTail = '';
  /**
   * The era verdict of the last successful connect, reused when reconnecting the same config so a
   * restart skips the negotiation probe (for stdio that probe spawns the server an extra time:
   * ~1 s instead of ~0.35 s for server-everything). Cleared when a connect fails.
   */
  private prior: PriorDiscovery | undefined;
  /** The lean relay beside each connected 2025-era client (see lean-relay.ts); absent: the SDK's path. */
  private readonly leanRelays = new WeakMap<Client, LeanRelay>();
  private readonly refreshing = new Set<CatalogKind>();
  private readonly refreshAgain = new Set<CatalogKind>();
  private readonly subscriptions: UpstreamSubscriptions;
  private readonly relay: UpstreamRelay;
  /** Deviations already logged (each is logged once per upstream; every one is counted). */
  private readonly loggedDeviations = new Set<DeviationKind>();

  constructor(options: UpstreamConnectionOptions) {
    this.options = options;
    this.configValue = options.config;
    this.settingsValue = effectiveSettings(options.config, options.defaults);
    this.logger = options.logger.child({ upstream: options.config.name });
    this.subscriptions = new UpstreamSubscriptions(
      options.config.name,
      this.logger,
      () => this.settingsValue.callTimeoutMs,
    );
    this.relay = new UpstreamRelay(
      {
        name: options.config.name,
        callTimeoutMs: () => this.settingsValue.callTimeoutMs,
        usableClient: () => this.usableClient(),
        reinitializing: () => this.reinitializingValue,
        reinitialize: (old, cause) => this.reinitialize(old, cause),
        tool: (name) => this.tool(name),
        leanRelay: (client) => this.leanRelays.get(client),
        dropLeanRelay: (client) => void this.leanRelays.delete(client),
        relayed: (failure) => this.relayed(failure),
      },
      this.subscriptions,
      this.logger,
    );
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
    return this.relay.inflightCount;
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

  /** Relays one request (upstream-relay.ts) and resolves with the upstream's result JSON, unchanged. */
  request(message: RpcMessage, options: RelayOptions = {}): Promise<Record<string, unknown>> {
    return this.relay.request(message, options);
  }

  /** Sends a notification (e.g. `notifications/roots/list_changed`). */
  notify(message: RpcMessage): Promise<void> {
    return this.relay.notify(message);
  }

  /** The tool with this upstream name, as last listed. */
  tool(name: string): CatalogItem | undefined {
    return this.status.catalogs?.tools?.find((t) => t['name'] === name);
  }

  private usableClient(): Client {
    const state = this.status.state;
    if (
      this.client &&
      (state === UpstreamState.UPSTREAM_STATE_READY || state === UpstreamState.UPSTREAM_STATE_DEGRADED)
    )
      return this.client;
    const why = this.status.error ? `: ${this.status.error}` : '';
    throw new PortcullisError(
      UpstreamErrorCode.UNAVAILABLE,
      state === UpstreamState.UPSTREAM_STATE_DISABLED
        ? `upstream "${this.name}" is disabled`
        : `upstream "${this.name}" is not connected (${stateName(state)}${why})`,
      { upstream: this.name },
    );
  }

  /**
   * One relayed request's outcome: `healthFailureThreshold` failures in a row degrade the upstream, a success restores
   * it.
   */
  private relayed(failure: PortcullisError | undefined): void {
    if (failure === undefined) {
      if (this.callFailures === 0) return;
      this.callFailures = 0;
      if (this.status.state === UpstreamState.UPSTREAM_STATE_DEGRADED && this.healthFailures === 0) {
        this.logger.info('relayed requests succeed again');
        this.setStatus({ state: UpstreamState.UPSTREAM_STATE_READY, error: undefined });
      }
      return;
    }
    if (failure.code === UpstreamErrorCode.UNAVAILABLE) this.checkSoon();
    this.callFailures += 1;
    const threshold = this.settingsValue.healthFailureThreshold;
    if (this.callFailures < threshold || this.status.state !== UpstreamState.UPSTREAM_STATE_READY) return;
    const reason = `the last ${this.callFailures} requests relayed to it failed: ${failure.message}`;
    this.logger.warn({ err: reason }, 'upstream degraded');
    this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DEGRADED, error: reason });
  }

  /** A deviation the gateway carried: logged the first time, counted every time. */
  private deviated(kind: DeviationKind): void {
    if (!this.loggedDeviations.has(kind)) {
      this.loggedDeviations.add(kind);
      this.logger.warn(
        { kind },
        'upstream deviates from the MCP spec; relaying what it sent as well as the gateway can (logged once)',
      );
    }
    this.options.onDeviation?.(this, kind);
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
    return outsideCalls(async () => {
      // No `listChanged` option: the SDK would hold the connect on its own `subscriptions/listen`
      // (until the connect timeout when an upstream never acknowledges it); list changes are heard
      // by the fallback handler, and a 2026-07-28 upstream is listened to by `subscriptions`.
      const client: Client = new Client(this.options.clientInfo, {
        ...versionNegotiation(this.configValue.protocolVersion),
        capabilities: CLIENT_CAPABILITIES,
      });
      for (const method of SERVER_REQUESTS) {
        client.setRequestHandler(method, ((request: { params?: Record<string, unknown> }) =>
          this.relay.serverRequest(method, request.params)) as never);
      }
      client.fallbackNotificationHandler = async (notification) => this.onUpstreamNotification(client, notification);
      client.onerror = (error) => this.logger.debug({ err: errorMessage(error) }, 'upstream transport error');
      this.opening = client;
      try {
        await client.connect(this.createTransport(), {
          timeout: this.settingsValue.connectTimeoutMs,
          ...(this.prior ? { prior: this.prior } : {}),
        });
        tolerateMissingResultType(client, (kind) => this.deviated(kind));
        const catalogs = await listCatalogs(client, this.settingsValue.callTimeoutMs, this.logger);
        this.relay.progressTap.attach(client);
        const lean = attachLeanRelay(client, {
          upstream: this.name,
          url: this.configValue.url,
          headers: this.headers(),
          onDeviation: (kind) => this.deviated(kind),
        });
        if (lean) this.leanRelays.set(client, lean);
        if (isModernConnection(client)) {
          const filter = listChangedFilter(client.getServerCapabilities() as Record<string, unknown> | undefined);
          await this.subscriptions.attach(
            client,
            filter,
            Math.min(LISTEN_READY_WAIT_MS, this.settingsValue.connectTimeoutMs),
          );
        }
        const discover = client.getDiscoverResult();
        this.prior =
          client.getProtocolEra() === 'modern' && discover ? { kind: 'modern', discover } : { kind: 'legacy' };
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
    this.callFailures = 0;
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
    if (!isModernConnection(client)) this.subscriptions.restore(client);
    this.logger.info(
      { protocolVersion: client.getNegotiatedProtocolVersion(), tools: catalogs.tools?.length ?? 0 },
      'upstream ready',
    );
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
        return new StreamableHTTPClientTransport(new URL(config.url), {
          requestInit: { headers: this.headers() },
          fetch: tolerantFetch((kind) => this.deviated(kind)),
        });
      case Transport.TRANSPORT_SSE:
        return new SSEClientTransport(new URL(config.url), { requestInit: { headers: this.headers() } });
      default:
        throw new PortcullisError('BAD_CONFIG', `upstream "${config.name}" has no transport`);
    }
  }

  private headers(): Record<string, string> {
    return Object.fromEntries(this.configValue.headers.filter((h) => h.name !== '').map((h) => [h.name, h.value]));
  }

  /** Re-lists the given catalogs; a change arriving while one is being listed lists it again afterwards. */
  private refresh(client: Client, kinds: readonly CatalogKind[]): void {
    for (const kind of kinds) {
      if (this.refreshing.has(kind)) {
        this.refreshAgain.add(kind);
        continue;
      }
      this.refreshing.add(kind);
      void outsideCalls(async () => {
        try {
          do {
            this.refreshAgain.delete(kind);
            const items = await listAll(client, kind, this.settingsValue.callTimeoutMs, this.logger);
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

  private onUpstreamNotification(
    client: Client,
    notification: { method: string; params?: Record<string, unknown> },
  ): void {
    const refreshes = LIST_CHANGED[notification.method];
    if (refreshes) {
      this.refresh(client, refreshes);
      return;
    }
    if (notification.method === 'notifications/cancelled' || notification.method === 'notifications/progress') return;
    const message: RpcMessage =
      notification.params === undefined
        ? { method: notification.method }
        : { method: notification.method, params: notification.params };
    if (this.relay.deliverNotification(message)) return;
    this.options.onNotification(this, message);
  }

  private startHealth(): void {
    clearInterval(this.healthTimer);
    this.healthTimer = setInterval(
      () => outsideCalls(() => void this.checkHealth()),
      this.settingsValue.healthIntervalMs,
    );
    this.healthTimer.unref();
  }

  /** A relayed request found the upstream unreachable: check now rather than at the next interval. */
  private checkSoon(): void {
    setImmediate(() => outsideCalls(() => void this.checkHealth()));
  }

  /** One health probe: `ping` (2025 era) or `server/discover` (2026-07-28, which has no ping). */
  private async checkHealth(): Promise<void> {
    const client = this.client;
    if (!client || this.checking || this.reinitializingValue || this.stopped) return;
    this.checking = true;
    const threshold = this.settingsValue.healthFailureThreshold;
    try {
      const timeout = Math.min(this.settingsValue.callTimeoutMs, Math.max(1_000, this.settingsValue.healthIntervalMs));
      if (client.getProtocolEra() === 'modern') await client.discover({ timeout });
      else await client.ping({ timeout });
      if (this.client !== client) return;
      this.healthFailures = 0;
      if (
        this.status.state === UpstreamState.UPSTREAM_STATE_DEGRADED &&
        this.callFailures < this.settingsValue.healthFailureThreshold
      ) {
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
      else if (
        this.status.state === UpstreamState.UPSTREAM_STATE_READY ||
        this.status.state === UpstreamState.UPSTREAM_STATE_DEGRADED
      ) {
        this.logger.warn({ err: reason }, 'upstream degraded');
        this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DEGRADED, error: reason });
      }
    } finally {
      this.checking = false;
    }
  }

  /** The upstream forgot the session: open a new connection in its place (once, however many callers noticed). */
  private reinitialize(old: Client, cause: unknown): Promise<void> {
    if (this.client !== old) return this.reinitializingValue ?? Promise.resolve();
    this.reinitializingValue ??= outsideCalls(async () => {
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
        this.reinitializingValue = undefined;
      }
    });
    return this.reinitializingValue;
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
    const what =
      this.configValue.transport === Transport.TRANSPORT_STDIO ? 'the server process exited' : 'the connection closed';
    this.fail(new Error(tail ? `${what}; its last output: ${tail}` : what), true);
  }

  /**
   * Records the failure and schedules the next attempt: fast exponential backoff with jitter, slow for auth/config
   * errors.
   */
  private fail(error: unknown, wasLive = false): void {
    if (this.stopped) return;
    if (wasLive && Date.now() - this.readySince >= STABLE_AFTER_MS) this.backoff.reset();
    const fatal = classifyFailure(error) === 'fatal';
    const reason = describeFailure(error);
    const delay = this.backoff.next(fatal ? FATAL_BACKOFF : TRANSIENT_BACKOFF);
    this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DOWN, error: reason });
    this.logger.warn({ err: reason, retryInMs: delay, fatal }, 'upstream unavailable');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => outsideCalls(() => void this.connect()), delay);
    this.retryTimer.unref();
  }

  private setStatus(change: Partial<UpstreamStatus>, catalogs: readonly CatalogKind[] = []): void {
    this.status = { ...this.status, ...change };
    this.options.onStatus(this, catalogs);
  }
}
