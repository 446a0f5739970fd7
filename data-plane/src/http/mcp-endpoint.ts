import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InboundClassificationOutcome } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { LogLevels, ResourceSubscriptions } from '../mcp/agent-state.ts';
import type { DispatchContext, McpDispatcher, RpcRequest } from '../mcp/dispatcher.ts';
import { echoableId, errorBody, isPlainObject, type RpcId } from '../mcp/json-rpc.ts';
import {
  LEGACY_PROTOCOL_VERSIONS,
  MAX_BATCH_SIZE,
  MODERN_PROTOCOL_VERSIONS,
  RpcErrorCode,
  isModernProtocolVersion,
} from '../mcp/protocol.ts';
import { classifyInbound } from '../mcp/inbound-classification.ts';
import type { ServerRequests } from '../mcp/server-requests.ts';
import type { EndedSessions } from '../mcp/ended-sessions.ts';
import type { NodeRelay } from '../relay/node-relay.ts';
import type { SessionClaims } from '../mcp/session-token.ts';
import type { SessionGuard } from '../mcp/session-guard.ts';
import { checkStandardHeaders, stripOws } from '../mcp/standard-headers.ts';
import type { AgentStreams } from './agent-streams.ts';
import type { AgentTokens } from '../oauth/agent-tokens.ts';
import { authenticateRequest, type Authenticated } from './authenticate.ts';
import { type InFlightRequests, RequestAbort, type CallAdmission } from './in-flight.ts';
import { serveListen } from './listen.ts';
import { readJsonBody } from './request-body.ts';
import { answerFailure, sendEmpty, sendJson, sendRpcError } from './respond.ts';
import { requestIdOfEventId, type EventStore, type ResumeMiss } from './event-store.ts';
import { edgeRefusalCode, recordEdgeRefusal, requestOrigin } from './edge-audit.ts';
import type { AuditRecorder } from '../audit/audit-recorder.ts';
import type { DataPlaneMetrics } from '../observability/metrics.ts';
import { ResponseChannel, SSE_HEADERS, prefersEventStream, sseEvent } from './response-channel.ts';

type InboundModernRoute = Extract<InboundClassificationOutcome, { kind: 'modern' }>;
type InboundLegacyRoute = Extract<InboundClassificationOutcome, { kind: 'legacy' }>;

/** The node-wide pieces both MCP transports (Streamable HTTP and legacy HTTP+SSE) share. */
export interface McpServices {
  readonly dispatcher: McpDispatcher;
  readonly streams: AgentStreams;
  readonly subscriptions: ResourceSubscriptions;
  readonly logLevels: LogLevels;
  readonly serverRequests: ServerRequests;
  readonly inFlight: InFlightRequests;
  /** 2025-era sessions ended here (DELETE), and how long any session lives. */
  readonly endedSessions: EndedSessions;
  /** The one check of a 2025-era session id, on every transport and relay. */
  readonly sessionGuard: SessionGuard;
  /** The recent events of the 2025-era SSE streams this node holds, for `Last-Event-ID` resumption. */
  readonly eventStore: EventStore;
  /**
   * Messages for other nodes (replies to their server requests, cancels, ended sessions), through the control plane.
   */
  readonly relay: NodeRelay;
  /** Bounds the requests each key and session has in flight on this node (every transport admits through it). */
  readonly admission: CallAdmission;
}

export interface McpEndpointOptions {
  readonly getConfig: () => AppliedConfig | undefined;
  readonly services: McpServices;
  readonly maxBodyBytes: number;
  readonly logger: Logger;
  /** Anonymous access: requests without credentials act as this virtual key (off when undefined). */
  readonly anonymousKeyId?: string;
  /** Where refusals at the edge are recorded (the pipeline records the rest). */
  readonly audit?: AuditRecorder | undefined;
  /** OAuth access tokens (MCP authorization); undefined: virtual keys only. */
  readonly tokens?: AgentTokens;
  /** Counts refusals at the edge (the pipeline counts the rest). */
  readonly metrics?: DataPlaneMetrics | undefined;
}

