import { AsyncLocalStorage } from 'node:async_hooks';
import { ProtocolError, StreamableHTTPClientTransport, type Client } from '@modelcontextprotocol/client';
import { z } from 'zod';
import { PortcullisError, errorMessage } from '../../../common/src/index.ts';
import { paramHeaderDeclarations, paramHeaders } from '../mcp/param-headers.ts';
import { RedirectedError } from './http-channel.ts';
import type { LeanRelay } from './lean-relay.ts';
import { ProgressTap, type ProgressRoute } from './progress-tap.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';
import { RpcCode, UpstreamErrorCode, isSessionExpired, relayError } from './upstream-errors.ts';
import type { RelayOptions, RpcMessage } from './upstream-router.ts';
import { isModernConnection, type UpstreamSubscriptions } from './upstream-subscriptions.ts';

/** Any JSON object: results are relayed as the upstream sent them, not re-shaped by a schema. */
export const PassthroughResult = z.looseObject({});

/** Requests that may be sent again after a transparent re-initialization (they change nothing upstream). */
const SAFE_TO_RETRY = new Set([
  'ping',
  'server/discover',
  'tools/list',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
]);

/** What the relay needs of the connection it relays over (upstream-connection.ts). */
export interface RelayHost {
  readonly name: string;
  callTimeoutMs(): number;
  /** The live client, or a PortcullisError UNAVAILABLE saying why there is none. */
  usableClient(): Client;
  /** A re-initialization under way, if any: requests wait for it. */
  reinitializing(): Promise<void> | undefined;
  /** The upstream forgot the session: open a new connection in its place. */
  reinitialize(old: Client, cause: unknown): Promise<void>;
  /** The tool with this upstream name, as last listed. */
  tool(name: string): Readonly<Record<string, unknown>> | undefined;
  /** The lean relay beside `client`, if it has one (a 2025-era connection), and dropping it. */
  leanRelay(client: Client): LeanRelay | undefined;
  dropLeanRelay(client: Client): void;
  /** Each relayed request's outcome, for the upstream's health (see `UpstreamConnection.relayed`). */
  relayed(failure: PortcullisError | undefined): void;
}

/** The relayed request a server-to-client message belongs to, carried through the SDK's async work. */
interface CallContext {
  readonly relay: UpstreamRelay;
  readonly options: RelayOptions;
  /** Where the call's progress goes when it is relayed on the SDK's path (see progress-tap.ts). */
  progress?: ProgressRoute;
}
const currentCall = new AsyncLocalStorage<CallContext>();
const ignoreProgress = (): void => undefined;

/** Runs `work` outside any relayed call's context (connects, listings, health probes are nobody's call). */
export function outsideCalls<T>(work: () => T): T {
  return currentCall.exit(work);
}

/**
 * Relaying over one upstream connection: requests with their timeouts, progress, cancellation and
 * retry after a lost session, on the lean relay of a 2025-era connection or the SDK client's own
 * path (see README.md), and the server-to-client requests and notifications that belong to them.
 */
export class UpstreamRelay {
  private readonly inflight = new Set<CallContext>();
  readonly progressTap = new ProgressTap(() => {
    const call = currentCall.getStore();
    return call?.relay === this ? call.progress : undefined;
  });

  constructor(
    private readonly host: RelayHost,
    private readonly subscriptions: UpstreamSubscriptions,
    private readonly logger: { info(obj: object, msg: string): void },
  ) {}

  /** Requests relayed right now. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * Relays one request and resolves with the upstream's result JSON, unchanged. A request that
   * meets an expired session re-initializes the connection and is sent again once, if it is safe
   * to repeat.
   */
  async request(message: RpcMessage, options: RelayOptions = {}): Promise<Record<string, unknown>> {
    if (message.method === 'resources/subscribe' || message.method === 'resources/unsubscribe')
      return this.changeSubscription(message.method, message, options);
    return this.relay(message, options);
  }

  /** Sends a notification (e.g. `notifications/roots/list_changed`). */
  async notify(message: RpcMessage): Promise<void> {
    const client = this.host.usableClient();
    try {
      await client.notification({ method: message.method, ...(message.params ? { params: message.params } : {}) });
    } catch (error) {
      throw relayError(this.host.name, message.method, error, { aborted: false, timeoutMs: 0 });
    }
  }

