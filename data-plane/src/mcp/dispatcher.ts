import { randomBytes } from 'node:crypto';
import type { CallOutcome, DataPlaneMetrics } from '../observability/metrics.ts';
import { CallToolRequestParamsSchema, InitializeRequestParamsSchema } from '@modelcontextprotocol/core';
import type { Logger } from 'pino';
import { PortcullisError } from '../../../common/src/index.ts';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AllowList } from '../policy/allow-list.ts';
import { checkParamHeaders, paramHeaderDeclarations, type ParamHeaderMismatch } from './param-headers.ts';
import type { Principal } from '../policy/principal.ts';
import { UpstreamRpcError } from '../upstream/tool-router.ts';
import type { Cancellation } from '../upstream/cancellation.ts';
import type { CatalogKind, RelayOptions, RpcMessage, UpstreamRouter } from '../upstream/upstream-router.ts';
import type { LogLevels, ResourceSubscriptions } from './agent-state.ts';
import { InputExchange, InputExchanges, otherNodeRefusal, type InputExchangesOptions, type OtherNode } from './input-required.ts';
import { decodeCursor, LIST_FIELD, type CatalogViews } from './catalog-views.ts';
import { askIfDeclared } from './agent-capabilities.ts';
import { errorBody, isPlainObject, resultBody, type RpcId, type RpcReply } from './json-rpc.ts';
import {
  CLIENT_CAPABILITIES_META_KEY,
  ENVELOPE_META_KEYS,
  LATEST_LEGACY_PROTOCOL_VERSION,
  LEGACY_PROTOCOL_VERSIONS,
  LIST_CACHE_SCOPE,
  MODERN_PROTOCOL_VERSIONS,
  RpcErrorCode,
  SERVER_INFO_META_KEY,
  isModernProtocolVersion,
  mergeUpstreamCapabilities,
} from './protocol.ts';
import { isPlainCallToolParams } from './sdk-shapes.ts';
import { signSessionToken } from './session-token.ts';
import { unwrapTaskId, wrapTaskId } from './task-ids.ts';

export type ProtocolEra = 'modern' | 'legacy';

/** One JSON-RPC request as the HTTP layer hands it over: already shape-checked by the SDK schemas. */
export interface RpcRequest {
  readonly id: string | number;
  readonly method: string;
  readonly params?: Record<string, unknown> | undefined;
}

/**
 * The back channel of one request: notifications related to it (progress, log messages) and
 * server-to-client requests, sent on its SSE response (or, on the legacy HTTP+SSE transport, on
 * the session's stream).
 */
export interface RequestChannel {
  notify(method: string, params: Record<string, unknown> | undefined): void;
  /** Whether the agent can be asked on this channel (2025 era); 2026-07-28 agents are answered `input_required` instead. */
  readonly canRequest: boolean;
  /** Asks the agent (elicitation, sampling, roots) and resolves with its result; rejects with UpstreamRpcError for its error. */
  request(message: RpcMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>>;
}

export interface DispatchContext {
  readonly principal: Principal;
  readonly era: ProtocolEra;
  /** Aborts when the agent's connection goes away or it cancels (`signal()` makes an AbortSignal for the calls that need one). */
  readonly cancellation: Cancellation;
  /** The session keys of the snapshot being served (task ids are signed with them). */
  readonly sessionKeys: readonly SigningKey[];
  /** 2025 era: the session's id (resource subscriptions and log level live under it on this node). */
  readonly sessionId?: string;
  /** 2025 era: the client capabilities the agent declared at `initialize`, when known (server-to-client requests are sent only for those). */
  readonly agentCapabilities?: unknown;
  /** Absent where the transport cannot stream an answer (batches): related notifications are dropped there. */
  readonly channel?: RequestChannel;
  /** performance.now() when the HTTP request was taken up (for the gateway-overhead histogram). */
  readonly receivedAt?: number;
  /** The request was relayed here by another node: it is served here or refused, never relayed on. */
  readonly relayed?: boolean;
}

/** Relays a 2026-07-28 retry to the node holding its parked call and answers with what that node answered. */
export type RetryForwarder = (request: RpcRequest, context: DispatchContext, other: OtherNode) => Promise<RpcReply>;

/** How relayWithInput starts, resumes and finishes one kind of request. */
interface InputRelay {
  /** The upstream and message of a new upstream call with these params, or the refusal when the key may not make it. */
  target(params: Record<string, unknown>): { readonly upstream: string; readonly message: RpcMessage } | RpcReply;
  /** Undefined when the key may still use `upstream` for this subject; else the refusal (as for an unknown subject). */
  mayResume(upstream: string): RpcReply | undefined;
  /** The serialized result. */
  complete(result: Record<string, unknown>, upstream: string): string;
  failed?(error: unknown, upstream: string): void;
}

export interface InitializeReply extends RpcReply {
  /** The signed session id to send as `Mcp-Session-Id` (absent when the request was refused). */
  readonly sessionId?: string;
  /** The negotiated revision (absent when refused). */
  readonly protocolVersion?: string;
}

export interface ServerInfo {
  readonly name: string;
  readonly version: string;
}

export interface McpDispatcherOptions {
  readonly router: UpstreamRouter;
  readonly views: CatalogViews;
  readonly subscriptions: ResourceSubscriptions;
  readonly logLevels: LogLevels;
  readonly serverInfo: ServerInfo;
  readonly logger: Logger;
  /** `ttlMs` of 2026-07-28 list results. */
  readonly listTtlMs: number;
  /** Where tool calls are measured; absent, nothing is. */
  readonly metrics?: DataPlaneMetrics;
  /** This node's name, put in the request state of `input_required` results (default: a random tag). */
  readonly nodeId?: string;
  /** This node process's tag (of its hello), put there too, so that other nodes relay retries here. */
  readonly nodeTag?: string;
  /** How calls waiting for a 2026-07-28 agent's input are held (defaults: DEFAULT_INPUT_EXCHANGE_OPTIONS). */
  readonly inputExchanges?: Partial<Omit<InputExchangesOptions, 'nodeId'>>;
}

const OK = 200;
const BAD_REQUEST = 400;
/** The SDK answers an unknown method on the 2026-07-28 path from its validation ladder, with HTTP 404. */
const MODERN_METHOD_NOT_FOUND_STATUS = 404;

const LIST_METHODS: Readonly<Record<string, CatalogKind>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
};

