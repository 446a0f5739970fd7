import { EventEmitter } from 'node:events';
import { PortcullisError, type Logger } from '../../../common/src/index.ts';
import { UpstreamState, type UpstreamConfig, type UpstreamReport } from '../../../proto/gen/portcullis/v1/config.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';
import { mergeCatalogs, routeResource, toolHash, type CatalogSource, type MergedCatalog } from './upstream-catalog.ts';
import { promptSummary, resourceSummary, resourceTemplateSummary, summarize } from './catalog-summary.ts';
import { UpstreamConnection } from './upstream-connection.ts';
import { CATALOG_KINDS, type UpstreamCatalogs } from './upstream-listing.ts';
import type { DeviationKind } from './upstream-deviations.ts';
import { UpstreamErrorCode } from './upstream-errors.ts';
import type {
  CatalogEntry,
  CatalogKind,
  RelayOptions,
  RpcMessage,
  UpstreamInfo,
  UpstreamRouter,
} from './upstream-router.ts';
import { connectionKey, type UpstreamDefaults } from './upstream-settings.ts';

/** JSON-RPC "invalid params": how an unknown tool is answered (the SDK server's wording). */
const INVALID_PARAMS = -32602;

export interface UpstreamPoolOptions {
  clientInfo: { name: string; version: string };
  /** What an upstream's snapshot leaves at 0. */
  defaults: UpstreamDefaults;
  logger: Logger;
  /** Called whenever what the node would report about an upstream changes (to send it to the control plane). */
  onReport?: (report: UpstreamReport) => void;
  /**
   * An upstream deviated from the spec in a way the node carries (upstream-deviations.ts); called each time, for the
   * metric.
   */
  onDeviation?: (upstream: string, kind: DeviationKind) => void;
}

/** The prompts, resources and templates part of a report, summarized and capped (catalog-summary.ts). */
function otherCatalogs(
  catalogs: UpstreamCatalogs | undefined,
): Pick<
  UpstreamReport,
  | 'hasPrompts'
  | 'prompts'
  | 'promptsTotal'
  | 'hasResources'
  | 'resources'
  | 'resourcesTotal'
  | 'hasResourceTemplates'
  | 'resourceTemplates'
  | 'resourceTemplatesTotal'
> {
  const prompts = summarize(catalogs?.prompts ?? [], promptSummary);
  const resources = summarize(catalogs?.resources ?? [], resourceSummary);
  const templates = summarize(catalogs?.resourceTemplates ?? [], resourceTemplateSummary);
  return {
    hasPrompts: catalogs?.prompts !== undefined,
    prompts: prompts.items,
    promptsTotal: prompts.total,
    hasResources: catalogs?.resources !== undefined,
    resources: resources.items,
    resourcesTotal: resources.total,
    hasResourceTemplates: catalogs?.resourceTemplates !== undefined,
    resourceTemplates: templates.items,
    resourceTemplatesTotal: templates.total,
  };
}

function serving(state: UpstreamState): boolean {
  return state === UpstreamState.UPSTREAM_STATE_READY || state === UpstreamState.UPSTREAM_STATE_DEGRADED;
}

/**
 * The node's upstream connections, one per configured upstream, shared by every agent, and the
 * merged catalogs over them. `apply` reconciles with a snapshot: new upstreams connect, removed
 * ones close, ones whose connection settings changed reconnect, and the rest take their new
 * settings (timeouts, health, pins, unprefixed names) in place.
 */
