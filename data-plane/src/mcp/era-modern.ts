import { isTooDeep } from '../../../common/src/index.ts';
import { GatewayError, RESULT_TOO_DEEP } from '../pipeline/gateway-error.ts';
import type { Operation, Outcome, Resumption, UpstreamAnswer, UpstreamCaller } from '../pipeline/operation.ts';
import type { RunOperation } from '../pipeline/pipeline.ts';
import { PIPELINE_METHODS } from '../pipeline/steps/authorize.ts';
import {
  forwardableMeta,
  progressTokenOf,
  relatedNotification,
  type RelayContext,
} from '../pipeline/upstream-relay.ts';
import { askIfDeclared } from './agent-capabilities.ts';
import type { DispatchContext, RpcRequest, ServerInfo } from './dispatcher.ts';
import { InputExchange, otherNodeRefusal, type InputExchanges, type OtherNode } from './input-required.ts';
import { errorBody, isPlainObject, resultBody, type RpcId, type RpcReply } from './json-rpc.ts';
import {
  CLIENT_CAPABILITIES_META_KEY,
  LIST_CACHE_SCOPE,
  MODERN_PROTOCOL_VERSIONS,
  RpcErrorCode,
  SERVER_INFO_META_KEY,
  isModernProtocolVersion,
} from './protocol.ts';
import type { RelayOptions, UpstreamRouter } from '../upstream/upstream-router.ts';

const OK = 200;
/** The SDK answers an unknown method on the 2026-07-28 path from its validation ladder, with HTTP 404. */
const METHOD_NOT_FOUND_STATUS = 404;
/**
 * The spec ties HTTP 400 to this code itself (an upstream's input_required asking for what the agent did not declare).
 */
const MISSING_CAPABILITY_STATUS = 400;

/**
 * Methods 2026-07-28 does not have: the session-bound ones (no session), and the Tasks methods the
 * revision removed (tasks are polled with `tasks/get`; there is no `tasks/list` nor `tasks/result`).
 */
const REMOVED_METHODS: ReadonlySet<string> = new Set([
  'ping',
  'logging/setLevel',
  'resources/subscribe',
  'resources/unsubscribe',
  'tasks/list',
  'tasks/result',
]);

/** The requests whose upstream call may wait for the agent's input, and the param naming their subject. */
const PARKABLE: ReadonlyMap<string, string> = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
]);

/** Relays a 2026-07-28 retry to the node holding its parked call and answers with what that node answered. */
export type RetryForwarder = (request: RpcRequest, context: DispatchContext, other: OtherNode) => Promise<RpcReply>;

export interface ModernEraOptions {
  readonly run: RunOperation;
  readonly router: UpstreamRouter;
  readonly exchanges: InputExchanges;
  readonly relay: RelayContext;
  readonly serverInfo: ServerInfo;
  /** `ttlMs` of list results. */
  readonly listTtlMs: number;
  /** The merged upstreams' capabilities as this era advertises them. */
  readonly capabilities: () => Record<string, unknown>;
}

/**
 * The 2026-07-28 revision at the edge: a stateless request becomes one operation; a retry carrying
 * `requestState` becomes an operation bound to the upstream of the call it continues (or is relayed
 * to the node holding that call); outcomes become results with `resultType`, the gateway's
 * identity and cache hints, or `input_required` with a state the gateway signs. Upstream calls of
 * requests that may need the agent's input go through an input exchange (input-required.ts).
 */
export class ModernEra {
  private readonly serverMeta: string;
  private readonly suffix: string;
  private readonly listSuffix: string;
  /** Where retries of calls parked on other nodes go; unset, they are refused naming that node. */
  private forwardRetry: RetryForwarder | undefined;

  constructor(private readonly options: ModernEraOptions) {
    this.serverMeta = JSON.stringify({ [SERVER_INFO_META_KEY]: options.serverInfo });
    this.suffix = `,"resultType":"complete","_meta":${this.serverMeta}`;
    this.listSuffix =
      `,"resultType":"complete","ttlMs":${options.listTtlMs},` +
      `"cacheScope":"${LIST_CACHE_SCOPE}","_meta":${this.serverMeta}`;
  }

  relayRetriesWith(forward: RetryForwarder): void {
    this.forwardRetry = forward;
  }

  async handle(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    const method = request.method;
    if (method === 'server/discover') return { status: OK, body: resultBody(request.id, this.discoverJson()) };
    if (!PIPELINE_METHODS.has(method) || REMOVED_METHODS.has(method))
      return this.error(request.id, GatewayError.methodNotFound());
    const operation = this.decode(request, context);
    if ('body' in operation) return operation;
    if ('kind' in operation) return this.retryElsewhere(request, context, operation);
    return this.encode(request.id, method, await this.options.run(operation));
  }

