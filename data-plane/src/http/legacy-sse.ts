import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestChannel, RpcRequest } from '../mcp/dispatcher.ts';
import { echoableId, errorBody, isPlainObject } from '../mcp/json-rpc.ts';
import { LATEST_LEGACY_PROTOCOL_VERSION, MAX_BATCH_SIZE, RpcErrorCode } from '../mcp/protocol.ts';
import type { ServerRequests } from '../mcp/server-requests.ts';
import { signSessionToken } from '../mcp/session-token.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import type { AgentStream } from './agent-streams.ts';
import { authenticateRequest, type Authenticated } from './authenticate.ts';
import { InFlightRequests, RequestAbort } from './in-flight.ts';
import type { McpEndpointOptions } from './mcp-endpoint.ts';
import { httpDispatchContext } from './dispatch-context.ts';
import { parseRequestJson, readJsonBody, TOO_DEEP_MESSAGE } from './request-body.ts';
import { sendEmpty, sendJson, sendRpcError } from './respond.ts';
import { edgeRefusalCode, recordEdgeRefusal } from './edge-audit.ts';
import { MAX_RELAY_JSON_CHARS } from '../relay/node-relay.ts';
import { SSE_HEADERS, notificationJson } from './response-channel.ts';

/** The same as the Streamable HTTP endpoint's: both transports serve one node's sessions. */
export type LegacySseOptions = McpEndpointOptions;

/** One `GET /sse` stream this node holds. */
interface SseSession {
  readonly token: string;
  readonly keyId: string;
  readonly stream: AgentStream;
  readonly req: IncomingMessage;
  readonly inFlight: InFlightRequests;
  /**
   * What the agent declared at `initialize` (undefined before it): server-to-client requests are sent only for those.
   */
  capabilities?: unknown;
  /** The client info of its `initialize` (for audit records). */
  clientInfo?: unknown;
}

/**
 * As on /mcp: a batch is at most MAX_BATCH_SIZE messages (each request is then admitted against the in-flight bounds).
 */
const BATCH_TOO_LARGE = `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`;

const NOT_HERE =
  'Session not found: this node does not hold the SSE stream of that session. POST /messages must reach the node ' +
  'that holds GET /sse (route by the sessionId query parameter, or use sticky sessions); otherwise open a new GET ' +
  '/sse';

/**
 * The legacy MCP HTTP+SSE transport (protocol 2024-11-05) for older clients: `GET /sse` opens the
 * session's stream and names the endpoint to POST to (`/messages?sessionId=<token>`, the token a
 * signed self-contained session id like `Mcp-Session-Id`, plus the id of the stream); each
 * `POST /messages` is answered 202 and its response travels on the stream, as do progress,
 * server-to-client requests and list_changed. The stream lives on one node, which the token names
 * by its tag: a POST that lands on another node is relayed there through the control plane.
 */
