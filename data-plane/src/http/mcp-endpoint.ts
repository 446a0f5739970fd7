import type { IncomingMessage, ServerResponse } from 'node:http';
import { classifyInboundRequest, isJsonContentType, type InboundClassificationOutcome } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { McpDispatcher, RpcRequest } from '../mcp/dispatcher.ts';
import { echoableId, type RpcReply } from '../mcp/json-rpc.ts';
import { LEGACY_PROTOCOL_VERSIONS, MAX_BATCH_SIZE, MODERN_PROTOCOL_VERSIONS, RpcErrorCode, isModernProtocolVersion } from '../mcp/protocol.ts';
import { verifySessionToken, type SessionClaims } from '../mcp/session-token.ts';
import { checkStandardHeaders, stripOws } from '../mcp/standard-headers.ts';
import type { Principal } from '../policy/principal.ts';
import { presentedKey } from './authenticate.ts';
import type { NotificationStreams } from './notification-streams.ts';
import { readBody } from './request-body.ts';
import { sendEmpty, sendJson, sendRpcError } from './respond.ts';

type InboundModernRoute = Extract<InboundClassificationOutcome, { kind: 'modern' }>;
type InboundLegacyRoute = Extract<InboundClassificationOutcome, { kind: 'legacy' }>;

export interface McpEndpointOptions {
  readonly getConfig: () => AppliedConfig | undefined;
  readonly dispatcher: McpDispatcher;
  readonly streams: NotificationStreams;
  readonly maxBodyBytes: number;
  readonly logger: Logger;
}

/** What the authenticate step hands on. */
interface Authenticated {
  readonly config: AppliedConfig;
  readonly principal: Principal;
  readonly secret: string;
}

const UNSUPPORTED_LEGACY_VERSION_HINT = `supported versions: ${LEGACY_PROTOCOL_VERSIONS.join(', ')}`;
const NO_KEY_MESSAGE = 'Unauthorized: send a Portcullis virtual key as "Authorization: Bearer <key>" or "x-portcullis-key: <key>"';
const BAD_KEY_MESSAGE = 'Unauthorized: the presented key is unknown or revoked; send a valid Portcullis virtual key as "Authorization: Bearer <key>" or "x-portcullis-key: <key>"';
const CHALLENGE = { 'www-authenticate': 'Bearer realm="portcullis"' };

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `POST/GET/DELETE /mcp`: MCP Streamable HTTP for both protocol eras, as a chain of small steps
 * (ready → authenticate → negotiate the transport → parse → classify → session → dispatch), each of
 * which either answers the request or hands on what the next one needs.
 */