  private decode(request: RpcRequest, context: DispatchContext): Operation | RpcReply | OtherNode {
    let params = request.params ?? {};
    let callUpstream: UpstreamCaller | undefined;
    let resumes: Resumption | undefined;
    let continuesAuditId: string | undefined;
    const subjectField = PARKABLE.get(request.method);
    const subject = subjectField === undefined ? undefined : params[subjectField];
    if (typeof subject === 'string') {
      callUpstream = this.startExchange;
      if (params['requestState'] !== undefined) {
        const keyId = context.principal.keyId;
        const resumed = this.options.exchanges.resume(
          params['requestState'],
          keyId,
          request.method,
          subject,
          context.sessionKeys,
        );
        if ('code' in resumed)
          return { status: OK, body: errorBody(request.id, resumed.code, resumed.message, resumed.data) };
        if (resumed instanceof InputExchange) {
          resumes = { upstream: resumed.upstream, kind: 'parked' };
          continuesAuditId = resumed.auditId;
          callUpstream = (operation) => {
            resumed.answer(operation.params['inputResponses']);
            return this.nextAnswer(operation, resumed);
          };
        } else if (resumed.kind === 'other-node') {
          return resumed;
        } else {
          // A 2026-07-28 upstream's own round: called again with its state (the responses go as they came).
          const { requestState: _, ...rest } = params;
          params = resumed.upstreamState === undefined ? rest : { ...rest, requestState: resumed.upstreamState };
          resumes = { upstream: resumed.upstream, kind: 'round' };
        }
      }
    }
    return {
      id: request.id,
      method: request.method,
      params,
      principal: context.principal,
      sessionKeys: context.sessionKeys,
      cancellation: context.cancellation,
      channel: context.channel,
      callUpstream,
      resumes,
      ...(continuesAuditId === undefined ? {} : { continuesAuditId }),
      receivedAt: context.receivedAt ?? performance.now(),
      origin: context.origin,
    };
  }

  /**
   * A retry of a call parked on another node: relayed there, which checks it as its own (key,
   * signature, expiry, one-shot) and runs it through its pipeline; refused naming that node when it
   * cannot be relayed.
   */
  private retryElsewhere(
    request: RpcRequest,
    context: DispatchContext,
    other: OtherNode,
  ): Promise<RpcReply> | RpcReply {
    const forward = this.forwardRetry;
    const why = context.relayed
      ? 'the retry was relayed here from another node already'
      : forward === undefined
        ? 'this node relays no retries'
        : other.nodeTag === undefined
          ? "the requestState does not name that node's process"
          : undefined;
    if (why !== undefined || forward === undefined) {
      const refusal = otherNodeRefusal(other, this.options.exchanges.options.nodeId, why ?? '');
      return { status: OK, body: errorBody(request.id, refusal.code, refusal.message, refusal.data) };
    }
    return forward(request, context, other);
  }

  /** Starts the upstream call of a request that may need the agent's input, as an exchange that can park. */
  private readonly startExchange: UpstreamCaller = (operation, upstream, message) => {
    const subject = operation.target?.kind === 'upstream' ? operation.target.subject : operation.method;
    const exchange = this.options.exchanges.start(
      operation.principal!.keyId,
      operation.method,
      subject,
      upstream,
      operation.sessionKeys,
    );
    exchange.bind(operation.channel, progressTokenOf(operation.params));
    exchange.auditId = operation.auditId;
    const call = () =>
      this.options.router.request(upstream, message, this.exchangeRelayOptions(operation, upstream, exchange));
    const question = operation.askFirst;
    // A client approval: its elicitation is the exchange's first input round; the upstream is called once accepted.
    exchange.attach(
      question === undefined
        ? call()
        : question.settle(exchange.onRequest(question.request)).then((ended) => ended ?? call()),
    );
    return this.nextAnswer(operation, exchange);
  };

  /** What the exchange does next: the result, the input it needs (a new signed state), or its error (thrown). */
  private async nextAnswer(operation: Operation, exchange: InputExchange): Promise<UpstreamAnswer> {
    const outcome = await exchange.next(
      operation.cancellation.signal(),
      operation.channel,
      progressTokenOf(operation.params),
    );
    if (outcome.kind === 'input')
      return { kind: 'input', inputRequests: outcome.inputRequests, requestState: outcome.requestState };
    if (outcome.kind === 'error') throw outcome.error;
    const result = outcome.result;
    if (result['resultType'] !== 'input_required') return { kind: 'result', result };
    // A 2026-07-28 upstream's input_required: passed on as it came, its own state inside the gateway's.
    const upstreamState = typeof result['requestState'] === 'string' ? result['requestState'] : undefined;
    const subject = operation.target?.kind === 'upstream' ? operation.target.subject : operation.method;
    const requestState = this.options.exchanges.upstreamRoundState(
      operation.principal!.keyId,
      operation.method,
      subject,
      exchange.upstream,
      upstreamState,
      operation.sessionKeys,
    );
    return {
      kind: 'input',
      inputRequests: isPlainObject(result['inputRequests']) ? result['inputRequests'] : undefined,
      requestState,
    };
  }

