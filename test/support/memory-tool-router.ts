import { UriTemplate } from '@modelcontextprotocol/server';
import { PortcullisError } from '../../common/src/index.ts';
import { NAME_SEPARATOR } from '../../data-plane/src/policy/allow-list.ts';
import type { CallToolOptions, ExposedTool } from '../../data-plane/src/upstream/tool-router.ts';
import { UpstreamRpcError } from '../../data-plane/src/upstream/upstream-rpc-error.ts';
import type {
  CatalogEntry,
  CatalogKind,
  RelayOptions,
  RpcMessage,
  UpstreamInfo,
  UpstreamRouter,
} from '../../data-plane/src/upstream/upstream-router.ts';

/**
 * The relay options as a fake upstream's handlers see them: the call's cancellation also as an AbortSignal, as a real
 * upstream's SDK hands it on.
 */
export type HandlerOptions = RelayOptions & { readonly signal?: AbortSignal };

/** What a fake tool does when called: returns a CallToolResult, or throws (UpstreamRpcError, PortcullisError…). */
export type MemoryToolHandler = (
  args: Record<string, unknown> | undefined,
  options: HandlerOptions,
) => Promise<Record<string, unknown>> | Record<string, unknown>;

/** What a fake upstream answers to one relayed request (params as the upstream sees them). */
export type MemoryRequestHandler = (
  params: Record<string, unknown>,
  options: HandlerOptions,
) => Promise<Record<string, unknown>> | Record<string, unknown>;

export interface MemoryTool {
  readonly upstream: string;
  readonly name: string;
  readonly description?: string;
  readonly inputSchema?: Record<string, unknown>;
  readonly _meta?: Record<string, unknown>;
  readonly handler?: MemoryToolHandler;
  /** False for a tool whose upstream is down: calls reject with UPSTREAM_UNAVAILABLE. */
  readonly available?: boolean;
}

export interface MemoryPrompt {
  readonly upstream: string;
  readonly name: string;
  readonly description?: string;
  readonly arguments?: readonly { name: string; required?: boolean }[];
  /** Default: one user message echoing the arguments. */
  readonly handler?: MemoryRequestHandler;
}

export interface MemoryResource {
  readonly upstream: string;
  readonly uri: string;
  readonly name?: string;
  readonly mimeType?: string;
  readonly _meta?: Record<string, unknown>;
  /** The text `resources/read` returns (default: `content of <uri>`). */
  readonly text?: string;
}

export interface MemoryTemplate {
  readonly upstream: string;
  readonly uriTemplate: string;
  readonly name?: string;
}

export interface RecordedCall {
  readonly exposedName: string;
  readonly args: Record<string, unknown> | undefined;
  readonly options: CallToolOptions & HandlerOptions;
}

export interface RecordedRequest {
  readonly upstream: string;
  readonly message: RpcMessage;
  readonly options: HandlerOptions;
}

/** An echo of the `text` argument, like server-everything's `echo`. */
const echo: MemoryToolHandler = (args) => ({
  content: [{ type: 'text', text: `Echo: ${String(args?.['text'] ?? '')}` }],
});

/** The tools the HTTP transport tests serve: everything's echo and add (a + b as text), and secret's launch. */
export const HTTP_TEST_TOOLS: readonly MemoryTool[] = [
  { upstream: 'everything', name: 'echo' },
  {
    upstream: 'everything',
    name: 'add',
    handler: (args) => ({ content: [{ type: 'text', text: String(Number(args?.['a']) + Number(args?.['b'])) }] }),
  },
  { upstream: 'secret', name: 'launch' },
];

const KINDS: readonly CatalogKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates'];

/**
 * An UpstreamRouter over in-memory upstreams, for tests of the downstream side: tools, prompts,
 * resources and templates can be added and removed (firing onToolsChanged / onCatalogChanged),
 * any method can be given a handler per upstream, upstream notifications can be emitted, and
 * every relayed request is recorded with the options it was given.
 */
export class MemoryToolRouter implements UpstreamRouter {
  /** tools/call requests, by exposed name (the shape the tool tests read). */
  readonly calls: RecordedCall[] = [];
  /** Every relayed request and notification. */
  readonly requests: RecordedRequest[] = [];
  readonly notified: RecordedRequest[] = [];
  private readonly catalogs: Record<CatalogKind, CatalogEntry[]> = {
    tools: [],
    prompts: [],
    resources: [],
    resourceTemplates: [],
  };
  private readonly handlers = new Map<string, MemoryRequestHandler>();
  private readonly toolHandlers = new Map<string, MemoryToolHandler>();
  private readonly capabilityOverrides = new Map<string, Record<string, unknown>>();
  private readonly toolListeners = new Set<() => void>();
  private readonly catalogListeners = new Set<(kind: CatalogKind) => void>();
  private readonly notificationListeners = new Set<(upstream: string, notification: RpcMessage) => void>();
  private upstreamList: readonly UpstreamInfo[] = [];