export class UpstreamPool implements UpstreamRouter {
  private readonly options: UpstreamPoolOptions;
  private connections: UpstreamConnection[] = [];
  private byName = new Map<string, UpstreamConnection>();
  private readonly keys = new WeakMap<UpstreamConnection, string>();
  private merged: MergedCatalog = mergeCatalogs([]);
  private heldBack = new Set<string>();
  private readonly signatures = new Map<CatalogKind, string>(CATALOG_KINDS.map((k) => [k, '[]']));
  private readonly reportedNotes = new Map<UpstreamConnection, string>();
  private readonly events = new EventEmitter();
  private closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.options = options;
    this.events.setMaxListeners(0);
  }

  /** The live connections, in configured order. */
  get connectionList(): readonly UpstreamConnection[] {
    return this.connections;
  }

  apply(configs: readonly UpstreamConfig[]): void {
    if (this.closed) return;
    const existing = new Map(this.connections.map((c) => [c.config.id, c]));
    const next: UpstreamConnection[] = [];
    const fresh: UpstreamConnection[] = [];
    const updated: UpstreamConnection[] = [];
    for (const config of configs) {
      const key = connectionKey(config);
      const current = existing.get(config.id);
      if (current && this.keys.get(current) === key) {
        current.update(config);
        next.push(current);
        updated.push(current);
        existing.delete(config.id);
        continue;
      }
      const connection = new UpstreamConnection({
        config,
        defaults: this.options.defaults,
        clientInfo: this.options.clientInfo,
        logger: this.options.logger,
        onStatus: (c, changed) => this.onStatus(c, changed),
        onNotification: (c, notification) => {
          if (this.byName.get(c.name) === c) this.events.emit('notification', c.name, notification);
        },
        onDeviation: (c, kind) => this.options.onDeviation?.(c.name, kind),
      });
      this.keys.set(connection, key);
      next.push(connection);
      fresh.push(connection);
    }
    this.connections = next;
    this.byName = new Map(next.map((c) => [c.name, c]));
    for (const stale of existing.values()) {
      this.reportedNotes.delete(stale);
      void stale.stop();
    }
    for (const connection of fresh) connection.start();
    this.rebuild();
    // Pins or unprefixed names may have changed what an unchanged connection exposes; its report carries the config
    // hash.
    for (const connection of updated) this.emitReport(connection);
  }

  /** Called whenever the merged tool list changes. Returns an unsubscribe function. */
  onToolsChanged(listener: () => void): () => void {
    this.events.on('tools', listener);
    return () => this.events.off('tools', listener);
  }

  // UpstreamRouter

  upstreams(): readonly UpstreamInfo[] {
    return this.connections
      .filter((c) => serving(c.current.state))
      .map((c) => ({
        name: c.name,
        exposeUnprefixed: c.config.exposeUnprefixed,
        capabilities: c.current.capabilities,
        protocolVersion: c.current.protocolVersion,
      }));
  }

  catalog(kind: CatalogKind): readonly CatalogEntry[] {
    return this.merged.entries[kind];
  }

  find(kind: CatalogKind, key: string): CatalogEntry | undefined {
    return this.merged.index[kind].get(key);
  }

  routeResource(uri: string, usable?: (upstream: string) => boolean): string | undefined {
    return routeResource(this.merged, uri, usable);
  }

  request(upstreamName: string, message: RpcMessage, options?: RelayOptions): Promise<Record<string, unknown>> {
    const connection = this.byName.get(upstreamName);
    if (!connection)
      return Promise.reject(
        new PortcullisError(UpstreamErrorCode.UNAVAILABLE, `upstream "${upstreamName}" is not configured`, {
          upstream: upstreamName,
        }),
      );
    if (
      message.method === 'tools/call' &&
      this.heldBack.has(heldBackKey(upstreamName, String(message.params?.['name'])))
    ) {
      return Promise.reject(
        new UpstreamRpcError(
          INVALID_PARAMS,
          `Tool ${String(message.params?.['name'])} is held back: its definition changed since it was pinned`,
        ),
      );
    }
    return connection.request(message, options);
  }

  notify(upstreamName: string, message: RpcMessage): Promise<void> {
    const connection = this.byName.get(upstreamName);
    if (!connection)
      return Promise.reject(
        new PortcullisError(UpstreamErrorCode.UNAVAILABLE, `upstream "${upstreamName}" is not configured`, {
          upstream: upstreamName,
        }),
      );
    return connection.notify(message);
  }

  onCatalogChanged(listener: (kind: CatalogKind) => void): () => void {
    this.events.on('catalog', listener);
    return () => this.events.off('catalog', listener);
  }

  onUpstreamNotification(listener: (upstreamName: string, notification: RpcMessage) => void): () => void {
    this.events.on('notification', listener);
    return () => this.events.off('notification', listener);
  }

  /** What the node reports to the control plane about one upstream. */
  report(connection: UpstreamConnection): UpstreamReport {
    const status = connection.current;
    const notes = this.merged.notes.get(connection.name) ?? [];
    const tools = status.catalogs?.tools;
    return {
      upstreamId: connection.config.id,
      configHash: connection.config.configHash,
      state: status.state,
      error: [status.error, ...notes].filter((s) => s !== undefined && s !== '').join('; '),
      hasCatalog: tools !== undefined,
      tools: (tools ?? []).map((tool) => ({
        name: tool['name'] as string,
        definitionJson: JSON.stringify(tool),
        definitionSha256: toolHash(tool),
      })),
      serverName: status.serverName ?? '',
      serverVersion: status.serverVersion ?? '',
      protocolVersion: status.protocolVersion ?? '',
      ...otherCatalogs(status.catalogs),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const connections = this.connections;
    this.connections = [];
    this.byName = new Map();
    await Promise.all(connections.map((c) => c.stop()));
  }

  private onStatus(connection: UpstreamConnection, _changed: readonly CatalogKind[]): void {
    if (this.byName.get(connection.name) !== connection) return;
    this.rebuild(connection);
    this.emitReport(connection);
  }

  private emitReport(connection: UpstreamConnection): void {
    this.reportedNotes.set(connection, (this.merged.notes.get(connection.name) ?? []).join('\n'));
    this.options.onReport?.(this.report(connection));
  }

  /**
   * Recomputes the merged catalogs; tells listeners which kinds changed, and re-reports other
   * upstreams whose notes changed (a collision or a pin moved with this change).
   */
  private rebuild(reporting?: UpstreamConnection): void {
    const sources: CatalogSource[] = this.connections.map((c) => ({
      upstreamName: c.name,
      exposeUnprefixed: c.config.exposeUnprefixed,
      pinToolDefinitions: c.config.pinToolDefinitions,
      pinnedTools: new Map(c.config.pinnedTools.map((p) => [p.name, p.definitionSha256])),
      catalogs: serving(c.current.state) ? c.current.catalogs : undefined,
    }));
    const merged = mergeCatalogs(sources);
    const heldBack = new Set<string>();
    for (const source of sources) {
      if (!source.pinToolDefinitions) continue;
      for (const tool of source.catalogs?.tools ?? []) {
        const pinned = source.pinnedTools.get(tool['name'] as string);
        if (pinned !== undefined && pinned !== toolHash(tool))
          heldBack.add(heldBackKey(source.upstreamName, tool['name'] as string));
      }
    }
    this.merged = merged;
    this.heldBack = heldBack;
    // Status changes are rare (connects, refreshes), so a serialized comparison is cheap enough.
    for (const kind of CATALOG_KINDS) {
      const signature = JSON.stringify(merged.entries[kind].map((e) => [e.upstreamName, e.definition]));
      if (signature === this.signatures.get(kind)) continue;
      this.signatures.set(kind, signature);
      this.events.emit('catalog', kind);
      if (kind === 'tools') this.events.emit('tools');
    }
    for (const connection of this.connections) {
      if (connection === reporting) continue;
      const notes = (merged.notes.get(connection.name) ?? []).join('\n');
      if ((this.reportedNotes.get(connection) ?? '') !== notes) this.emitReport(connection);
    }
    for (const [upstream, notes] of merged.notes) this.logNotes(upstream, notes);
  }

  private readonly loggedNotes = new Map<string, string>();

  private logNotes(upstream: string, notes: readonly string[]): void {
    const text = notes.join('\n');
    if (this.loggedNotes.get(upstream) === text) return;
    this.loggedNotes.set(upstream, text);
    for (const note of notes) this.options.logger.warn({ upstream }, note);
  }
}

function heldBackKey(upstream: string, tool: string): string {
  return `${upstream}\u0000${tool}`;
}