  /**
   * Relay options of a call that may be parked: aborted by the exchange (not by the first HTTP
   * request, which ends with `input_required`), and whatever the upstream sends meanwhile goes to
   * the agent request waiting at that moment, progress under that request's token.
   */
  private exchangeRelayOptions(operation: Operation, upstream: string, exchange: InputExchange): RelayOptions {
    const agentMeta = operation.params['_meta'];
    const capabilities = isPlainObject(agentMeta) ? agentMeta[CLIENT_CAPABILITIES_META_KEY] : undefined;
    const options: RelayOptions = {
      cancellation: exchange.cancellation,
      onRequest: (request) => askIfDeclared(capabilities, request, exchange.onRequest),
      returnInputRequired: true,
      onProgress: (progress) => {
        const channel = exchange.channel;
        const token = exchange.progressToken;
        if (channel !== undefined && token !== undefined)
          channel.notify('notifications/progress', { ...progress, progressToken: token });
      },
      onNotification: (notification) => {
        const channel = exchange.channel;
        if (channel !== undefined) relatedNotification(notification, upstream, operation, channel, this.options.relay);
      },
    };
    if (operation.upstreamTraceparent !== undefined) options.traceparent = operation.upstreamTraceparent;
    const meta = forwardableMeta(agentMeta);
    // A 2026-07-28 upstream asks only for input the agent can give: it sees the agent's client capabilities, not the
    // gateway's.
    if (capabilities !== undefined && this.isModernUpstream(upstream))
      options.meta = { ...meta, [CLIENT_CAPABILITIES_META_KEY]: capabilities };
    else if (meta !== undefined) options.meta = meta;
    return options;
  }

  private isModernUpstream(upstream: string): boolean {
    const version = this.options.router.upstreams().find((u) => u.name === upstream)?.protocolVersion;
    return version !== undefined && isModernProtocolVersion(version);
  }

  private encode(id: RpcId, method: string, outcome: Outcome): RpcReply {
    switch (outcome.kind) {
      case 'result': {
        const result = outcome.result;
        // 2026-07-28 reads are cacheable: private (what a key may read depends on the key), the upstream's TTL if it
        // gave one.
        const cacheable =
          method === 'resources/read'
            ? {
                ...result,
                ttlMs: typeof result['ttlMs'] === 'number' ? result['ttlMs'] : 0,
                cacheScope: LIST_CACHE_SCOPE,
              }
            : result;
        let json: string;
        try {
          json = this.resultJson(cacheable, cacheable === result ? outcome.json : undefined);
        } catch (error) {
          if (!isTooDeep(error)) throw error;
          return this.error(id, RESULT_TOO_DEEP);
        }
        return { status: OK, body: resultBody(id, json) };
      }
      case 'json':
        return {
          status: OK,
          body: resultBody(id, splice(outcome.json, outcome.cacheable ? this.listSuffix : this.suffix)),
        };
      case 'input':
        return {
          status: OK,
          body: resultBody(id, this.inputRequiredJson(outcome.inputRequests, outcome.requestState)),
        };
      case 'error':
        return this.error(id, outcome.error);
    }
  }

  private error(id: RpcId, error: GatewayError): RpcReply {
    const status =
      error.code === RpcErrorCode.MethodNotFound
        ? METHOD_NOT_FOUND_STATUS
        : error.code === RpcErrorCode.MissingRequiredClientCapability
          ? MISSING_CAPABILITY_STATUS
          : error.httpStatus;
    const body = errorBody(id, error.code, error.message, error.data);
    return error.retryAfterSeconds === undefined
      ? { status, body }
      : { status, body, retryAfterSeconds: error.retryAfterSeconds };
  }

  /** The result serialized with 2026-07-28's `resultType` and the gateway's identity. */
  private resultJson(result: Record<string, unknown>, json: string | undefined): string {
    const meta = result['_meta'];
    if (isPlainObject(meta))
      return JSON.stringify({
        ...result,
        resultType: 'complete',
        _meta: { ...meta, [SERVER_INFO_META_KEY]: this.options.serverInfo },
      });
    // Splice the constant suffix in rather than copying the result object.
    return splice(json ?? JSON.stringify(result), this.suffix);
  }

  /**
   * A 2026-07-28 `InputRequiredResult`: the embedded requests (when there are any), the gateway's signed state, server
   * identity.
   */
  private inputRequiredJson(
    inputRequests: Readonly<Record<string, unknown>> | undefined,
    requestState: string,
  ): string {
    const requests = inputRequests === undefined ? '' : `"inputRequests":${JSON.stringify(inputRequests)},`;
    return (
      `{"resultType":"input_required",${requests}` +
      `"requestState":${JSON.stringify(requestState)},"_meta":${this.serverMeta}}`
    );
  }

  private discoverJson(): string {
    return (
      `{"supportedVersions":${JSON.stringify(MODERN_PROTOCOL_VERSIONS)},` +
      `"capabilities":${JSON.stringify(this.options.capabilities())}${this.listSuffix}}`
    );
  }
}

/** `json` (an object's text) with `suffix` (`,"key":…` members) added before its closing brace. */
function splice(json: string, suffix: string): string {
  return json === '{}' ? `{${suffix.slice(1)}}` : `${json.slice(0, -1)}${suffix}}`;
}