  constructor(
    tools: readonly MemoryTool[] = [],
    more: {
      prompts?: readonly MemoryPrompt[];
      resources?: readonly MemoryResource[];
      templates?: readonly MemoryTemplate[];
    } = {},
  ) {
    for (const tool of tools) this.insertTool(tool);
    for (const prompt of more.prompts ?? []) this.insertPrompt(prompt);
    for (const resource of more.resources ?? []) this.insertResource(resource);
    for (const template of more.templates ?? []) this.insertTemplate(template);
    this.refreshUpstreams();
  }

  add(tool: MemoryTool): void {
    this.insertTool(tool);
    this.changed('tools');
  }

  remove(exposedName: string): void {
    this.catalogs.tools = this.catalogs.tools.filter((t) => t.key !== exposedName);
    this.toolHandlers.delete(exposedName);
    this.changed('tools');
  }

  addPrompt(prompt: MemoryPrompt): void {
    this.insertPrompt(prompt);
    this.changed('prompts');
  }

  addResource(resource: MemoryResource): void {
    this.insertResource(resource);
    this.changed('resources');
  }

  addTemplate(template: MemoryTemplate): void {
    this.insertTemplate(template);
    this.changed('resourceTemplates');
  }

  /** Answers `method` on `upstream` (overrides the built-in tools/call, prompts/get, resources/read answers). */
  handle(upstream: string, method: string, handler: MemoryRequestHandler): void {
    this.handlers.set(`${upstream} ${method}`, handler);
  }

  /** Replaces an upstream's declared capabilities (default: derived from what it offers). */
  setCapabilities(upstream: string, capabilities: Record<string, unknown>): void {
    this.capabilityOverrides.set(upstream, capabilities);
    this.refreshUpstreams();
  }

  /** The upstream sends a notification outside any request. */
  emit(upstream: string, notification: RpcMessage): void {
    for (const listener of this.notificationListeners) listener(upstream, notification);
  }

  // ToolRouter

  listTools(): readonly ExposedTool[] {
    return this.catalogs.tools.map((e) => ({
      exposedName: e.key,
      upstreamName: e.upstreamName,
      toolName: e.upstreamKey,
      definition: e.definition as ExposedTool['definition'],
    }));
  }

  findTool(exposedName: string): ExposedTool | undefined {
    return this.listTools().find((t) => t.exposedName === exposedName);
  }

  callTool(
    tool: ExposedTool,
    args: Record<string, unknown> | undefined,
    options: CallToolOptions = {},
  ): Promise<Record<string, unknown>> {
    return this.request(
      tool.upstreamName,
      { method: 'tools/call', params: { name: tool.toolName, arguments: args } },
      options,
    );
  }

  onToolsChanged(listener: () => void): () => void {
    this.toolListeners.add(listener);
    return () => this.toolListeners.delete(listener);
  }

  // UpstreamRouter

  upstreams(): readonly UpstreamInfo[] {
    return this.upstreamList;
  }

  catalog(kind: CatalogKind): readonly CatalogEntry[] {
    return this.catalogs[kind];
  }

  find(kind: CatalogKind, key: string): CatalogEntry | undefined {
    return this.catalogs[kind].find((e) => e.key === key);
  }

  routeResource(uri: string, usable: (upstream: string) => boolean = () => true): string | undefined {
    const listed = this.catalogs.resources.find((e) => e.key === uri && usable(e.upstreamName));
    if (listed !== undefined) return listed.upstreamName;
    return this.catalogs.resourceTemplates.find(
      (t) => usable(t.upstreamName) && new UriTemplate(t.key).match(uri) !== null,
    )?.upstreamName;
  }

  async request(upstreamName: string, message: RpcMessage, given: RelayOptions = {}): Promise<Record<string, unknown>> {
    // As a real upstream would: the call's cancellation as the AbortSignal its handlers listen to.
    const signal = given.cancellation?.signal();
    const options: HandlerOptions = signal === undefined ? given : { ...given, signal };
    this.requests.push({ upstream: upstreamName, message, options });
    const params = message.params ?? {};
    if (message.method === 'tools/call') {
      const exposedName = `${upstreamName}${NAME_SEPARATOR}${String(params['name'])}`;
      this.calls.push({ exposedName, args: params['arguments'] as Record<string, unknown> | undefined, options });
    }
    const custom = this.handlers.get(`${upstreamName} ${message.method}`);
    if (custom !== undefined) return custom(params, options);
    switch (message.method) {
      case 'tools/call': {
        const exposedName = `${upstreamName}${NAME_SEPARATOR}${String(params['name'])}`;
        const handler = this.toolHandlers.get(exposedName);
        if (handler === undefined)
          throw new PortcullisError('UPSTREAM_UNAVAILABLE', `upstream ${upstreamName} is not connected`);
        return handler(params['arguments'] as Record<string, unknown> | undefined, options);
      }
      case 'prompts/get': {
        const args = (params['arguments'] ?? {}) as Record<string, string>;
        return {
          description: `prompt ${String(params['name'])}`,
          messages: [
            { role: 'user', content: { type: 'text', text: `${String(params['name'])}(${JSON.stringify(args)})` } },
          ],
        };
      }
      case 'resources/read': {
        const uri = String(params['uri']);
        const listed = this.catalogs.resources.find((r) => r.upstreamName === upstreamName && r.key === uri);
        const text = (listed?.definition['_text'] as string | undefined) ?? `content of ${uri}`;
        return { contents: [{ uri, mimeType: 'text/plain', text }] };
      }
      case 'resources/subscribe':
      case 'resources/unsubscribe':
      case 'logging/setLevel':
        return {};
      default:
        throw new UpstreamRpcError(-32601, 'Method not found');
    }
  }