  /**
   * Resource subscriptions are remembered so a reconnect can make them again; a 2026-07-28 upstream,
   * which has no `resources/subscribe`, is subscribed through one `subscriptions/listen` stream.
   */
  private async changeSubscription(
    method: 'resources/subscribe' | 'resources/unsubscribe',
    message: RpcMessage,
    options: RelayOptions,
  ): Promise<Record<string, unknown>> {
    const uri = message.params?.['uri'];
    if (typeof uri !== 'string')
      throw new UpstreamRpcError(RpcCode.INVALID_PARAMS, `Invalid params: ${method} needs a string uri`);
    const client = this.host.usableClient();
    if (isModernConnection(client)) {
      const timeoutMs = options.timeoutMs ?? this.host.callTimeoutMs();
      try {
        return await (method === 'resources/subscribe'
          ? this.subscriptions.listenFor(client, uri, timeoutMs)
          : this.subscriptions.stopListeningFor(client, uri, timeoutMs));
      } catch (error) {
        throw error instanceof UpstreamRpcError
          ? error
          : relayError(this.host.name, 'subscriptions/listen', error, { aborted: false, timeoutMs });
      }
    }
    const result = await this.relay(message, options);
    this.subscriptions.record(method, uri);
    return result;
  }

  private async relay(message: RpcMessage, options: RelayOptions): Promise<Record<string, unknown>> {
    const timeoutMs = options.timeoutMs ?? this.host.callTimeoutMs();
    for (let retried = false; ; retried = true) {
      await this.host.reinitializing()?.catch(() => undefined);
      const client = this.host.usableClient();
      const hadSession = client.transport?.sessionId !== undefined;
      try {
        const result = await this.send(client, message, options, timeoutMs);
        this.host.relayed(undefined);
        return result;
      } catch (error) {
        const aborted = options.cancellation?.aborted ?? false;
        if (!retried && !aborted && isSessionExpired(error, hadSession)) {
          await this.host.reinitialize(client, error).catch(() => undefined);
          if (this.isSafeToRetry(message)) continue;
          throw new PortcullisError(
            UpstreamErrorCode.UNAVAILABLE,
            `upstream "${this.host.name}" lost its session; the connection was re-initialized, ` +
              `but ${describeRequest(message)} is not safe to send twice`,
            { upstream: this.host.name },
          );
        }
        const relayed = relayError(this.host.name, message.method, error, { aborted, timeoutMs });
        // The upstream's own JSON-RPC errors and the caller's cancellations say nothing about its health.
        if (relayed instanceof PortcullisError && relayed.code !== UpstreamErrorCode.CANCELLED)
          this.host.relayed(relayed);
        throw relayed;
      }
    }
  }

  private isSafeToRetry(message: RpcMessage): boolean {
    if (SAFE_TO_RETRY.has(message.method)) return true;
    if (message.method !== 'tools/call') return false;
    const annotations = this.host.tool(String(message.params?.['name']))?.['annotations'] as
      | Record<string, unknown>
      | undefined;
    return annotations?.['readOnlyHint'] === true || annotations?.['idempotentHint'] === true;
  }

  private async send(
    client: Client,
    message: RpcMessage,
    options: RelayOptions,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const call: CallContext = { relay: this, options };
    const traceparent = options.traceparent;
    // Trace context goes in a header over Streamable HTTP, in `_meta` over stdio and SSE (no per-request headers).
    const traceHeader = traceparent !== undefined && client.transport instanceof StreamableHTTPClientTransport;
    const meta =
      traceparent === undefined || (traceHeader && options.meta?.['traceparent'] === undefined)
        ? options.meta
        : { ...options.meta, traceparent };
    const { params, agentProgressToken } = relayParams(message.params, meta);
    const onProgress = options.onProgress;
    const onprogress =
      agentProgressToken !== undefined && onProgress
        ? (progress: Record<string, unknown>) => onProgress({ ...progress, progressToken: agentProgressToken })
        : undefined;
    this.inflight.add(call);
    try {
      const lean = this.host.leanRelay(client);
      if (lean?.carries(message.method)) {
        try {
          return await lean.request(message.method, params, {
            cancellation: options.cancellation,
            timeoutMs,
            onProgress: onprogress,
            inContext: (deliver) => currentCall.run(call, deliver),
            traceparent: traceHeader ? traceparent : undefined,
          });
        } catch (error) {
          if (!(error instanceof RedirectedError)) throw error;
          // The upstream redirects its endpoint: its requests go through the SDK's transport, which follows redirects.
          this.host.dropLeanRelay(client);
          this.logger.info(
            { status: error.status },
            'upstream redirects relayed requests; relaying through the SDK transport',
          );
        }
      }
      // The tap delivers progress in wire order; the SDK's own callback only keeps the timeout reset by it.
      if (onprogress) call.progress = { sink: onprogress, tokens: new Set() };
      return await currentCall.run(call, () =>
        client.request({ method: message.method, ...(params ? { params } : {}) }, PassthroughResult, {
          signal: options.cancellation?.signal(),
          timeout: timeoutMs,
          resetTimeoutOnProgress: true,
          ...(onprogress ? { onprogress: ignoreProgress } : {}),
          ...(options.returnInputRequired ? { allowInputRequired: true } : {}),
          ...this.requestHeaders(client, message.method, params, traceHeader ? traceparent : undefined),
        }),
      );
    } finally {
      this.inflight.delete(call);
      if (call.progress) this.progressTap.release(call.progress);
    }
  }