/**
 * Priming events (an id and empty data, SEP-1699) go to agents of 2025-11-25 and later only, as the
 * SDK's servers do: older clients try to parse the empty data as a message.
 */
function primes(protocolVersion: string): boolean {
  return protocolVersion >= '2025-11-25';
}

function streamLostMessage(reason: ResumeMiss): string {
  const why =
    reason === 'other-node'
      ? 'another gateway node was answering it, and only that node can resume the stream (it may have shut down or ' +
        'failed; route a session to one node to resume across connection drops)'
      : 'the stream expired or was given up on this node before it was resumed';
  return `The answer to this request is lost: ${why}. Send the request again if it is safe to repeat.`;
}

const UNSUPPORTED_LEGACY_VERSION_HINT = `supported versions: ${LEGACY_PROTOCOL_VERSIONS.join(', ')}`;

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `POST/GET/DELETE /mcp`: MCP Streamable HTTP for both protocol eras, as a chain of small steps
 * (ready → authenticate → negotiate the transport → parse → classify → session → dispatch), each of
 * which either answers the request or hands on what the next one needs. The handler never rejects:
 * a request that throws is answered 500 (or its connection cut) and logged.
 */
export function createMcpEndpoint(
  options: McpEndpointOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { getConfig, services, maxBodyBytes, logger, anonymousKeyId, audit, tokens, metrics } = options;
  const { dispatcher, streams } = services;

  /**
   * 2025 era: the signed session id must be present (400), valid under a current session key, issued to this key,
   * not ended and not past its maximum age (404, which tells the agent to initialize a new session).
   * `id`: the parsed request's id, echoed in the refusal (null on GET/DELETE, which have no body).
   */
  function session(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    id: RpcId = null,
  ): { claims: SessionClaims; token: string } | undefined {
    const token = header(req, 'mcp-session-id');
    if (token === undefined || token === '') {
      sendRpcError(res, 400, RpcErrorCode.TransportError, 'Bad Request: Mcp-Session-Id header is required', { id });
      return undefined;
    }
    const admitted = services.sessionGuard.admit(
      token,
      auth.principal.keyId,
      auth.config.sessionKeys,
      'streamable-http',
    );
    if (!admitted.ok) {
      logger.debug({ keyId: auth.principal.keyId, reason: admitted.reason }, 'session refused');
      sendRpcError(res, 404, RpcErrorCode.SessionNotFound, 'Session not found', { id });
      return undefined;
    }
    const version = header(req, 'mcp-protocol-version');
    if (version !== undefined && !LEGACY_PROTOCOL_VERSIONS.includes(version)) {
      sendRpcError(
        res,
        400,
        RpcErrorCode.TransportError,
        `Bad Request: Unsupported protocol version: ${version} (${UNSUPPORTED_LEGACY_VERSION_HINT})`,
        { id },
      );
      return undefined;
    }
    return { claims: admitted.claims, token };
  }

  async function post(req: IncomingMessage, res: ServerResponse, auth: Authenticated): Promise<void> {
    const accept = req.headers.accept ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      sendRpcError(
        res,
        406,
        RpcErrorCode.TransportError,
        'Not Acceptable: Client must accept both application/json and text/event-stream',
      );
      return;
    }
    const parsed = await readJsonBody(req, res, maxBodyBytes);
    if (parsed === undefined) return;
    const body = parsed.body;
    if (Array.isArray(body) && body.length > MAX_BATCH_SIZE) {
      sendRpcError(
        res,
        400,
        RpcErrorCode.InvalidRequest,
        `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`,
      );
      return;
    }
    const route = classifyInbound({
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

  async function postModern(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    route: InboundModernRoute,
  ): Promise<void> {
    const message = route.message;
    const id = 'id' in message ? message.id : null;
    const revision = route.classification.revision;
    if (revision === undefined || !MODERN_PROTOCOL_VERSIONS.includes(revision)) {
      const requested = revision ?? 'unknown';
      sendRpcError(res, 400, RpcErrorCode.UnsupportedProtocolVersion, `Unsupported protocol version: ${requested}`, {
        data: { supported: MODERN_PROTOCOL_VERSIONS, requested },
        id,
      });
      return;
    }
    if (route.messageKind !== 'request') {
      sendEmpty(res, 202);
      return;
    }
    const rejection = checkStandardHeaders(
      {
        protocolVersion: stripOws(header(req, 'mcp-protocol-version')),
        method: stripOws(header(req, 'mcp-method')),
        name: stripOws(header(req, 'mcp-name')),
      },
      message.method,
      message.params,
      revision,
    );
    const paramRejection =
      rejection ??
      dispatcher.paramHeaderMismatch(message as RpcRequest, auth.principal.allowList, (name) =>
        stripOws(header(req, name.toLowerCase())),
      );
    if (paramRejection !== undefined) {
      sendRpcError(res, 400, RpcErrorCode.HeaderMismatch, paramRejection.message, { data: paramRejection.data, id });
      return;
    }
    if (message.method === 'subscriptions/listen') {
      await serveListen(res, message as RpcRequest, auth, services, logger);
      return;
    }
    const abort = new RequestAbort(req, res);
    const channel = new ResponseChannel(res, undefined, undefined);
    const context: DispatchContext = {
      principal: auth.principal,
      era: 'modern',
      cancellation: abort,
      sessionKeys: auth.config.sessionKeys,
      receivedAt: auth.receivedAt,
      channel,
      origin: requestOrigin(req),
    };
    channel.finish(
      await services.admission.run(auth.principal.keyId, undefined, id, () =>
        dispatcher.dispatch(message as RpcRequest, context),
      ),
    );
  }

  async function postLegacy(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Authenticated,
    route: InboundLegacyRoute,
    body: unknown,
  ): Promise<void> {
    if (route.reason === 'initialize') {
      const answer = dispatcher.initialize(body as RpcRequest, auth.principal, auth.config.sessionKeys);
      sendJson(
        res,
        answer.status,
        answer.body,
        answer.sessionId === undefined ? undefined : { 'mcp-session-id': answer.sessionId },
      );
      return;
    }
    const opened = session(req, res, auth, echoableId(body));
    if (opened === undefined) return;
    const sessionId = opened.token;
    switch (route.reason) {
      case 'no-claim': {
        const request = body as RpcRequest;
        const abort = new RequestAbort(req, res);
        // As the SDK's 2025-era servers, which answer on an event stream, when the agent ranks it first.
        // If the answer becomes a stream, it is resumable, and a dropped connection does not cancel the call.
        const resumable = {
          store: services.eventStore,
          holder: sessionId,
          keyId: auth.principal.keyId,
          requestId: request.id,
          priming: primes(opened.claims.protocolVersion),
          abort,
        };
        const channel = new ResponseChannel(
          res,
          undefined,
          services.serverRequests.forSession({ sessionId, keyId: auth.principal.keyId }),
          prefersEventStream(req.headers.accept ?? ''),
          resumable,
        );
        abort.keepRunningWhile(channel);
        const context: DispatchContext = {
          principal: auth.principal,
          era: 'legacy',
          cancellation: abort,
          sessionKeys: auth.config.sessionKeys,
          receivedAt: auth.receivedAt,
          sessionId,
          agentCapabilities: opened.claims.clientCapabilities,
          channel,
          origin: requestOrigin(req, opened.claims.clientInfo),
        };
        const key = services.inFlight.register(sessionId, request.id, abort);
        try {
          channel.finish(
            await services.admission.run(auth.principal.keyId, sessionId, request.id, () =>
              dispatcher.dispatch(request, context),
            ),
          );
        } finally {
          services.inFlight.done(key, abort);
        }
        return;
      }
      case 'batch': {
        const messages = body as Array<{ id?: unknown; method?: unknown }>;
        if (messages.some((m) => m.method === 'initialize')) {
          sendRpcError(
            res,
            400,
            RpcErrorCode.InvalidRequest,
            'Invalid Request: Only one initialization request is allowed',
          );
          return;
        }
        const requests: RpcRequest[] = [];
        for (const m of messages) {
          if (typeof m.method === 'string' && m.id !== undefined) requests.push(m as RpcRequest);
          else if (typeof m.method === 'string') clientNotification(m, sessionId, auth.principal.keyId);
          else clientResponse(m, sessionId, auth.principal.keyId);
        }
        if (requests.length === 0) {
          sendEmpty(res, 202);
          return;
        }
        // A batch is answered as one JSON array: related notifications have nowhere to go and are dropped.
        const abort = new RequestAbort(req, res);
        const context: DispatchContext = {
          principal: auth.principal,
          era: 'legacy',
          cancellation: abort,
          sessionKeys: auth.config.sessionKeys,
          receivedAt: auth.receivedAt,
          sessionId,
          origin: requestOrigin(req, opened.claims.clientInfo),
        };
        const answers = await Promise.all(
          requests.map((m) =>
            services.admission.run(auth.principal.keyId, sessionId, m.id, () => dispatcher.dispatch(m, context)),
          ),
        );
        if (!res.writableEnded && !res.destroyed) sendJson(res, 200, `[${answers.map((a) => a.body).join(',')}]`);
        return;
      }
      case 'notification':
        clientNotification(body, sessionId, auth.principal.keyId);
        sendEmpty(res, 202);
        return;
      case 'response':
        clientResponse(body, sessionId, auth.principal.keyId);
        sendEmpty(res, 202);
        return;
      default:
        sendEmpty(res, 202);
    }
  }

  /**
   * A 2025-era notification from the agent: a cancel aborts its request in flight here, or, when it
   * is not in flight here, is relayed to every other node (the one running it aborts it); others need no action.
   */
  function clientNotification(message: unknown, sessionId: string, keyId: string): void {
    if (!isPlainObject(message) || message['method'] !== 'notifications/cancelled') return;
    const params = message['params'];
    if (!isPlainObject(params)) return;
    const found = services.inFlight.cancel(
      sessionId,
      params['requestId'],
      params['reason'] ?? 'cancelled by the agent',
    );
    if (found) return;
    const relayed = services.relay.cancel({ sessionId, keyId }, params['requestId'], params['reason']);
    logger.debug(
      { requestId: params['requestId'], relayed },
      'notifications/cancelled for a request not in flight on this node: relayed to the other nodes',
    );
  }

  /**
   * The agent's answer to a server-to-client request (elicitation, sampling, roots): settles it when
   * this node sent it to this session, or is relayed to the node its id names.
   */
  function clientResponse(message: unknown, sessionId: string, keyId: string): void {
    const owner = { sessionId, keyId };
    if (services.serverRequests.settle(message, owner)) return;
    const outcome = services.relay.reply(message, owner);
    if (outcome !== 'relayed' && outcome !== 'not-a-server-request') {
      logger.warn(
        { id: isPlainObject(message) ? message['id'] : undefined, outcome },
        'reply to a server-to-client request dropped: no request of this session waits for it',
      );
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
    const lastEventId = header(req, 'last-event-id');
    if (lastEventId !== undefined && lastEventId !== '' && resume(res, lastEventId, opened.token)) return;
    streams.open(res, {
      secret: auth.secret,
      keyId: auth.principal.keyId,
      signingKeyId: opened.claims.signingKeyId,
      allowList: auth.principal.allowList,
      holder: opened.token,
      headers: { 'mcp-session-id': opened.token },
      resumable: {
        stream: services.eventStore.create(opened.token, auth.principal.keyId),
        priming: primes(opened.claims.protocolVersion),
      },
    });
  }

  /**
   * `GET /mcp` with `Last-Event-ID` naming a stream this node holds for this session (a GET stream,
   * or a POST stream whose call may still be running): the events after that id are replayed on this
   * response, which then carries the stream on (a POST stream ends after its result). The answer
   * stream of a request this node cannot resume (another node's, maybe a node that died; expired)
   * gets that request's error (StreamLost) at once, so the agent can act rather than wait for a
   * result that will not come. Anything else (a GET stream of another node, an unknown id) gets a
   * fresh stream with nothing replayed: false.
   */
  function resume(res: ServerResponse, lastEventId: string, holder: string): boolean {
    const found = services.eventStore.find(lastEventId, holder);
    if (!found.ok) {
      const requestId =
        found.reason === 'other-node' || found.reason === 'unknown-or-expired'
          ? requestIdOfEventId(lastEventId)
          : undefined;
      if (requestId !== undefined) {
        logger.debug(
          { lastEventId, reason: found.reason },
          'Last-Event-ID names an answer stream this node cannot resume: its request is failed',
        );
        res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': holder });
        res.end(
          sseEvent(
            errorBody(requestId, RpcErrorCode.StreamLost, streamLostMessage(found.reason), { reason: found.reason }),
          ),
        );
        return true;
      }
      logger.debug(
        { lastEventId, reason: found.reason },
        'Last-Event-ID names no stream held on this node: a fresh stream opens, nothing replayed',
      );
      return false;
    }
    res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': holder });
    res.flushHeaders();
    const { replayed, gap } = found.stream.attach(res, found.afterSeq);
    if (gap)
      logger.debug(
        { lastEventId },
        'stream resumed: some events after Last-Event-ID had already been dropped by the event store bounds',
      );
    logger.debug({ lastEventId, replayed }, 'stream resumed');
    return true;
  }

  /**
   * 2025 era: ending a session. Its id is refused from now on (404) on this node and, told through
   * the control plane, on every other; what this node holds for it (notification streams, resource
   * subscriptions, log level) is dropped (other nodes drop theirs when they are told).
   */
  function del(req: IncomingMessage, res: ServerResponse, auth: Authenticated): void {
    if (refuseModern(req, res)) return;
    const opened = session(req, res, auth);
    if (opened === undefined) return;
    services.relay.endSession(opened.token, opened.claims);
    streams.endHolder(opened.token);
    services.eventStore.endHolder(opened.token);
    services.subscriptions.forget(opened.token);
    services.logLevels.forget(opened.token);
    sendEmpty(res, 200);
  }

  function refuseModern(req: IncomingMessage, res: ServerResponse): boolean {
    const version = header(req, 'mcp-protocol-version');
    if (version === undefined || !isModernProtocolVersion(version)) return false;
    sendRpcError(res, 405, RpcErrorCode.TransportError, 'Method not allowed.', { headers: { allow: 'POST' } });
    return true;
  }

  /** Serves the request; returns the caller once authenticated (for the audit record of an edge refusal). */
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<Authenticated | undefined> {
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      sendRpcError(res, 405, RpcErrorCode.TransportError, 'Method not allowed.', {
        headers: { allow: 'GET, POST, DELETE' },
      });
      return undefined;
    }
    let auth = authenticateRequest(getConfig, req, res, anonymousKeyId, tokens);
    if (auth instanceof Promise) auth = await auth;
    if (auth === undefined) return undefined;
    if (req.method === 'POST') await post(req, res, auth);
    else if (req.method === 'GET') get(req, res, auth);
    else del(req, res, auth);
    return auth;
  }

  // Failures are answered here rather than by a `.catch` closure per request on the caller's side (the hot path).
  return async function mcpEndpoint(req, res) {
    const receivedAt = performance.now();
    let auth: Authenticated | undefined;
    try {
      auth = await serve(req, res);
    } catch (error) {
      answerFailure(res, logger, error, 'MCP request failed');
    }
    if (audit !== undefined) recordEdgeRefusal(audit, req, res, auth, receivedAt);
    if (metrics !== undefined) {
      const refused = edgeRefusalCode(res);
      if (refused !== undefined) metrics.refusal(refused);
    }
  };
}
