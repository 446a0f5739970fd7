import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { isJsonContentType } from '@modelcontextprotocol/server';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { isTooDeep } from '../../../common/src/index.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import { presentedKey, tokenPrincipal, tokenRefusalChallenge } from '../http/authenticate.ts';
import { requestOrigin } from '../http/edge-audit.ts';
import { parseRequestJson, readBody, TOO_DEEP_MESSAGE } from '../http/request-body.ts';
import { sendJson } from '../http/respond.ts';
import type { CatalogViews } from '../mcp/catalog-views.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { RESULT_TOO_DEEP } from '../pipeline/gateway-error.ts';
import type { Operation, RequestOrigin } from '../pipeline/operation.ts';
import type { RunOperation } from '../pipeline/pipeline.ts';
import type { AgentTokens, TokenRefusal } from '../oauth/agent-tokens.ts';
import type { Principal } from '../policy/principal.ts';
import { signalCancellation } from '../upstream/cancellation.ts';
import { type CallForm, type McpTool, resultInForm, type ToolFormat, toolsInFormat } from './model-formats.ts';
import { mayBeConverted, mcpToolName } from './model-tool-names.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { sendGatewayError, sendRestError } from './rest-errors.ts';
import { anthropicToolUse, describeIssues, formatQuery, mcpCall, openAiCall } from './rest-schemas.ts';

export interface RestEndpointOptions {
  readonly getConfig: () => AppliedConfig | undefined;
  /** The pipeline's entry (DataPlaneServer.run). */
  readonly run: RunOperation;
  /** What each key may see (converted model-API names are mapped back among these). */
  readonly views: CatalogViews;
  readonly maxBodyBytes: number;
  readonly logger: Logger;
  /** Put in the OpenAPI document's `info.version`. */
  readonly version: string;
  /** Signed-in users' OAuth access tokens (MCP authorization); absent: virtual keys only. */
  readonly tokens?: AgentTokens;
}

export const REST_PATHS: ReadonlySet<string> = new Set(['/v1/mcp/tools', '/v1/mcp/tool/execute', '/v1/openapi.json']);

const PARENT_HEADER = 'x-portcullis-parent-request';
const MAX_PARENT_ID = 256;
const CHALLENGE = { 'www-authenticate': 'Bearer realm="portcullis"' };

/** The 401 challenge: with MCP authorization configured it names the resource metadata, as /mcp's does. */
function challengeOf(config: AppliedConfig): { 'www-authenticate': string } {
  const providers = config.identityProviders;
  return providers === undefined ? CHALLENGE : { 'www-authenticate': providers.challenge };
}

/** A call decoded from any of the accepted forms. */
interface DecodedCall {
  readonly name: string;
  readonly arguments: Record<string, unknown>;
  readonly form: CallForm;
}

type Decoded = { readonly ok: true; readonly call: DecodedCall } | { readonly ok: false; readonly message: string };

/**
 * The REST surface for applications that run their own model loop: `GET /v1/mcp/tools`,
 * `POST /v1/mcp/tool/execute`, `GET /v1/openapi.json`. An adapter at the edge like the MCP
 * endpoint: it authenticates the key, decodes the body into one `tools/call` operation and runs it
 * through the same pipeline (allow-lists, policy, limits, audit), then encodes the outcome in the
 * form the call came in.
 */