/** Methods removed in 2026-07-28 (the SDK answers them there as unknown methods). */
const LEGACY_ONLY_METHODS: ReadonlySet<string> = new Set(['ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']);

/**
 * Answers MCP requests for both protocol eras without an SDK server: the responses are built
 * from pre-serialized fragments (catalog pages per allow-list, server identity, capabilities) so
 * the hot path does one JSON.stringify of the upstream result and nothing else. Requests for one
 * upstream are relayed to it with names un-prefixed; progress, related notifications and
 * server-to-client requests travel on the request's channel.
 */
export class McpDispatcher {
  private readonly router: UpstreamRouter;
  private readonly views: CatalogViews;
  private readonly subscriptions: ResourceSubscriptions;
  private readonly logLevels: LogLevels;
  private readonly logger: Logger;
  private readonly metrics: DataPlaneMetrics | undefined;
  private readonly serverInfo: ServerInfo;
  private readonly serverMeta: string;
  /** `,"resultType":"complete","ttlMs":…,"cacheScope":"private","_meta":{serverInfo}`, appended to modern list results. */
  private readonly modernListSuffix: string;
  private readonly modernSuffix: string;
  private readonly serverInfoJson: string;
  /** Calls parked on this node until a 2026-07-28 agent retries with the input they need. */
  readonly exchanges: InputExchanges;
  /** Where retries of calls parked on other nodes go; unset, they are refused naming that node. */
  private forwardRetry: RetryForwarder | undefined;

  constructor(options: McpDispatcherOptions) {
    this.exchanges = new InputExchanges({ ...options.inputExchanges, nodeId: options.nodeId ?? `node-${randomBytes(4).toString('hex')}`, ...(options.nodeTag === undefined ? {} : { nodeTag: options.nodeTag }) });
    this.router = options.router;
    this.views = options.views;
    this.subscriptions = options.subscriptions;
    this.logLevels = options.logLevels;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.serverInfo = { name: options.serverInfo.name, version: options.serverInfo.version };
    this.serverInfoJson = JSON.stringify(this.serverInfo);
    this.serverMeta = JSON.stringify({ [SERVER_INFO_META_KEY]: this.serverInfo });
    this.modernSuffix = `,"resultType":"complete","_meta":${this.serverMeta}`;
    this.modernListSuffix = `,"resultType":"complete","ttlMs":${options.listTtlMs},"cacheScope":"${LIST_CACHE_SCOPE}","_meta":${this.serverMeta}`;
  }

  /** Retries of calls parked on other nodes are relayed there with `forward` (set once the relay exists). */
  relayRetriesWith(forward: RetryForwarder): void {
    this.forwardRetry = forward;
  }

  /** What the gateway advertises right now: the merged upstreams' capabilities. */
  capabilities(era: ProtocolEra): Record<string, unknown> {
    return mergeUpstreamCapabilities(this.router.upstreams(), era);
  }

  /**
   * A 2026-07-28 `tools/call` whose `Mcp-Param-*` headers disagree with its arguments (SEP-2243), as
   * the tool the key may call declares them: the rejection, else undefined. `header` reads a request header.
   */
  paramHeaderMismatch(request: RpcRequest, allowList: AllowList, header: (name: string) => string | undefined): ParamHeaderMismatch | undefined {
    if (request.method !== 'tools/call') return undefined;
    const name = request.params?.['name'];
    const tool = typeof name === 'string' ? this.views.findAllowed(allowList, 'tools', name) : undefined;
    if (tool === undefined) return undefined;
    const declarations = paramHeaderDeclarations(tool.definition['inputSchema']);
    return declarations.length === 0 ? undefined : checkParamHeaders(declarations, request.params?.['arguments'], header);
  }