export function createLegacySseEndpoints(
  options: LegacySseOptions,
): (req: IncomingMessage, res: ServerResponse, path: string, query: string) => Promise<void> {
  const { getConfig, services, maxBodyBytes, logger, anonymousKeyId, audit, tokens, metrics } = options;
  const sessions = new Map<string, SseSession>();

  function open(req: IncomingMessage, res: ServerResponse, auth: Authenticated): void {
    if (!(req.headers.accept ?? 'text/event-stream').includes('text/event-stream')) {
      sendRpcError(res, 406, RpcErrorCode.TransportError, 'Not Acceptable: Client must accept text/event-stream');
      return;
    }
    const streamId = randomBytes(12).toString('base64url');
    const token = signSessionToken(
      {
        keyId: auth.principal.keyId,
        protocolVersion: LATEST_LEGACY_PROTOCOL_VERSION,
        clientInfo: undefined,
        clientCapabilities: undefined,
        issuedAt: Math.floor(Date.now() / 1000),
        streamId,
        nodeTag: services.relay.nodeTag,
      },
      auth.config.sessionKeys,
    );
    // Every call in flight on this session watches the stream's close (RequestAbort, released when the
    // call ends): as many listeners as calls in flight, which is no leak, so no warning past ten.
    res.setMaxListeners(0);
    res.writeHead(200, SSE_HEADERS);
    res.write(`event: endpoint\ndata: /messages?sessionId=${encodeURIComponent(token)}\n\n`);
    const stream = services.streams.open(res, {
      secret: auth.secret,
      keyId: auth.principal.keyId,
      signingKeyId: auth.config.sessionKeys[0]?.id,
      allowList: auth.principal.allowList,
      holder: token,
      headWritten: true,
      onClose: () => {
        sessions.delete(streamId);
        services.subscriptions.forget(token);
        services.logLevels.forget(token);
      },
    });
    sessions.set(streamId, { token, keyId: auth.principal.keyId, stream, req, inFlight: new InFlightRequests() });
  }

  async function post(req: IncomingMessage, res: ServerResponse, auth: Authenticated, query: string): Promise<void> {
    const token = new URLSearchParams(query.startsWith('?') ? query.slice(1) : query).get('sessionId');
    if (token === null || token === '') {
      sendRpcError(res, 400, RpcErrorCode.TransportError, 'Bad Request: the sessionId query parameter is required');
      return;
    }
    const admitted = services.sessionGuard.admit(token, auth.principal.keyId, auth.config.sessionKeys, 'sse');
    if (!admitted.ok) {
      logger.debug({ keyId: auth.principal.keyId, reason: admitted.reason }, 'legacy SSE session refused');
      sendRpcError(res, 404, RpcErrorCode.SessionNotFound, 'Session not found');
      return;
    }
    const session = sessions.get(admitted.claims.streamId!);
    const holder = admitted.claims.nodeTag;
    const elsewhere = session === undefined && holder !== undefined && holder !== services.relay.nodeTag;
    if (!elsewhere && (session === undefined || session.token !== token)) {
      sendRpcError(res, 404, RpcErrorCode.SessionNotFound, NOT_HERE);
      return;
    }
    const parsed = await readJsonBody(req, res, maxBodyBytes);
    if (parsed === undefined) return;
    const messages = jsonRpcMessages(parsed.body);
    if (messages === undefined) {
      sendRpcError(res, 400, RpcErrorCode.InvalidRequest, 'Invalid Request: not a JSON-RPC 2.0 message', {
        id: echoableId(parsed.body),
      });
      return;
    }
    if (messages.length > MAX_BATCH_SIZE) {
      sendRpcError(res, 400, RpcErrorCode.InvalidRequest, BATCH_TOO_LARGE);
      return;
    }
    if (session === undefined) {
      await relayPost(res, holder!, token, auth.principal.keyId, parsed.body);
      return;
    }
    sendEmpty(res, 202);
    for (const message of messages) handle(message, session, auth);
  }

  /**
   * A POST for a stream another node holds (the token names its tag): relayed there through the
   * control plane, which handles it as if posted there (the responses go on its stream); answered
   * 202 once that node accepted it, or 404 saying why when it refused it or could not be reached.
   */
  async function relayPost(
    res: ServerResponse,
    holder: string,
    token: string,
    keyId: string,
    body: unknown,
  ): Promise<void> {
    const json = JSON.stringify(body);
    if (json.length > MAX_RELAY_JSON_CHARS) {
      sendRpcError(
        res,
        413,
        RpcErrorCode.InvalidRequest,
        `Payload Too Large: the node holding this session's stream is another one, and messages relayed to it may ` +
          `be at most ${MAX_RELAY_JSON_CHARS} characters`,
      );
      return;
    }
    const outcome = await services.relay.calls.call(
      { toNodeTag: holder, keyId, sessionId: token },
      { $case: 'sseMessagesJson', value: json },
      undefined,
    );
    if (outcome.kind === 'failed') {
      logger.debug(
        { holder, reason: outcome.reason },
        'POST /messages for a stream on another node could not be relayed',
      );
      sendRpcError(
        res,
        404,
        RpcErrorCode.SessionNotFound,
        `Session not found: the node holding the SSE stream of that session could not be reached ` +
          `(${outcome.message}); open a new GET /sse`,
        { data: { reason: outcome.reason } },
      );
      return;
    }
    if (outcome.status === 202) sendEmpty(res, 202);
    else sendJson(res, outcome.status, outcome.body);
  }

  /**
   * What another node relayed here: a POST for a stream this node holds, checked as a local one (the token must name
   * that stream and the key).
   */
  services.relay.calls.handle('sseMessagesJson', async (call) => {
    const config = getConfig();
    const principal = config?.principalByKeyId(call.keyId);
    const admitted =
      config === undefined
        ? undefined
        : services.sessionGuard.admit(call.sessionId, call.keyId, config.sessionKeys, 'sse');
    const session = admitted?.ok === true ? sessions.get(admitted.claims.streamId!) : undefined;
    if (
      config === undefined ||
      principal === undefined ||
      session === undefined ||
      session.token !== call.sessionId ||
      session.keyId !== call.keyId
    ) {
      return {
        answer: {
          status: 404,
          bodyJson: errorBody(
            null,
            RpcErrorCode.SessionNotFound,
            'Session not found: the node named by the session does not hold its SSE stream any more; open a new GET ' +
              '/sse',
          ),
        },
      };
    }
    const parsed = parseRequestJson(call.json);
    if (!parsed.ok && parsed.tooDeep)
      return {
        answer: {
          status: 400,
          bodyJson: errorBody(null, RpcErrorCode.InvalidRequest, `Invalid Request: ${TOO_DEEP_MESSAGE}`),
        },
      };
    const body = parsed.ok ? parsed.value : undefined;
    const messages = jsonRpcMessages(body);
    if (messages === undefined)
      return {
        answer: {
          status: 400,
          bodyJson: errorBody(
            echoableId(body),
            RpcErrorCode.InvalidRequest,
            'Invalid Request: not a JSON-RPC 2.0 message',
          ),
        },
      };
    if (messages.length > MAX_BATCH_SIZE)
      return { answer: { status: 400, bodyJson: errorBody(null, RpcErrorCode.InvalidRequest, BATCH_TOO_LARGE) } };
    const auth: Authenticated = { config, principal, secret: undefined, receivedAt: performance.now() };
    for (const message of messages) handle(message, session, auth);
    return { answer: { status: 202, bodyJson: '' } };
  });

  function handle(message: Record<string, unknown>, session: SseSession, auth: Authenticated): void {
    const method = message['method'];
    const id = message['id'];
    if (typeof method !== 'string') {
      // Only a request this node sent to this very session (and key) is settled by its reply.
      if (!services.serverRequests.settle(message, { sessionId: session.token, keyId: session.keyId })) {
        logger.debug(
          { id: message['id'] },
          'reply on /messages settles no server request sent to this session; dropped',
        );
      }
      return;
    }
    if (id === undefined) {
      if (method === 'notifications/cancelled' && isPlainObject(message['params']))
        session.inFlight.cancel(
          session.token,
          message['params']['requestId'],
          message['params']['reason'] ?? 'cancelled by the agent',
        );
      return;
    }
    if (typeof id !== 'string' && typeof id !== 'number') {
      session.stream.write(
        errorBody(null, RpcErrorCode.InvalidRequest, 'Invalid Request: id must be a string or a number'),
      );
      return;
    }
    const request = message as unknown as RpcRequest;
    if (method === 'initialize') {
      session.capabilities = isPlainObject(request.params) ? request.params['capabilities'] : undefined;
      session.clientInfo = isPlainObject(request.params) ? request.params['clientInfo'] : undefined;
      const answer = services.dispatcher.initialize(request, auth.principal, auth.config.sessionKeys);
      session.stream.write(answer.body);
      return;
    }
    const abort = new RequestAbort(session.req, session.stream.res);
    const channel = new StreamChannel(
      session.stream,
      services.serverRequests.forSession({ sessionId: session.token, keyId: session.keyId }),
    );
    const origin = session.clientInfo === undefined ? undefined : { clientInfo: session.clientInfo };
    const context = httpDispatchContext(auth, 'legacy', abort, channel, origin, session.token, session.capabilities);
    const key = session.inFlight.register(session.token, id, abort);
    services.admission
      .run(session.keyId, session.token, id, () => services.dispatcher.dispatch(request, context))
      // One macrotask first, as on Streamable HTTP: a notification sent just before the result lands before it.
      .then((answer) => setImmediate(() => session.stream.write(answer.body)))
      .catch((error: unknown) => {
        logger.error({ err: error }, 'legacy SSE request failed');
        session.stream.write(errorBody(id, RpcErrorCode.InternalError, 'Internal error'));
      })
      .finally(() => session.inFlight.done(key, abort));
  }

  return async function legacySse(req, res, path, query) {
    const receivedAt = performance.now();
    const wanted = path === '/sse' ? 'GET' : 'POST';
    let auth: Authenticated | undefined;
    if (req.method !== wanted) {
      sendRpcError(res, 405, RpcErrorCode.TransportError, 'Method not allowed.', { headers: { allow: wanted } });
    } else {
      const authenticated = authenticateRequest(getConfig, req, res, anonymousKeyId, tokens);
      auth = authenticated instanceof Promise ? await authenticated : authenticated;
      if (auth !== undefined) {
        if (path === '/sse') open(req, res, auth);
        else await post(req, res, auth, query);
      }
    }
    // As on /mcp: an edge refusal gets its record and counts in portcullis_refusals_total by reason.
    recordEdgeRefusal(audit, req, res, auth, receivedAt);
    if (metrics !== undefined) {
      const refused = edgeRefusalCode(res);
      if (refused !== undefined) metrics.refusal(refused);
    }
  };
}

/** The POSTed message or batch as JSON-RPC 2.0 messages, or undefined when it is not that. */
function jsonRpcMessages(body: unknown): Record<string, unknown>[] | undefined {
  const messages = Array.isArray(body) ? body : [body];
  return messages.every((m) => isPlainObject(m) && m['jsonrpc'] === '2.0')
    ? (messages as Record<string, unknown>[])
    : undefined;
}

/** A request's back channel on the legacy transport: the session's one stream. */
class StreamChannel implements RequestChannel {
  readonly canRequest = true;

  constructor(
    private readonly stream: AgentStream,
    /** This session's view: its requests are settled only by replies posted to this session. */
    private readonly requests: ServerRequests,
  ) {}

  notify(method: string, params: Record<string, unknown> | undefined): void {
    this.stream.write(notificationJson(method, params));
  }

  request(message: RpcMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    return this.requests.send((json) => this.stream.write(json), message, signal);
  }
}