  async notify(upstreamName: string, message: RpcMessage): Promise<void> {
    this.notified.push({ upstream: upstreamName, message, options: {} });
  }

  onCatalogChanged(listener: (kind: CatalogKind) => void): () => void {
    this.catalogListeners.add(listener);
    return () => this.catalogListeners.delete(listener);
  }

  onUpstreamNotification(listener: (upstreamName: string, notification: RpcMessage) => void): () => void {
    this.notificationListeners.add(listener);
    return () => this.notificationListeners.delete(listener);
  }

  get listenerCount(): number {
    return this.toolListeners.size;
  }

  private insertTool(tool: MemoryTool): void {
    const exposedName = `${tool.upstream}${NAME_SEPARATOR}${tool.name}`;
    const definition: Record<string, unknown> = {
      name: exposedName,
      description: tool.description ?? `${tool.name} of ${tool.upstream}`,
      inputSchema: tool.inputSchema ?? { type: 'object', properties: { text: { type: 'string' } } },
    };
    if (tool._meta !== undefined) definition['_meta'] = tool._meta;
    this.put('tools', { upstreamName: tool.upstream, key: exposedName, upstreamKey: tool.name, definition });
    if (tool.available === false) this.toolHandlers.delete(exposedName);
    else this.toolHandlers.set(exposedName, tool.handler ?? echo);
  }

  private insertPrompt(prompt: MemoryPrompt): void {
    const exposedName = `${prompt.upstream}${NAME_SEPARATOR}${prompt.name}`;
    const definition: Record<string, unknown> = {
      name: exposedName,
      description: prompt.description ?? `${prompt.name} of ${prompt.upstream}`,
    };
    if (prompt.arguments !== undefined) definition['arguments'] = prompt.arguments;
    this.put('prompts', { upstreamName: prompt.upstream, key: exposedName, upstreamKey: prompt.name, definition });
    if (prompt.handler !== undefined) this.handlers.set(`${prompt.upstream} prompts/get`, prompt.handler);
  }

  private insertResource(resource: MemoryResource): void {
    const definition: Record<string, unknown> = {
      uri: resource.uri,
      name: resource.name ?? resource.uri,
      mimeType: resource.mimeType ?? 'text/plain',
    };
    if (resource._meta !== undefined) definition['_meta'] = resource._meta;
    // The text is kept non-enumerably so list results do not carry it.
    if (resource.text !== undefined)
      Object.defineProperty(definition, '_text', { value: resource.text, enumerable: false });
    this.put('resources', {
      upstreamName: resource.upstream,
      key: resource.uri,
      upstreamKey: resource.uri,
      definition,
    });
  }

  private insertTemplate(template: MemoryTemplate): void {
    this.put('resourceTemplates', {
      upstreamName: template.upstream,
      key: template.uriTemplate,
      upstreamKey: template.uriTemplate,
      definition: { uriTemplate: template.uriTemplate, name: template.name ?? template.uriTemplate },
    });
  }

  private put(kind: CatalogKind, entry: CatalogEntry): void {
    this.catalogs[kind] = [...this.catalogs[kind].filter((e) => e.key !== entry.key), entry];
  }

  private refreshUpstreams(): void {
    const names: string[] = [];
    for (const kind of KINDS)
      for (const entry of this.catalogs[kind]) if (!names.includes(entry.upstreamName)) names.push(entry.upstreamName);
    for (const name of this.capabilityOverrides.keys()) if (!names.includes(name)) names.push(name);
    this.upstreamList = names.map((name) => ({
      name,
      exposeUnprefixed: false,
      protocolVersion: '2025-11-25',
      capabilities: this.capabilityOverrides.get(name) ?? this.derivedCapabilities(name),
    }));
  }

  private derivedCapabilities(upstream: string): Record<string, unknown> {
    const offers = (kind: CatalogKind) => this.catalogs[kind].some((e) => e.upstreamName === upstream);
    const capabilities: Record<string, unknown> = {};
    if (offers('tools')) capabilities['tools'] = { listChanged: true };
    if (offers('prompts')) capabilities['prompts'] = { listChanged: true };
    if (offers('resources') || offers('resourceTemplates'))
      capabilities['resources'] = { subscribe: true, listChanged: true };
    return capabilities;
  }

  private changed(kind: CatalogKind): void {
    this.refreshUpstreams();
    if (kind === 'tools') for (const listener of this.toolListeners) listener();
    for (const listener of this.catalogListeners) listener(kind);
  }
}

/** The same class under the contract's name. */
export { MemoryToolRouter as MemoryUpstreamRouter };