export function createRestEndpoint(
  options: RestEndpointOptions,
): (req: IncomingMessage, res: ServerResponse, path: string, query: string) => Promise<void> {
  const openApi = JSON.stringify(buildOpenApiDocument(options.version));
  // Converted name → MCP name, filled as names are resolved; any node resolves a miss from the catalog.
  const converted = new LRUCache<string, string>({ max: 10_000 });

  type Caller = { config: AppliedConfig; principal: Principal } | undefined;

  /** A virtual key, or (with MCP authorization configured) a signed-in user's OAuth access token, as on /mcp. */
  function authenticate(req: IncomingMessage, res: ServerResponse): Caller | Promise<Caller> {
    const config = options.getConfig();
    if (config === undefined) {
      sendRestError(res, 503, 'NOT_READY', 'This node has not received its configuration yet; retry shortly', {
        'retry-after': '1',
      });
      return undefined;
    }
    const secret = presentedKey(req);
    const principal = secret === undefined ? undefined : config.authenticate(secret);
    if (principal !== undefined) return { config, principal };
    const token = secret === undefined ? undefined : tokenPrincipal(options.tokens, config, secret);
    if (token === undefined) {
      sendRestError(
        res,
        401,
        'UNAUTHENTICATED',
        secret === undefined
          ? 'Send a Portcullis virtual key as "Authorization: Bearer <key>" or "x-portcullis-key: <key>"'
          : 'The presented key is unknown or revoked',
        challengeOf(config),
      );
      return undefined;
    }
    const admit = (verified: Principal | TokenRefusal): Caller => {
      if (!('reason' in verified)) return { config, principal: verified };
      const code = verified.status === 403 ? 'FORBIDDEN' : 'UNAUTHENTICATED';
      sendRestError(res, verified.status, code, verified.reason, {
        'www-authenticate': tokenRefusalChallenge(config, verified),
      });
      return undefined;
    };
    return token instanceof Promise ? token.then(admit) : admit(token);
  }

  function formatOf(query: string, res: ServerResponse): ToolFormat | undefined {
    const value = new URLSearchParams(query).get('format') ?? 'mcp';
    const parsed = formatQuery.safeParse(value);
    if (parsed.success) return parsed.data;
    sendRestError(
      res,
      400,
      'UNKNOWN_FORMAT',
      `Unknown format "${value}": use one of ${formatQuery.options.map((o) => `"${o}"`).join(', ')}`,
    );
    return undefined;
  }

  function operation(
    config: AppliedConfig,
    principal: Principal,
    method: string,
    params: Record<string, unknown>,
    signal: AbortSignal,
    parentId: string | undefined,
    origin: RequestOrigin | undefined,
  ): Operation {
    return {
      id: randomUUID(),
      method,
      params,
      principal,
      ...(parentId === undefined ? {} : { parentId }),
      ...(origin === undefined ? {} : { origin }),
      sessionKeys: config.sessionKeys,
      cancellation: signalCancellation(signal),
      receivedAt: performance.now(),
    };
  }

  /** Aborts when the caller goes away before its answer was written (the upstream call is cancelled). */
  function abortOnClose(res: ServerResponse): AbortSignal {
    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    return controller.signal;
  }

  async function listTools(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const caller = await authenticate(req, res);
    if (caller === undefined) return;
    const format = formatOf(query, res);
    if (format === undefined) return;
    const signal = abortOnClose(res);
    const origin = requestOrigin(req);
    const tools: McpTool[] = [];
    let cursor: string | undefined;
    do {
      const params: Record<string, unknown> = cursor === undefined ? {} : { cursor };
      const outcome = await options.run(
        operation(caller.config, caller.principal, 'tools/list', params, signal, undefined, origin),
      );
      if (outcome.kind === 'error') return sendGatewayError(res, outcome.error);
      const page: unknown =
        outcome.kind === 'json' ? JSON.parse(outcome.json) : outcome.kind === 'result' ? outcome.result : {};
      if (!isPlainObject(page) || !Array.isArray(page['tools'])) break;
      tools.push(...(page['tools'] as McpTool[]));
      cursor = typeof page['nextCursor'] === 'string' ? page['nextCursor'] : undefined;
    } while (cursor !== undefined);
    sendJson(res, 200, JSON.stringify(toolsInFormat(tools, format)));
  }

  /** The MCP name a model-API name stands for, for this key (see model-tool-names.ts). */
  function resolveName(principal: Principal, name: string): string {
    if (!mayBeConverted(name)) return name;
    const known = converted.get(name);
    if (known !== undefined) return known;
    const visible = options.views.view(principal.allowList, 'tools').entries.map((entry) => entry.key);
    const original = mcpToolName(name, visible);
    if (original !== name) converted.set(name, original);
    return original;
  }

  async function execute(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const caller = await authenticate(req, res);
    if (caller === undefined) return;
    const format = formatOf(query, res);
    if (format === undefined) return;
    const parentHeader = req.headers[PARENT_HEADER];
    const parentId = Array.isArray(parentHeader) ? parentHeader[0] : parentHeader;
    if (parentId !== undefined && (parentId.length === 0 || parentId.length > MAX_PARENT_ID)) {
      return sendRestError(
        res,
        400,
        'INVALID_PARENT_REQUEST',
        `${PARENT_HEADER} must be 1 to ${MAX_PARENT_ID} characters`,
      );
    }
    if (!isJsonContentType(req.headers['content-type'] ?? null)) {
      return sendRestError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
    }
    const read = await readBody(req, options.maxBodyBytes);
    if (!read.ok) {
      if (read.reason === 'aborted') return void res.destroy();
      return sendRestError(
        res,
        413,
        'PAYLOAD_TOO_LARGE',
        `The request body (tool arguments included) must not exceed ${options.maxBodyBytes} bytes`,
        { connection: 'close' },
      );
    }
    const parsed = parseRequestJson(read.text);
    if (!parsed.ok)
      return parsed.tooDeep
        ? sendRestError(res, 400, 'JSON_TOO_DEEP', `The body's ${TOO_DEEP_MESSAGE}`)
        : sendRestError(res, 400, 'INVALID_JSON', 'The body is not valid JSON');
    const decoded = decodeCall(parsed.value, format);
    if (!decoded.ok) return sendRestError(res, 400, 'INVALID_BODY', decoded.message);
    const { call } = decoded;
    const name = resolveName(caller.principal, call.name);
    const outcome = await options.run(
      operation(
        caller.config,
        caller.principal,
        'tools/call',
        { name, arguments: call.arguments },
        abortOnClose(res),
        parentId,
        // The audit headers (traceparent, x-portcullis-model-cost-micros), read as the MCP endpoint reads them.
        requestOrigin(req),
      ),
    );
    if (res.destroyed) return;
    switch (outcome.kind) {
      case 'error':
        return sendGatewayError(res, outcome.error);
      case 'result': {
        let json: string;
        try {
          json = JSON.stringify(resultInForm(outcome.result, call.form));
        } catch (error) {
          if (!isTooDeep(error)) throw error;
          return sendGatewayError(res, RESULT_TOO_DEEP);
        }
        return sendJson(res, 200, json);
      }
      case 'json':
        return sendJson(res, 200, outcome.json);
      case 'input':
        return sendRestError(
          res,
          409,
          'INPUT_REQUIRED',
          `Tool ${name} asked for input from the client, which the REST API cannot give; call it over MCP`,
        );
    }
  }

  return async (req, res, path, query) => {
    try {
      if (path === '/v1/openapi.json' && req.method === 'GET') return sendJson(res, 200, openApi);
      if (path === '/v1/mcp/tools' && req.method === 'GET') return await listTools(req, res, query);
      if (path === '/v1/mcp/tool/execute' && req.method === 'POST') return await execute(req, res, query);
      sendRestError(res, 405, 'METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed on ${path}`, {
        allow: path === '/v1/mcp/tool/execute' ? 'POST' : 'GET',
      });
    } catch (error) {
      options.logger.error({ err: error, path }, 'REST request failed');
      if (!res.headersSent) sendRestError(res, 500, 'INTERNAL_ERROR', 'Internal error');
      else res.destroy();
    }
  };
}