  /** A 2025-era `initialize`: negotiates the revision and hands out a signed, self-contained session id. */
  initialize(request: RpcRequest, principal: Principal, sessionKeys: readonly SigningKey[]): InitializeReply {
    const parsed = InitializeRequestParamsSchema.safeParse(request.params);
    if (!parsed.success) {
      return { status: OK, body: errorBody(request.id, RpcErrorCode.InvalidParams, `Invalid initialize request: ${parsed.error.message}`) };
    }
    const requested = parsed.data.protocolVersion;
    const protocolVersion = LEGACY_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_LEGACY_PROTOCOL_VERSION;
    const sessionId = signSessionToken(
      {
        keyId: principal.keyId,
        protocolVersion,
        clientInfo: request.params?.['clientInfo'],
        clientCapabilities: request.params?.['capabilities'],
        issuedAt: Math.floor(Date.now() / 1000),
      },
      sessionKeys,
    );
    const result = `{"protocolVersion":${JSON.stringify(protocolVersion)},"capabilities":${JSON.stringify(this.capabilities('legacy'))},"serverInfo":${this.serverInfoJson}}`;
    return { status: OK, body: resultBody(request.id, result), sessionId, protocolVersion };
  }

  /** Any other request, of either era. */
  async dispatch(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const modern = context.era === 'modern';
    const method = request.method;
    const listKind = LIST_METHODS[method];
    if (listKind !== undefined) return this.list(request, context, listKind);
    if (modern && LEGACY_ONLY_METHODS.has(method)) return methodNotFound(request.id, modern);
    switch (method) {
      case 'tools/call':
        return this.callTool(request, context);
      case 'prompts/get':
        return this.getPrompt(request, context);
      case 'resources/read':
        return this.readResource(request, context);
      case 'completion/complete':
        return this.complete(request, context);
      case 'server/discover':
        if (modern) return { status: OK, body: resultBody(request.id, this.discoverJson()) };
        break;
      case 'ping':
        return { status: OK, body: resultBody(request.id, '{}') };
      case 'logging/setLevel':
        return this.setLevel(request, context);
      case 'resources/subscribe':
      case 'resources/unsubscribe':
        return this.subscription(request, context);
      case 'tasks/get':
      case 'tasks/result':
      case 'tasks/cancel':
        return this.taskRequest(request, context);
      case 'tasks/list':
        return this.listTasks(request, context);
      default:
        break;
    }
    return methodNotFound(request.id, modern);
  }

  private discoverJson(): string {
    return `{"supportedVersions":${JSON.stringify(MODERN_PROTOCOL_VERSIONS)},"capabilities":${JSON.stringify(this.capabilities('modern'))}${this.modernListSuffix}}`;
  }

  private list(request: RpcRequest, context: DispatchContext, kind: CatalogKind): RpcReply {
    const cursor = request.params?.['cursor'];
    let offset = 0;
    if (cursor !== undefined) {
      const decoded = typeof cursor === 'string' ? decodeCursor(cursor) : undefined;
      if (decoded === undefined) return { status: OK, body: errorBody(request.id, RpcErrorCode.InvalidParams, 'Invalid params: unknown cursor') };
      offset = decoded;
    }
    const page = this.views.page(context.principal.allowList, kind, offset);
    if (page === undefined) return { status: OK, body: errorBody(request.id, RpcErrorCode.InvalidParams, 'Invalid params: unknown cursor') };
    const next = page.nextCursor === undefined ? '' : `,"nextCursor":"${page.nextCursor}"`;
    return { status: OK, body: resultBody(request.id, `{"${LIST_FIELD[kind]}":${page.json}${next}${context.era === 'modern' ? this.modernListSuffix : ''}}`) };
  }