export function createMcpEndpoint(options: McpEndpointOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { getConfig, dispatcher, streams, maxBodyBytes, logger } = options;
  const tooLargeMessage = `Payload Too Large: Request body must not exceed ${maxBodyBytes} bytes`;

  function authenticate(req: IncomingMessage, res: ServerResponse): Authenticated | undefined {
    const config = getConfig();
    if (config === undefined) {
      sendRpcError(res, 503, RpcErrorCode.NotReady, 'Service Unavailable: this node has not received its configuration yet; retry shortly', { headers: { 'retry-after': '1' } });
      return undefined;
    }
    const secret = presentedKey(req);
    if (secret === undefined) {
      sendRpcError(res, 401, RpcErrorCode.Unauthenticated, NO_KEY_MESSAGE, { headers: CHALLENGE });
      return undefined;
    }
    const principal = config.authenticate(secret);
    if (principal === undefined) {
      sendRpcError(res, 401, RpcErrorCode.Unauthenticated, BAD_KEY_MESSAGE, { headers: { 'www-authenticate': 'Bearer realm="portcullis", error="invalid_token"' } });
      return undefined;
    }
    return { config, principal, secret };
  }

  /** 2025 era: the signed session id must be present (400), valid under a current session key and issued to this key (404). */
  function session(req: IncomingMessage, res: ServerResponse, auth: Authenticated): { claims: SessionClaims; token: string } | undefined {
    const token = header(req, 'mcp-session-id');
    if (token === undefined || token === '') {
      sendRpcError(res, 400, RpcErrorCode.TransportError, 'Bad Request: Mcp-Session-Id header is required');
      return undefined;
    }
    const verified = verifySessionToken(token, auth.config.sessionKeys);
    if (!verified.ok || verified.claims.keyId !== auth.principal.keyId) {
      logger.debug({ keyId: auth.principal.keyId, reason: verified.ok ? 'other-key' : verified.reason }, 'session refused');
      sendRpcError(res, 404, RpcErrorCode.SessionNotFound, 'Session not found');
      return undefined;
    }
    const version = header(req, 'mcp-protocol-version');
    if (version !== undefined && !LEGACY_PROTOCOL_VERSIONS.includes(version)) {
      sendRpcError(res, 400, RpcErrorCode.TransportError, `Bad Request: Unsupported protocol version: ${version} (${UNSUPPORTED_LEGACY_VERSION_HINT})`);
      return undefined;
    }
    return { claims: verified.claims, token };
  }

  /** Aborts when the agent's connection closes before its answer was written; made only when asked for. */
  function connectionSignal(req: IncomingMessage, res: ServerResponse): () => AbortSignal {
    let controller: AbortController | undefined;
    return () => {
      if (controller === undefined) {
        const created = new AbortController();
        controller = created;
        if (req.socket.destroyed) created.abort();
        else res.once('close', () => (res.writableFinished ? undefined : created.abort()));
      }
      return controller.signal;
    };
  }

  function reply(res: ServerResponse, answer: RpcReply): void {
    if (!res.writableEnded && !res.destroyed) sendJson(res, answer.status, answer.body);
  }

  async function post(req: IncomingMessage, res: ServerResponse, auth: Authenticated): Promise<void> {
    const accept = req.headers.accept ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      sendRpcError(res, 406, RpcErrorCode.TransportError, 'Not Acceptable: Client must accept both application/json and text/event-stream');
      return;
    }
    if (!isJsonContentType(req.headers['content-type'] ?? null)) {
      sendRpcError(res, 415, RpcErrorCode.TransportError, 'Unsupported Media Type: Content-Type must be application/json');
      return;
    }
    const read = await readBody(req, maxBodyBytes);
    if (!read.ok) {
      if (read.reason === 'too-large') sendRpcError(res, 413, RpcErrorCode.TransportError, tooLargeMessage, { headers: { connection: 'close' } });
      else res.destroy();
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(read.text);
    } catch {
      sendRpcError(res, 400, RpcErrorCode.ParseError, 'Parse error: Invalid JSON');
      return;
    }
    if (Array.isArray(body) && body.length > MAX_BATCH_SIZE) {
      sendRpcError(res, 400, RpcErrorCode.InvalidRequest, `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`);
      return;
    }
    const route = classifyInboundRequest({
      httpMethod: 'POST',
      protocolVersionHeader: header(req, 'mcp-protocol-version'),
      mcpMethodHeader: header(req, 'mcp-method'),
      mcpNameHeader: header(req, 'mcp-name'),
      body,
    });
    if (route.kind === 'reject') {
      sendRpcError(res, route.httpStatus, route.code, route.message, { data: route.data, id: echoableId(body) });
      return;
    }
    if (route.kind === 'modern') await postModern(req, res, auth, route);
    else await postLegacy(req, res, auth, route, body);
  }

  async function postModern(req: IncomingMessage, res: ServerResponse, auth: Authenticated, route: InboundModernRoute): Promise<void> {
    const message = route.message;
    const id = 'id' in message ? message.id : null;
    const revision = route.classification.revision;
    if (revision === undefined || !MODERN_PROTOCOL_VERSIONS.includes(revision)) {
      const requested = revision ?? 'unknown';
      sendRpcError(res, 400, RpcErrorCode.UnsupportedProtocolVersion, `Unsupported protocol version: ${requested}`, { data: { supported: MODERN_PROTOCOL_VERSIONS, requested }, id });
      return;
    }
    if (route.messageKind !== 'request') {
      sendEmpty(res, 202);
      return;
    }
    const rejection = checkStandardHeaders(
      { protocolVersion: stripOws(header(req, 'mcp-protocol-version')), method: stripOws(header(req, 'mcp-method')), name: stripOws(header(req, 'mcp-name')) },
      message.method,
      message.params,
      revision,
    );
    if (rejection !== undefined) {
      sendRpcError(res, 400, RpcErrorCode.HeaderMismatch, rejection.message, { data: rejection.data, id });
      return;
    }
    const answer = await dispatcher.dispatch(message as RpcRequest, { principal: auth.principal, era: 'modern', signal: connectionSignal(req, res) });
    reply(res, answer);
  }

  async function postLegacy(req: IncomingMessage, res: ServerResponse, auth: Authenticated, route: InboundLegacyRoute, body: unknown): Promise<void> {
    if (route.reason === 'initialize') {
      const answer = dispatcher.initialize(body as RpcRequest, auth.principal, auth.config.sessionKeys);
      sendJson(res, answer.status, answer.body, answer.sessionId === undefined ? undefined : { 'mcp-session-id': answer.sessionId });
      return;
    }
    if (session(req, res, auth) === undefined) return;
    const context = { principal: auth.principal, era: 'legacy' as const, signal: connectionSignal(req, res) };
    switch (route.reason) {
      case 'no-claim':
        reply(res, await dispatcher.dispatch(body as RpcRequest, context));
        return;
      case 'batch': {
        const messages = body as Array<{ id?: unknown; method?: unknown }>;
        if (messages.some((m) => m.method === 'initialize')) {
          sendRpcError(res, 400, RpcErrorCode.InvalidRequest, 'Invalid Request: Only one initialization request is allowed');
          return;
        }
        const requests = messages.filter((m): m is RpcRequest => typeof m.method === 'string' && m.id !== undefined);
        if (requests.length === 0) {
          sendEmpty(res, 202);
          return;
        }
        const answers = await Promise.all(requests.map((m) => dispatcher.dispatch(m, context)));
        reply(res, { status: 200, body: `[${answers.map((a) => a.body).join(',')}]` });
        return;
      }
      default:
        // Notifications and posted responses: nothing to act on (no server-to-client requests are in flight).
        sendEmpty(res, 202);
    }
  }

  /** 2025 era: the standalone notification stream. The stateless era has none (the SDK answers 405). */
  function get(req: IncomingMessage, res: ServerResponse, auth: Authenticated): void {
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      sendRpcError(res, 406, RpcErrorCode.TransportError, 'Not Acceptable: Client must accept text/event-stream');
      return;
    }
    if (refuseModern(req, res)) return;
    const opened = session(req, res, auth);
    if (opened === undefined) return;
    streams.open(res, { secret: auth.secret, keyId: auth.principal.keyId, signingKeyId: opened.claims.signingKeyId, allowList: auth.principal.allowList, sessionId: opened.token });
  }

  /** 2025 era: ending a session. Nothing is stored, so there is nothing to forget. */
  function del(req: IncomingMessage, res: ServerResponse, auth: Authenticated): void {
    if (refuseModern(req, res)) return;
    if (session(req, res, auth) === undefined) return;
    sendEmpty(res, 200);
  }

  function refuseModern(req: IncomingMessage, res: ServerResponse): boolean {
    const version = header(req, 'mcp-protocol-version');
    if (version === undefined || !isModernProtocolVersion(version)) return false;
    sendRpcError(res, 405, RpcErrorCode.TransportError, 'Method not allowed.', { headers: { allow: 'POST' } });
    return true;
  }

  return async function mcpEndpoint(req, res) {
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      sendRpcError(res, 405, RpcErrorCode.TransportError, 'Method not allowed.', { headers: { allow: 'GET, POST, DELETE' } });
      return;
    }
    const auth = authenticate(req, res);
    if (auth === undefined) return;
    if (req.method === 'POST') await post(req, res, auth);
    else if (req.method === 'GET') get(req, res, auth);
    else del(req, res, auth);
  };
}