/** A body in `format` decoded into one call, or why it is not one (naming the field). */
export function decodeCall(body: unknown, format: ToolFormat): Decoded {
  switch (format) {
    case 'mcp': {
      const parsed = mcpCall.safeParse(body);
      if (!parsed.success) return { ok: false, message: `Not an MCP tool call: ${describeIssues(parsed.error)}` };
      return {
        ok: true,
        call: { name: parsed.data.name, arguments: parsed.data.arguments ?? {}, form: { kind: 'mcp' } },
      };
    }
    case 'openai':
    case 'openai-responses': {
      const parsed = openAiCall.safeParse(body);
      if (!parsed.success)
        return {
          ok: false,
          message:
            `Not an OpenAI tool call ({id, type: "function", function: {name, arguments}}) nor a Responses ` +
            `function_call item ({type: "function_call", call_id, name, arguments}): ${describeIssues(parsed.error)}`,
        };
      const call = parsed.data;
      const chat = call.type === 'function';
      const argumentText = chat ? call.function.arguments : call.arguments;
      const args = parseArguments(argumentText);
      if (args === undefined)
        return {
          ok: false,
          message:
            `${chat ? 'function.arguments' : 'arguments'}: must be the JSON text of an object (got ` +
            `${JSON.stringify(argumentText.slice(0, 40))})`,
        };
      return chat
        ? { ok: true, call: { name: call.function.name, arguments: args, form: { kind: 'openai-chat', id: call.id } } }
        : {
            ok: true,
            call: { name: call.name, arguments: args, form: { kind: 'openai-responses', callId: call.call_id } },
          };
    }
    case 'anthropic': {
      const parsed = anthropicToolUse.safeParse(body);
      if (!parsed.success)
        return {
          ok: false,
          message:
            `Not an Anthropic tool_use block ({type: "tool_use", id, name, input}): ` +
            `${describeIssues(parsed.error)}`,
        };
      return {
        ok: true,
        call: { name: parsed.data.name, arguments: parsed.data.input, form: { kind: 'anthropic', id: parsed.data.id } },
      };
    }
  }
}

/**
 * OpenAI's arguments text as an object; an empty text is no arguments (models send "" for a tool without parameters).
 */
function parseArguments(text: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    return isPlainObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
