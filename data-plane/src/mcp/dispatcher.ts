import { CallToolRequestParamsSchema, InitializeRequestParamsSchema } from '@modelcontextprotocol/core';
import type { Logger } from 'pino';
import { PortcullisError } from '../../../common/src/index.ts';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import type { Principal } from '../policy/principal.ts';
import { UpstreamRpcError, type ToolRouter } from '../upstream/tool-router.ts';
import { errorBody, isPlainObject, resultBody, type RpcId, type RpcReply } from './json-rpc.ts';
import {
  ENVELOPE_META_KEYS,
  LATEST_LEGACY_PROTOCOL_VERSION,
  LEGACY_PROTOCOL_VERSIONS,
  LIST_CACHE_SCOPE,
  LIST_CACHE_TTL_MS,
  MODERN_PROTOCOL_VERSIONS,
  RpcErrorCode,
  SERVER_CAPABILITIES,
  SERVER_INFO_META_KEY,
} from './protocol.ts';
import { signSessionToken } from './session-token.ts';
import type { ToolViews } from './tool-views.ts';

export type ProtocolEra = 'modern' | 'legacy';

/** One JSON-RPC request as the HTTP layer hands it over: already shape-checked by the SDK schemas. */
export interface RpcRequest {
  readonly id: string | number;
  readonly method: string;
  readonly params?: Record<string, unknown> | undefined;
}

export interface DispatchContext {
  readonly principal: Principal;
  readonly era: ProtocolEra;
  /** Aborts when the agent's connection goes away; created only by the calls that need it. */
  readonly signal: () => AbortSignal;
}

export interface InitializeReply extends RpcReply {
  /** The signed session id to send as `Mcp-Session-Id` (absent when the request was refused). */
  readonly sessionId?: string;
}

export interface ServerInfo {
  readonly name: string;
  readonly version: string;
}

export interface McpDispatcherOptions {
  readonly tools: ToolRouter;
  readonly views: ToolViews;
  readonly serverInfo: ServerInfo;
  readonly logger: Logger;
}

const OK = 200;
/** The SDK answers an unknown method on the 2026-07-28 path from its validation ladder, with HTTP 404. */
const MODERN_METHOD_NOT_FOUND_STATUS = 404;

/**
 * Answers MCP requests for both protocol eras without an SDK server: the responses are built
 * from pre-serialized fragments (tool lists per allow-list, server identity, capabilities) so
 * the hot path does one JSON.stringify of the upstream result and nothing else.
 */
export class McpDispatcher {
  private readonly tools: ToolRouter;
  private readonly views: ToolViews;
  private readonly logger: Logger;
  private readonly serverInfo: ServerInfo;
  /** `,"resultType":"complete","_meta":{serverInfo}` etc., appended to modern results. */
  private readonly modernListSuffix: string;
  private readonly discoverJson: string;
  private readonly initializeResultTail: string;

  constructor(options: McpDispatcherOptions) {
    this.tools = options.tools;
    this.views = options.views;
    this.logger = options.logger;
    this.serverInfo = { name: options.serverInfo.name, version: options.serverInfo.version };
    const serverMeta = JSON.stringify({ [SERVER_INFO_META_KEY]: this.serverInfo });
    this.modernListSuffix = `,"resultType":"complete","ttlMs":${LIST_CACHE_TTL_MS},"cacheScope":"${LIST_CACHE_SCOPE}","_meta":${serverMeta}`;
    this.discoverJson = `{"supportedVersions":${JSON.stringify(MODERN_PROTOCOL_VERSIONS)},"capabilities":${JSON.stringify(SERVER_CAPABILITIES)}${this.modernListSuffix}}`;
    this.initializeResultTail = `,"capabilities":${JSON.stringify(SERVER_CAPABILITIES)},"serverInfo":${JSON.stringify(this.serverInfo)}}`;
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
    return { status: OK, body: resultBody(request.id, `{"protocolVersion":${JSON.stringify(protocolVersion)}${this.initializeResultTail}`), sessionId };
  }

  /** Any other request, of either era. */
  async dispatch(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const modern = context.era === 'modern';
    switch (request.method) {
      case 'tools/list': {
        const view = this.views.viewFor(context.principal.allowList);
        return { status: OK, body: resultBody(request.id, `{"tools":${view.json}${modern ? this.modernListSuffix : ''}}`) };
      }
      case 'tools/call':
        return this.callTool(request, context);
      case 'server/discover':
        if (modern) return { status: OK, body: resultBody(request.id, this.discoverJson) };
        break;
      case 'ping':
        // Removed in 2026-07-28: the SDK answers it there as an unknown method.
        if (!modern) return { status: OK, body: resultBody(request.id, '{}') };
        break;
      default:
        break;
    }
    return { status: modern ? MODERN_METHOD_NOT_FOUND_STATUS : OK, body: errorBody(request.id, RpcErrorCode.MethodNotFound, 'Method not found') };
  }

  private async callTool(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const id = request.id;
    const checked = CallToolRequestParamsSchema.safeParse(request.params);
    if (!checked.success) return { status: OK, body: errorBody(id, RpcErrorCode.InvalidParams, `Invalid tools/call request: ${checked.error.message}`) };
    const params = request.params as Record<string, unknown>;
    const name = params['name'] as string;
    const tool = this.views.findAllowed(context.principal.allowList, name);
    // Unknown and forbidden are answered identically: a key cannot learn what exists beyond its allow-list.
    if (tool === undefined) return { status: OK, body: toolNotFound(id, name) };

    const args = params['arguments'] as Record<string, unknown> | undefined;
    const meta = forwardableMeta(params['_meta']);
    try {
      const result = await this.tools.callTool(tool, args, { meta, signal: context.signal() });
      return { status: OK, body: resultBody(id, JSON.stringify(context.era === 'modern' ? this.completeModernResult(result) : result)) };
    } catch (error) {
      return { status: OK, body: this.callFailure(id, tool.upstreamName, name, error) };
    }
  }

  /** 2026-07-28 results carry `resultType` and the server's identity in `_meta`. */
  private completeModernResult(result: Record<string, unknown>): Record<string, unknown> {
    const meta = isPlainObject(result['_meta']) ? result['_meta'] : undefined;
    return { ...result, resultType: 'complete', _meta: { ...meta, [SERVER_INFO_META_KEY]: this.serverInfo } };
  }

  private callFailure(id: RpcId, upstream: string, tool: string, error: unknown): string {
    if (error instanceof UpstreamRpcError) return errorBody(id, error.code, error.message, error.data);
    if (error instanceof PortcullisError) {
      return errorBody(id, RpcErrorCode.UpstreamUnavailable, `Upstream "${upstream}" could not run ${tool}: ${error.message}`, { upstream, reason: error.code });
    }
    this.logger.error({ err: error, tool }, 'tool call failed unexpectedly');
    return errorBody(id, RpcErrorCode.InternalError, `Internal error calling ${tool}`);
  }
}

/** The one answer for a tool that does not exist or may not be called (the SDK server's wording). */
export function toolNotFound(id: RpcId, name: string): string {
  return errorBody(id, RpcErrorCode.InvalidParams, `Tool ${name} not found`);
}

/** The agent's request `_meta` minus the agent↔gateway envelope keys, or undefined when nothing is left. */
function forwardableMeta(meta: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(meta)) return undefined;
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(meta)) {
    if (ENVELOPE_META_KEYS.has(key)) continue;
    (out ??= {})[key] = meta[key];
  }
  return out;
}
