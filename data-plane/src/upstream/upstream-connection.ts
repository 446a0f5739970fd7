import { Client, ProtocolError, SSEClientTransport, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import { z } from 'zod';
import { PortcullisError, errorMessage, type Logger } from '../../../common/src/index.ts';
import { Transport, UpstreamState, type UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { UpstreamRpcError, type CallToolOptions, type ToolDefinitionJson } from './tool-router.ts';

/** Any JSON object: results are relayed as the upstream sent them, not re-shaped by a schema. */
const PassthroughResult = z.looseObject({});
const ListToolsPage = z.looseObject({ tools: z.array(z.looseObject({ name: z.string() })), nextCursor: z.string().optional() });

export interface UpstreamTimeouts {
  connectMs: number;
  callMs: number;
}

export interface UpstreamStatus {
  readonly state: UpstreamState;
  readonly error: string | undefined;
  readonly tools: readonly ToolDefinitionJson[] | undefined;
  readonly serverName: string | undefined;
  readonly serverVersion: string | undefined;
  readonly protocolVersion: string | undefined;
}

export interface UpstreamConnectionOptions {
  config: UpstreamConfig;
  clientInfo: { name: string; version: string };
  timeouts: UpstreamTimeouts;
  logger: Logger;
  /** Called on every state or catalog change. */
  onStatus: (connection: UpstreamConnection) => void;
}

const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 30_000;

/**
 * One upstream MCP server as a node holds it: a single SDK client shared by every agent on the
 * node, its tool catalog, and its state. It reconnects with exponential backoff and jitter
 * when the connection fails or closes, and refreshes its catalog on `tools/list_changed`.
 */
export class UpstreamConnection {
  readonly config: UpstreamConfig;
  private readonly options: UpstreamConnectionOptions;
  private readonly logger: Logger;
  private client: Client | undefined;
  private status: UpstreamStatus = { state: UpstreamState.UPSTREAM_STATE_CONNECTING, error: undefined, tools: undefined, serverName: undefined, serverVersion: undefined, protocolVersion: undefined };
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: UpstreamConnectionOptions) {
    this.options = options;
    this.config = options.config;
    this.logger = options.logger.child({ upstream: options.config.name });
  }

  get name(): string {
    return this.config.name;
  }

  get current(): UpstreamStatus {
    return this.status;
  }

  /** Starts connecting in the background; progress is reported through `onStatus`. */
  start(): void {
    void this.connect();
  }

  /** Closes the connection for good (the upstream was removed or changed). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => undefined);
  }

  /** Calls a tool by its upstream name and resolves with the upstream's result, unchanged. */
  async callTool(toolName: string, args: Record<string, unknown> | undefined, options: CallToolOptions = {}): Promise<Record<string, unknown>> {
    const client = this.client;
    if (!client || this.status.state !== UpstreamState.UPSTREAM_STATE_READY) {
      throw new PortcullisError('UPSTREAM_UNAVAILABLE', `upstream "${this.name}" is not connected${this.status.error ? `: ${this.status.error}` : ''}`);
    }
    const params: Record<string, unknown> = { name: toolName };
    if (args !== undefined) params['arguments'] = args;
    if (options.meta !== undefined) params['_meta'] = options.meta;
    try {
      return await client.request({ method: 'tools/call', params }, PassthroughResult, { signal: options.signal, timeout: this.options.timeouts.callMs });
    } catch (error) {
      throw this.translateCallError(error);
    }
  }

  private translateCallError(error: unknown): Error {
    if (error instanceof ProtocolError) return new UpstreamRpcError(error.code, error.message, error.data);
    if (error instanceof PortcullisError) return error;
    return new PortcullisError('UPSTREAM_ERROR', `upstream "${this.name}" failed: ${errorMessage(error)}`, undefined, { cause: error });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setStatus({ state: UpstreamState.UPSTREAM_STATE_CONNECTING });
    const client = new Client(this.options.clientInfo, { versionNegotiation: { mode: 'auto' } });
    client.setNotificationHandler('notifications/tools/list_changed', () => void this.refreshTools(client));
    try {
      await client.connect(this.createTransport(), { timeout: this.options.timeouts.connectMs });
      if (this.stopped) {
        await client.close();
        return;
      }
      this.client = client;
      client.onclose = () => this.onClosed(client);
      const tools = await this.listAllTools(client);
      const server = client.getServerVersion();
      this.attempts = 0;
      this.setStatus({
        state: UpstreamState.UPSTREAM_STATE_READY,
        error: undefined,
        tools,
        serverName: server?.name,
        serverVersion: server?.version,
        protocolVersion: client.getNegotiatedProtocolVersion(),
      });
      this.logger.info({ tools: tools.length, protocolVersion: client.getNegotiatedProtocolVersion() }, 'upstream ready');
    } catch (error) {
      await client.close().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.fail(error);
    }
  }

  private createTransport() {
    const config = this.config;
    switch (config.transport) {
      case Transport.TRANSPORT_STDIO:
        return new StdioClientTransport({
          command: config.command,
          args: config.args,
          env: { ...getDefaultEnvironment(), ...Object.fromEntries(config.env.map((e) => [e.name, e.value])) },
          stderr: 'ignore',
        });
      case Transport.TRANSPORT_STREAMABLE_HTTP:
        return new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: Object.fromEntries(config.headers.map((h) => [h.name, h.value])) } });
      case Transport.TRANSPORT_SSE:
        return new SSEClientTransport(new URL(config.url), { requestInit: { headers: Object.fromEntries(config.headers.map((h) => [h.name, h.value])) } });
      default:
        throw new PortcullisError('BAD_CONFIG', `upstream "${config.name}" has no transport`);
    }
  }

  private async listAllTools(client: Client): Promise<ToolDefinitionJson[]> {
    const tools: ToolDefinitionJson[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.request({ method: 'tools/list', params: cursor ? { cursor } : {} }, ListToolsPage, { timeout: this.options.timeouts.callMs });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    return tools;
  }

  private async refreshTools(client: Client): Promise<void> {
    try {
      const tools = await this.listAllTools(client);
      if (this.client === client) this.setStatus({ tools });
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'refreshing the tool list failed');
    }
  }

  private onClosed(client: Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.fail(new Error('connection closed'));
  }

  /** Records the failure and schedules the next attempt with exponential backoff and full jitter. */
  private fail(error: unknown): void {
    if (this.stopped) return;
    const message = errorMessage(error);
    this.setStatus({ state: UpstreamState.UPSTREAM_STATE_DOWN, error: message });
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempts);
    this.attempts += 1;
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.logger.warn({ err: message, retryInMs: delay }, 'upstream unavailable');
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref();
  }

  private setStatus(change: Partial<UpstreamStatus>): void {
    this.status = { ...this.status, ...change };
    this.options.onStatus(this);
  }
}