  /** Headers of a request on the SDK's path: a tool's `Mcp-Param-*` headers and the trace context. */
  private requestHeaders(
    client: Client,
    method: string,
    params: Record<string, unknown> | undefined,
    traceparent: string | undefined,
  ): { headers?: Record<string, string> } {
    const declared = this.paramHeadersFor(client, method, params);
    if (traceparent === undefined) return declared;
    return { headers: { ...declared.headers, traceparent } };
  }

  /**
   * A 2026-07-28 upstream's `tools/call` carries the `Mcp-Param-*` headers its tool declares
   * (SEP-2243), as the SDK's `callTool` would send them; the upstream rejects a call without them.
   */
  private paramHeadersFor(
    client: Client,
    method: string,
    params: Record<string, unknown> | undefined,
  ): { headers?: Record<string, string> } {
    if (method !== 'tools/call' || !isModernConnection(client)) return {};
    const name = params?.['name'];
    const declarations = typeof name === 'string' ? paramHeaderDeclarations(this.host.tool(name)?.['inputSchema']) : [];
    if (declarations.length === 0) return {};
    const headers = paramHeaders(declarations, params?.['arguments']);
    return Object.keys(headers).length === 0 ? {} : { headers };
  }

  /**
   * A notification the upstream sent: to the relayed call it belongs to, if that call takes them;
   * false when it belongs to none (the connection hands it to the pool).
   */
  deliverNotification(message: RpcMessage): boolean {
    const call = currentCall.getStore();
    if (call?.relay !== this || !call.options.onNotification) return false;
    call.options.onNotification(message);
    return true;
  }

  /**
   * A server-to-client request (sampling, elicitation, roots): answered by the relayed call that
   * caused it. Over Streamable HTTP (and in the 2026-07-28 era) the SDK delivers it in that call's
   * async context; over stdio and SSE the protocol does not say, so it goes to the only request in
   * flight on this upstream, or, when several are, to the oldest of them if they all come from one
   * agent (`RelayOptions.agent`): whichever call asked, that agent is the one to answer. Requests of
   * different agents in flight, or none, refuse it rather than ask an agent another agent's question.
   */
  async serverRequest(method: string, params: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    const call = this.relatedCall();
    if (!call) {
      throw new ProtocolError(
        RpcCode.METHOD_NOT_FOUND,
        `Method not found: the gateway cannot relate ${method} to an agent's request (${this.inflight.size} requests ` +
          `${this.inflight.size === 0 ? '' : 'of different agents '}in flight on upstream "${this.host.name}")`,
      );
    }
    const onRequest = call.options.onRequest;
    if (!onRequest)
      throw new ProtocolError(RpcCode.METHOD_NOT_FOUND, `Method not found: the agent cannot answer ${method}`);
    try {
      return await onRequest(params === undefined ? { method } : { method, params });
    } catch (error) {
      if (error instanceof UpstreamRpcError) throw new ProtocolError(error.code, error.message, error.data);
      if (error instanceof ProtocolError) throw error;
      throw new ProtocolError(RpcCode.INTERNAL_ERROR, `the agent could not answer ${method}: ${errorMessage(error)}`);
    }
  }

  private relatedCall(): CallContext | undefined {
    const call = currentCall.getStore();
    if (call?.relay === this) return call;
    // A Set iterates in insertion order: the first is the oldest call in flight.
    const [oldest, ...others] = this.inflight;
    if (oldest === undefined) return undefined;
    if (others.length === 0) return oldest;
    const agent = oldest.options.agent;
    if (agent === undefined || others.some((other) => other.options.agent !== agent)) return undefined;
    return oldest.options.onRequest ? oldest : (others.find((other) => other.options.onRequest) ?? oldest);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeRequest(message: RpcMessage): string {
  return message.method === 'tools/call' ? `tools/call ${String(message.params?.['name'])}` : message.method;
}

/**
 * The params to send upstream: the agent's `_meta` merged in, minus its progress token, which the
 * SDK replaces with its own (the relay maps progress back to the agent's token).
 */
function relayParams(
  params: Record<string, unknown> | undefined,
  meta: Record<string, unknown> | undefined,
): { params: Record<string, unknown> | undefined; agentProgressToken: unknown } {
  const ownMeta = isPlainObject(params?.['_meta']) ? params['_meta'] : undefined;
  if (!ownMeta && !meta) return { params, agentProgressToken: undefined };
  const merged: Record<string, unknown> = { ...ownMeta, ...meta };
  const agentProgressToken = merged['progressToken'];
  delete merged['progressToken'];
  const out: Record<string, unknown> = { ...params };
  if (Object.keys(merged).length > 0) out['_meta'] = merged;
  else delete out['_meta'];
  return { params: out, agentProgressToken };
}