  private async callTool(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const id = request.id;
    const checked = isPlainCallToolParams(request.params) ? undefined : CallToolRequestParamsSchema.safeParse(request.params);
    if (checked?.success === false) return { status: OK, body: errorBody(id, RpcErrorCode.InvalidParams, `Invalid tools/call request: ${checked.error.message}`) };
    const params = request.params as Record<string, unknown>;
    const name = params['name'] as string;
    const started = context.receivedAt ?? performance.now();
    const upstreamStarted = performance.now();
    if (context.era === 'modern') {
      const measure = (upstream: string, outcome: CallOutcome) => this.metrics?.toolCall(upstream, outcome, (performance.now() - started) / 1000, (performance.now() - upstreamStarted) / 1000);
      return this.relayWithInput(request, context, name, {
        target: (forward) => {
          const tool = this.views.findAllowed(context.principal.allowList, 'tools', name);
          if (tool === undefined) return { status: OK, body: toolNotFound(id, name) };
          return { upstream: tool.upstreamName, message: { method: 'tools/call', params: forwardParams(withName(forward, 'name', tool.upstreamKey)) } };
        },
        mayResume: (upstream) => (context.principal.allowList.allows(name, upstream) ? undefined : { status: OK, body: toolNotFound(id, name) }),
        complete: (result, upstream) => {
          measure(upstream, result['isError'] === true ? 'tool_error' : 'ok');
          return this.finish(params['task'] !== undefined && isPlainObject(result['task']) ? this.wrapTask(result, upstream, context) : result, context);
        },
        failed: (error, upstream) => measure(upstream, error instanceof UpstreamRpcError ? 'rpc_error' : 'unavailable'),
      });
    }
    const tool = this.views.findAllowed(context.principal.allowList, 'tools', name);
    // Unknown and forbidden are answered identically: a key cannot learn what exists beyond its allow-list.
    if (tool === undefined) return { status: OK, body: toolNotFound(id, name) };
    const upstream = tool.upstreamName;
    let upstreamMs = 0;
    try {
      let result = await this.router.request(upstream, { method: 'tools/call', params: forwardParams(withName(params, 'name', tool.upstreamKey)) }, this.relayOptions(params, context, upstream));
      upstreamMs = performance.now() - upstreamStarted;
      // Task-augmented call: the upstream answered CreateTaskResult; its task id is wrapped to name the upstream.
      if (params['task'] !== undefined && isPlainObject(result['task'])) result = this.wrapTask(result, upstream, context);
      const body = resultBody(id, this.finish(result, context));
      this.metrics?.toolCall(upstream, result['isError'] === true ? 'tool_error' : 'ok', (performance.now() - started) / 1000, upstreamMs / 1000);
      return { status: OK, body };
    } catch (error) {
      if (upstreamMs === 0) upstreamMs = performance.now() - upstreamStarted;
      const body = this.failure(id, upstream, name, error);
      this.metrics?.toolCall(upstream, error instanceof UpstreamRpcError ? 'rpc_error' : 'unavailable', (performance.now() - started) / 1000, upstreamMs / 1000);
      return { status: OK, body };
    }
  }

  private async getPrompt(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const params = request.params;
    const name = params?.['name'];
    if (typeof name !== 'string') return invalidParams(request.id, 'Invalid prompts/get request: name must be a string');
    if (context.era === 'modern') {
      return this.relayWithInput(request, context, name, {
        target: (forward) => {
          const prompt = this.views.findAllowed(context.principal.allowList, 'prompts', name);
          if (prompt === undefined) return invalidParams(request.id, `Prompt ${name} not found`);
          return { upstream: prompt.upstreamName, message: { method: request.method, params: forwardParams(withName(forward, 'name', prompt.upstreamKey)) } };
        },
        mayResume: (upstream) => (context.principal.allowList.allows(name, upstream) ? undefined : invalidParams(request.id, `Prompt ${name} not found`)),
        complete: (result) => this.finish(result, context),
      });
    }
    const prompt = this.views.findAllowed(context.principal.allowList, 'prompts', name);
    if (prompt === undefined) return invalidParams(request.id, `Prompt ${name} not found`);
    return this.relay(request, context, prompt.upstreamName, withName(params!, 'name', prompt.upstreamKey), name);
  }

  private async readResource(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const uri = request.params?.['uri'];
    if (typeof uri !== 'string') return invalidParams(request.id, 'Invalid resources/read request: uri must be a string');
    const params = request.params!;
    if (context.era === 'modern') {
      return this.relayWithInput(request, context, uri, {
        target: (forward) => {
          const upstream = this.resourceUpstream(uri, context);
          return upstream === undefined ? resourceNotFound(request.id, uri) : { upstream, message: { method: 'resources/read', params: forwardParams(forward) } };
        },
        mayResume: (upstream) => (this.views.mayUseUpstream(context.principal.allowList, upstream) ? undefined : resourceNotFound(request.id, uri)),
        // 2026-07-28 reads are cacheable: private (what a key may read depends on the key), the upstream's TTL if it gave one.
        complete: (result) => this.finish({ ...result, ttlMs: typeof result['ttlMs'] === 'number' ? result['ttlMs'] : 0, cacheScope: LIST_CACHE_SCOPE }, context),
      });
    }
    const upstream = this.resourceUpstream(uri, context);
    if (upstream === undefined) return resourceNotFound(request.id, uri);
    try {
      const result = await this.router.request(upstream, { method: 'resources/read', params: forwardParams(params) }, this.relayOptions(params, context, upstream));
      return { status: OK, body: resultBody(request.id, this.finish(result, context)) };
    } catch (error) {
      return { status: OK, body: this.failure(request.id, upstream, uri, error) };
    }
  }

