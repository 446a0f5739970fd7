import { EventEmitter } from 'node:events';
import type { Logger } from '../../../common/src/index.ts';
import type { UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { NAME_SEPARATOR } from '../policy/allow-list.ts';
import { UpstreamConnection, type UpstreamTimeouts } from './upstream-connection.ts';
import type { CallToolOptions, ExposedTool, ToolRouter } from './tool-router.ts';

export interface UpstreamPoolOptions {
  clientInfo: { name: string; version: string };
  timeouts: UpstreamTimeouts;
  logger: Logger;
  /** Called whenever an upstream's state or catalog changes (to report it to the control plane). */
  onStatus?: (connection: UpstreamConnection) => void;
}

/**
 * The node's upstream connections, one per configured upstream, shared by every agent, and the
 * merged tool catalog over them. `apply` reconciles with a snapshot: new upstreams connect,
 * removed ones close, changed ones (by config hash) reconnect; unchanged ones are left alone.
 */
export class UpstreamPool implements ToolRouter {
  private readonly options: UpstreamPoolOptions;
  private connections: UpstreamConnection[] = [];
  private merged: readonly ExposedTool[] = [];
  private byName: ReadonlyMap<string, ExposedTool> = new Map();
  private signature = '[]';
  private readonly events = new EventEmitter();

  constructor(options: UpstreamPoolOptions) {
    this.options = options;
  }

  get upstreams(): readonly UpstreamConnection[] {
    return this.connections;
  }

  apply(configs: readonly UpstreamConfig[]): void {
    const existing = new Map(this.connections.map((c) => [c.config.id, c]));
    const next: UpstreamConnection[] = [];
    const fresh: UpstreamConnection[] = [];
    for (const config of configs) {
      const current = existing.get(config.id);
      if (current && current.config.configHash === config.configHash && current.config.name === config.name) {
        next.push(current);
        existing.delete(config.id);
        continue;
      }
      const connection = new UpstreamConnection({
        config,
        clientInfo: this.options.clientInfo,
        timeouts: this.options.timeouts,
        logger: this.options.logger,
        onStatus: (c) => this.onStatus(c),
      });
      next.push(connection);
      fresh.push(connection);
    }
    this.connections = next;
    for (const stale of existing.values()) void stale.stop();
    for (const connection of fresh) connection.start();
    this.rebuild();
  }

  listTools(): readonly ExposedTool[] {
    return this.merged;
  }

  findTool(exposedName: string): ExposedTool | undefined {
    return this.byName.get(exposedName);
  }

  callTool(tool: ExposedTool, args: Record<string, unknown> | undefined, options?: CallToolOptions): Promise<Record<string, unknown>> {
    const connection = this.connections.find((c) => c.name === tool.upstreamName);
    if (!connection) return Promise.reject(new Error(`upstream "${tool.upstreamName}" is not configured`));
    return connection.callTool(tool.toolName, args, options);
  }

  onToolsChanged(listener: () => void): () => void {
    this.events.on('tools', listener);
    return () => this.events.off('tools', listener);
  }

  async close(): Promise<void> {
    const connections = this.connections;
    this.connections = [];
    await Promise.all(connections.map((c) => c.stop()));
  }

  private onStatus(connection: UpstreamConnection): void {
    if (!this.connections.includes(connection)) return;
    this.options.onStatus?.(connection);
    this.rebuild();
  }

  /** Recomputes the merged catalog; tells listeners only when the exposed tools changed. */
  private rebuild(): void {
    const merged: ExposedTool[] = [];
    for (const connection of this.connections) {
      for (const definition of connection.current.tools ?? []) {
        const exposedName = `${connection.name}${NAME_SEPARATOR}${definition.name}`;
        merged.push({ exposedName, upstreamName: connection.name, toolName: definition.name, definition: { ...definition, name: exposedName } });
      }
    }
    // Status changes are rare (connects, catalog refreshes), so a serialized comparison is cheap enough.
    const signature = JSON.stringify(merged.map((t) => t.definition));
    if (signature === this.signature) return;
    this.signature = signature;
    this.merged = merged;
    this.byName = new Map(merged.map((t) => [t.exposedName, t]));
    this.events.emit('tools');
  }
}