  private async complete(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const params = request.params;
    const ref = params?.['ref'];
    if (!isPlainObject(ref)) return invalidParams(request.id, 'Invalid completion/complete request: ref is required');
    if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') {
      const prompt = this.views.findAllowed(context.principal.allowList, 'prompts', ref['name']);
      if (prompt === undefined) return invalidParams(request.id, `Prompt ${ref['name']} not found`);
      return this.relay(request, context, prompt.upstreamName, { ...params, ref: { ...ref, name: prompt.upstreamKey } }, ref['name']);
    }
    if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') {
      const uri = ref['uri'];
      const template = this.router.find('resourceTemplates', uri);
      const upstream = template !== undefined && this.views.mayUseUpstream(context.principal.allowList, template.upstreamName) ? template.upstreamName : this.resourceUpstream(uri, context);
      if (upstream === undefined) return invalidParams(request.id, `Resource template ${uri} not found`);
      return this.relay(request, context, upstream, params!, uri);
    }
    return invalidParams(request.id, 'Invalid completion/complete request: ref must be ref/prompt or ref/resource');
  }

  private setLevel(request: RpcRequest, context: DispatchContext): RpcReply {
    const level = request.params?.['level'];
    if (typeof level !== 'string' || context.sessionId === undefined || !this.logLevels.set(context.sessionId, level)) {
      return invalidParams(request.id, `Invalid logging/setLevel request: unknown level ${String(level)}`);
    }
    return { status: OK, body: resultBody(request.id, '{}') };
  }

  private async subscription(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const uri = request.params?.['uri'];
    if (typeof uri !== 'string') return invalidParams(request.id, `Invalid ${request.method} request: uri must be a string`);
    const sessionId = context.sessionId;
    if (sessionId === undefined) return methodNotFound(request.id, false);
    if (request.method === 'resources/unsubscribe') {
      this.subscriptions.unsubscribe(sessionId, uri);
      return { status: OK, body: resultBody(request.id, '{}') };
    }
    const upstream = this.resourceUpstream(uri, context);
    if (upstream === undefined) return resourceNotFound(request.id, uri);
    try {
      await this.subscriptions.subscribe(sessionId, uri, upstream, forwardableMeta(request.params?.['_meta']));
      return { status: OK, body: resultBody(request.id, '{}') };
    } catch (error) {
      if (error instanceof RangeError) return invalidParams(request.id, error.message);
      return { status: OK, body: this.failure(request.id, upstream, uri, error) };
    }
  }

  private async taskRequest(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const wrapped = request.params?.['taskId'];
    const task = typeof wrapped === 'string' ? unwrapTaskId(wrapped, context.principal.keyId, context.sessionKeys) : undefined;
    if (task === undefined || !this.views.mayUseUpstream(context.principal.allowList, task.upstream)) {
      return invalidParams(request.id, `Task not found: ${String(wrapped)}`);
    }
    const params = { ...request.params, taskId: task.taskId };
    try {
      let result = await this.router.request(task.upstream, { method: request.method, params: forwardParams(params) }, this.relayOptions(params, context, task.upstream));
      result = this.rewriteTaskIds(result, task.upstream, context);
      return { status: OK, body: resultBody(request.id, this.finish(result, context)) };
    } catch (error) {
      return { status: OK, body: this.failure(request.id, task.upstream, request.method, error) };
    }
  }

  /**
   * `tasks/list` over every upstream declaring `tasks.list` the key may use, merged (first page of
   * each). Upstream connections are shared, so only tasks this key created are returned: the
   * upstream's ids are re-wrapped for the key and kept when the key created them on this node.
   */
  private async listTasks(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const allowList = context.principal.allowList;
    const upstreams = this.router.upstreams().filter((u) => {
      const tasks = u.capabilities?.['tasks'];
      return isPlainObject(tasks) && tasks['list'] !== undefined && this.views.mayUseUpstream(allowList, u.name);
    });
    const owned = this.createdTasks.get(context.principal.keyId);
    const tasks: unknown[] = [];
    for (const upstream of upstreams) {
      try {
        const result = await this.router.request(upstream.name, { method: 'tasks/list', params: {} }, { cancellation: context.cancellation });
        for (const task of Array.isArray(result['tasks']) ? result['tasks'] : []) {
          if (!isPlainObject(task) || typeof task['taskId'] !== 'string') continue;
          const wrapped = wrapTaskId({ upstream: upstream.name, taskId: task['taskId'] }, context.principal.keyId, context.sessionKeys);
          if (owned?.has(wrapped)) tasks.push({ ...task, taskId: wrapped });
        }
      } catch (error) {
        this.logger.debug({ err: error, upstream: upstream.name }, 'tasks/list failed on one upstream');
      }
    }
    return { status: OK, body: resultBody(request.id, this.finish({ tasks }, context)) };
  }

  /** Wrapped ids of the tasks each key created through this node (bounded), for tasks/list. */
  private readonly createdTasks = new Map<string, Set<string>>();

  private wrapTask(result: Record<string, unknown>, upstream: string, context: DispatchContext): Record<string, unknown> {
    const rewritten = this.rewriteTaskIds(result, upstream, context);
    const taskId = (rewritten['task'] as Record<string, unknown>)['taskId'];
    if (typeof taskId === 'string') {
      let owned = this.createdTasks.get(context.principal.keyId);
      if (owned === undefined) this.createdTasks.set(context.principal.keyId, (owned = new Set()));
      owned.add(taskId);
      if (owned.size > 1000) owned.delete(owned.values().next().value!);
    }
    return rewritten;
  }

  /** Wraps the upstream task ids in a result (`task.taskId`, `taskId`, related-task `_meta`). */
  rewriteTaskIds(result: Record<string, unknown>, upstream: string, context: { principal: Principal; sessionKeys: readonly SigningKey[] }): Record<string, unknown> {
    const wrap = (taskId: unknown) => (typeof taskId === 'string' ? wrapTaskId({ upstream, taskId }, context.principal.keyId, context.sessionKeys) : taskId);
    let out = result;
    if (isPlainObject(result['task'])) out = { ...out, task: { ...result['task'], taskId: wrap(result['task']['taskId']) } };
    if (typeof result['taskId'] === 'string') out = { ...out, taskId: wrap(result['taskId']) };
    const meta = result['_meta'];
    const related = isPlainObject(meta) ? meta['io.modelcontextprotocol/related-task'] : undefined;
    if (isPlainObject(meta) && isPlainObject(related)) out = { ...out, _meta: { ...meta, 'io.modelcontextprotocol/related-task': { ...related, taskId: wrap(related['taskId']) } } };
    return out;
  }

  /** Relays a request to one upstream and answers with its result as it came. */
  private async relay(request: RpcRequest, context: DispatchContext, upstream: string, params: Record<string, unknown>, subject: string): Promise<RpcReply> {
    try {
      const result = await this.router.request(upstream, { method: request.method, params: forwardParams(params) }, this.relayOptions(params, context, upstream));
      return { status: OK, body: resultBody(request.id, this.finish(result, context)) };
    } catch (error) {
      return { status: OK, body: this.failure(request.id, upstream, subject, error) };
    }
  }

  /** The upstream serving `uri`, if the key may use it. */
  private resourceUpstream(uri: string, context: DispatchContext): string | undefined {
    return this.visibleResourceUpstream(uri, context.principal.allowList);
  }

  /** The upstream serving `uri`, if this allow-list may use it. */
  visibleResourceUpstream(uri: string, allowList: AllowList): string | undefined {
    return this.router.routeResource(uri, (upstream) => this.views.mayUseUpstream(allowList, upstream));
  }

  /**
   * A 2026-07-28 request relayed to one upstream, which may need the agent's input on the way
   * (see input-required.ts). Without `requestState` it starts the upstream call on `how.target()`;
   * with one it is a retry: its `inputResponses` complete the parked requests of the call that
   * state names, whose upstream the key must still be allowed to use (`how.mayResume`) even if
   * that upstream has gone from the catalog since. Either way the agent is answered with the
   * call's next outcome: `how.complete(result)`, an error (after `how.failed`), or
   * `input_required` with a new request state.
   */
  private async relayWithInput(request: RpcRequest, context: DispatchContext, subject: string, how: InputRelay): Promise<RpcReply> {
    const params = request.params ?? {};
    let forward = params;
    let roundOf: string | undefined;
    if (params['requestState'] !== undefined) {
      const resumed = this.exchanges.resume(params['requestState'], context.principal.keyId, request.method, subject, context.sessionKeys);
      if ('code' in resumed) return { status: OK, body: errorBody(request.id, resumed.code, resumed.message, resumed.data) };
      if (!(resumed instanceof InputExchange) && resumed.kind === 'other-node') return this.retryElsewhere(request, context, resumed);
      const refused = how.mayResume(resumed.upstream);
      if (refused !== undefined) return refused;
      if (resumed instanceof InputExchange) {
        resumed.answer(params['inputResponses']);
        return this.nextOutcome(request, context, subject, how, resumed);
      }
      // A 2026-07-28 upstream's own round: call it again with its state (the responses go as they came).
      const { requestState: _, ...rest } = params;
      forward = resumed.upstreamState === undefined ? rest : { ...rest, requestState: resumed.upstreamState };
      roundOf = resumed.upstream;
    }
    const target = how.target(forward);
    if ('body' in target) return target;
    if (roundOf !== undefined && target.upstream !== roundOf) {
      return { status: OK, body: errorBody(request.id, RpcErrorCode.InputNotAwaited, `requestState can no longer be answered: ${subject} is served by another upstream now; call again without it`, { reason: 'moved' }) };
    }
    const exchange = this.exchanges.start(context.principal.keyId, request.method, subject, target.upstream, context.sessionKeys);
    exchange.bind(context.channel, progressTokenOf(params));
    exchange.attach(this.router.request(target.upstream, target.message, this.exchangeRelayOptions(forward, context, target.upstream, exchange)));
    return this.nextOutcome(request, context, subject, how, exchange);
  }

  /**
   * A retry of a call parked on another node: relayed there, which checks it as its own (key,
   * signature, expiry, one-shot) and answers; refused naming that node when it cannot be relayed.
   */
  private retryElsewhere(request: RpcRequest, context: DispatchContext, other: OtherNode): Promise<RpcReply> | RpcReply {
    const why = context.relayed ? 'the retry was relayed here from another node already' : this.forwardRetry === undefined ? 'this node relays no retries' : other.nodeTag === undefined ? 'the requestState does not name that node\'s process' : undefined;
    if (why !== undefined || this.forwardRetry === undefined) {
      const refusal = otherNodeRefusal(other, this.exchanges.options.nodeId, why ?? '');
      return { status: OK, body: errorBody(request.id, refusal.code, refusal.message, refusal.data) };
    }
    return this.forwardRetry(request, context, other);
  }

  /** Answers the agent request with what the exchange does next (see relayWithInput). */
  private async nextOutcome(request: RpcRequest, context: DispatchContext, subject: string, how: InputRelay, exchange: InputExchange): Promise<RpcReply> {
    const outcome = await exchange.next(context.cancellation.signal(), context.channel, progressTokenOf(request.params));
    if (outcome.kind === 'input') return { status: OK, body: resultBody(request.id, this.inputRequiredJson(outcome.inputRequests, outcome.requestState)) };
    if (outcome.kind === 'error') {
      how.failed?.(outcome.error, exchange.upstream);
      // The spec ties HTTP 400 to this code itself (an upstream's input_required asking for what the agent did not declare).
      const status = outcome.error instanceof UpstreamRpcError && outcome.error.code === RpcErrorCode.MissingRequiredClientCapability ? BAD_REQUEST : OK;
      return { status, body: this.failure(request.id, exchange.upstream, subject, outcome.error) };
    }
    const result = outcome.result;
    if (result['resultType'] !== 'input_required') return { status: OK, body: resultBody(request.id, how.complete(result, exchange.upstream)) };
    // A 2026-07-28 upstream's input_required: passed on as it came, its own state inside the gateway's.
    const upstreamState = typeof result['requestState'] === 'string' ? result['requestState'] : undefined;
    const requestState = this.exchanges.upstreamRoundState(context.principal.keyId, request.method, subject, exchange.upstream, upstreamState, context.sessionKeys);
    return { status: OK, body: resultBody(request.id, this.inputRequiredJson(isPlainObject(result['inputRequests']) ? result['inputRequests'] : undefined, requestState)) };
  }

  /**
   * Relay options of a call that may be parked: aborted by the exchange (not by the first HTTP
   * request, which ends with `input_required`), and whatever the upstream sends meanwhile goes to
   * the agent request waiting at that moment, progress under that request's token.
   */
  private exchangeRelayOptions(params: Record<string, unknown>, context: DispatchContext, upstream: string, exchange: InputExchange): RelayOptions {
    const agentMeta = params['_meta'];
    const capabilities = isPlainObject(agentMeta) ? agentMeta[CLIENT_CAPABILITIES_META_KEY] : undefined;
    const options: RelayOptions = {
      cancellation: exchange.cancellation,
      onRequest: (request) => askIfDeclared(capabilities, request, exchange.onRequest),
      returnInputRequired: true,
      onProgress: (progress) => {
        const channel = exchange.channel;
        const token = exchange.progressToken;
        if (channel !== undefined && token !== undefined) channel.notify('notifications/progress', { ...progress, progressToken: token });
      },
      onNotification: (notification) => {
        const channel = exchange.channel;
        if (channel !== undefined) this.relatedNotification(notification, upstream, context, channel);
      },
    };
    const meta = forwardableMeta(agentMeta);
    // A 2026-07-28 upstream asks only for input the agent can give: it sees the agent's client capabilities, not the gateway's.
    if (capabilities !== undefined && this.isModernUpstream(upstream)) options.meta = { ...meta, [CLIENT_CAPABILITIES_META_KEY]: capabilities };
    else if (meta !== undefined) options.meta = meta;
    return options;
  }

  private isModernUpstream(upstream: string): boolean {
    const version = this.router.upstreams().find((u) => u.name === upstream)?.protocolVersion;
    return version !== undefined && isModernProtocolVersion(version);
  }

  /** A 2026-07-28 `InputRequiredResult`: the embedded requests (when there are any), the gateway's signed state, server identity. */
  private inputRequiredJson(inputRequests: Readonly<Record<string, unknown>> | undefined, requestState: string): string {
    const requests = inputRequests === undefined ? '' : `"inputRequests":${JSON.stringify(inputRequests)},`;
    return `{"resultType":"input_required",${requests}"requestState":${JSON.stringify(requestState)},"_meta":${this.serverMeta}}`;
  }

  /** Relay options: the agent's `_meta`, abort, and the back channel for what the upstream sends meanwhile. */
  private relayOptions(params: Record<string, unknown>, context: DispatchContext, upstream: string): RelayOptions {
    const meta = forwardableMeta(params['_meta']);
    const options: RelayOptions = { cancellation: context.cancellation };
    if (meta !== undefined) options.meta = meta;
    if (context.sessionId !== undefined) options.agent = context.sessionId;
    const channel = context.channel;
    if (channel === undefined) return options;
    if (meta?.['progressToken'] !== undefined) options.onProgress = (progress) => channel.notify('notifications/progress', progress);
    options.onNotification = (notification) => this.relatedNotification(notification, upstream, context, channel);
    // The inner arrow is made only when the upstream asks, not on every request.
    if (channel.canRequest) options.onRequest = (message) => askIfDeclared(context.agentCapabilities, message, (asked) => channel.request(asked, context.cancellation.signal()));
    return options;
  }

  private relatedNotification(notification: RpcMessage, upstream: string, context: DispatchContext, channel: RequestChannel): void {
    if (notification.method === 'notifications/message' && !this.logLevels.allows(context.sessionId, notification.params?.['level'], true)) return;
    if (notification.method === 'notifications/tasks/status' && notification.params !== undefined) {
      channel.notify(notification.method, this.rewriteTaskIds(notification.params, upstream, context));
      return;
    }
    channel.notify(notification.method, notification.params);
  }

  /** The result serialized, with 2026-07-28's `resultType` and server identity when modern. */
  private finish(result: Record<string, unknown>, context: DispatchContext): string {
    const meta = result['_meta'];
    if (context.era !== 'modern') return JSON.stringify(isPlainObject(meta) && SERVER_INFO_META_KEY in meta ? withoutUpstreamIdentity(result, meta) : result);
    if (isPlainObject(meta)) return JSON.stringify({ ...result, resultType: 'complete', _meta: { ...meta, [SERVER_INFO_META_KEY]: this.serverInfo } });
    const json = JSON.stringify(result);
    // Splice the constant suffix in rather than copying the result object.
    return json === '{}' ? `{${this.modernSuffix.slice(1)}}` : `${json.slice(0, -1)}${this.modernSuffix}}`;
  }

  private failure(id: RpcId, upstream: string, subject: string, error: unknown): string {
    if (error instanceof UpstreamRpcError) return errorBody(id, error.code, error.message, error.data);
    if (error instanceof PortcullisError) {
      return errorBody(id, RpcErrorCode.UpstreamUnavailable, `Upstream "${upstream}" could not answer for ${subject}: ${error.message}`, { upstream, reason: error.code });
    }
    this.logger.error({ err: error, upstream, subject }, 'relayed request failed unexpectedly');
    return errorBody(id, RpcErrorCode.InternalError, `Internal error relaying to upstream "${upstream}"`);
  }
}

/** The one answer for a tool that does not exist or may not be called (the SDK server's wording). */
export function toolNotFound(id: RpcId, name: string): string {
  return errorBody(id, RpcErrorCode.InvalidParams, `Tool ${name} not found`);
}

/**
 * A 2025-era result without the `_meta` key in which a 2026-07-28 upstream names itself: to the agent
 * the server is the gateway (it said so at initialize), and which upstream serves a tool is not the
 * agent's to learn. `_meta` goes when nothing else is left in it.
 */
function withoutUpstreamIdentity(result: Record<string, unknown>, meta: Record<string, unknown>): Record<string, unknown> {
  const { [SERVER_INFO_META_KEY]: _upstream, ...rest } = meta;
  const { _meta: _dropped, ...bare } = result;
  return Object.keys(rest).length === 0 ? bare : { ...bare, _meta: rest };
}

function methodNotFound(id: RpcId, modern: boolean): RpcReply {
  return { status: modern ? MODERN_METHOD_NOT_FOUND_STATUS : OK, body: errorBody(id, RpcErrorCode.MethodNotFound, 'Method not found') };
}

function invalidParams(id: RpcId, message: string): RpcReply {
  return { status: OK, body: errorBody(id, RpcErrorCode.InvalidParams, message) };
}

/** The SDK server's answer for an unknown resource (on every revision). */
function resourceNotFound(id: RpcId, uri: string): RpcReply {
  return { status: OK, body: errorBody(id, RpcErrorCode.InvalidParams, `Resource not found: ${uri}`, { uri }) };
}

/** The agent's progress token in a request's `_meta`, if any. */
function progressTokenOf(params: Record<string, unknown> | undefined): unknown {
  const meta = params?.['_meta'];
  return isPlainObject(meta) ? meta['progressToken'] : undefined;
}

/** `params` with `field` replaced (the exposed name un-prefixed). */
function withName(params: Record<string, unknown>, field: string, value: string): Record<string, unknown> {
  return { ...params, [field]: value };
}

/** `params` as the upstream must see them: without `_meta`, which travels as RelayOptions.meta (the object is reused when there is none). */
function forwardParams(params: Record<string, unknown>): Record<string, unknown> {
  if (params['_meta'] === undefined) return params;
  const { _meta: _, ...rest } = params;
  return rest;
}

/** The agent's request `_meta` minus the agent↔gateway envelope keys (the same object when none is there), or undefined when nothing is left. */
function forwardableMeta(meta: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(meta)) return undefined;
  let envelope = false;
  for (const key in meta) if (ENVELOPE_META_KEYS.has(key)) envelope = true;
  if (!envelope) return meta;
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(meta)) {
    if (ENVELOPE_META_KEYS.has(key)) continue;
    (out ??= {})[key] = meta[key];
  }
  return out;
}
