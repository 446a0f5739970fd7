import { SdkError, SdkErrorCode, type JSONRPCMessage } from '@modelcontextprotocol/client';
import { PortcullisError } from '../../../common/src/index.ts';
import type { Cancellation } from './cancellation.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';
import { UpstreamErrorCode } from './upstream-errors.ts';

/**
 * The hot path of relaying a request to a 2025-era upstream, beside the SDK's `Client` on the same
 * transport. The SDK's `Protocol` costs, per relayed request, zod validation of every inbound
 * message (several times over), a decoded and re-validated copy of the result, a request-scoped
 * async context and its own bookkeeping; at 32 concurrent calls that was most of the node's
 * upstream-side CPU. Here a request is written as JSON-RPC with an id of the relay's own, and its
 * response is taken off the transport before the SDK's `Protocol` sees it: the result object
 * reaches the agent as the upstream sent it, checked only for the JSON-RPC shape.
 *
 * What stays with the SDK `Client` on the same connection: the handshake, catalogs, health,
 * notifications, server-to-client requests (answered through the caller's `onRequest`), and every
 * 2026-07-28 connection (whose `input_required` rounds the SDK drives).
 *
 * Kept per relayed request, as the SDK's `Protocol` does it: the call timeout (restarted by each
 * progress notification), progress under the caller's callback, and `notifications/cancelled`
 * to the upstream when the caller aborts or the timeout fires.
 */

/**
 * Ids of relayed requests: a range of their own, so they never meet the SDK client's (which count
 * up from 0 for the handshake, listings and pings). Kept below 2^31 for servers that read ids as
 * 32-bit integers; after the last one the range starts again (ids still pending are skipped).
 */
const FIRST_ID = 1_000_000_000;
const LAST_ID = 2_147_483_647;

/** Methods a 2025-era connection does not have: the SDK refuses them locally, so they stay on its path. */
const SDK_ONLY_METHODS = new Set(['initialize', 'server/discover', 'subscriptions/listen']);

export interface RelayedRequest {
  readonly jsonrpc: '2.0';
  readonly id: number;
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

/** What one relayed request tells the channel that carries it. */
export interface ChannelCall {
  readonly request: RelayedRequest;
  /** W3C trace context an HTTP channel sends as the `traceparent` header (traces on). */
  readonly traceparent?: string | undefined;
  /** Messages that arrived for this request on a stream of its own (an HTTP response). */
  deliver(message: unknown): void;
  /** Set by a channel that can stop a request's own stream when the relay gives up on it. */
  abortStream?: () => void;
}

/** How relayed requests reach one transport. */
export interface RelayChannel {
  /** Sends one request. A rejection (HTTP status, network error) fails the call with that error. */
  send(call: ChannelCall): Promise<void>;
  /** Sends a notification (cancellation). */
  notify(message: JSONRPCMessage): Promise<void>;
  /** Releases what the channel holds (keep-alive sockets) once the connection is closed. */
  close?(): void;
}

export interface LeanRequestOptions {
  cancellation?: Cancellation | undefined;
  timeoutMs: number;
  /** `notifications/progress` params without the progress token; absent: no progress token is sent. */
  onProgress?: ((params: Record<string, unknown>) => void) | undefined;
  /**
   * Runs a message that arrived on this request's own stream and is not its response (a
   * server-to-client request, a notification) in the caller's async context, so the SDK's
   * handlers can tell which call it belongs to.
   */
  inContext: (deliver: () => void) => void;
  /** W3C trace context for an HTTP channel's `traceparent` header (see ChannelCall). */
  traceparent?: string | undefined;
}

interface Pending {
  readonly call: ChannelCall;
  readonly resolve: (result: Record<string, unknown>) => void;
  readonly reject: (error: unknown) => void;
  readonly onProgress: ((params: Record<string, unknown>) => void) | undefined;
  readonly timeoutMs: number;
  /** performance.now() past which the request times out (pushed back by each progress notification). */
  deadline: number;
  cancellation: Cancellation | undefined;
  onAbort: (() => void) | undefined;
}

export class LeanRelay {
  private readonly upstream: string;
  private readonly channel: RelayChannel;
  /** Hands a message the relay does not own to the SDK's client (after the SDK's own validation). */
  private readonly handOn: (message: unknown) => void;
  private readonly pending = new Map<number, Pending>();
  private nextId = FIRST_ID;
  private closedWith: Error | undefined;
  /**
   * One timer for all pending requests' timeouts rather than one each (a timer per request was
   * about 1.5% of the node's CPU at 32 concurrent calls): it fires at the earliest deadline it
   * knows of, times out what is due and sets itself for the next. Unref'd: pending requests keep
   * the process alive by their own sockets and pipes.
   */
  private sweep: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;

  constructor(upstream: string, channel: RelayChannel, handOn: (message: unknown) => void) {
    this.upstream = upstream;
    this.channel = channel;
    this.handOn = handOn;
  }

  /** Whether this relay carries `method` (the rest go through the SDK's client). */
  carries(method: string): boolean {
    return this.closedWith === undefined && !SDK_ONLY_METHODS.has(method);
  }

  request(
    method: string,
    params: Record<string, unknown> | undefined,
    options: LeanRequestOptions,
  ): Promise<Record<string, unknown>> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const cancellation = options.cancellation;
    if (cancellation?.aborted)
      return Promise.reject(new SdkError(SdkErrorCode.RequestTimeout, String(cancellation.reason)));
    const id = this.takeId();
    const onProgress = options.onProgress;
    const sentParams = onProgress
      ? { ...params, _meta: { ...(params?.['_meta'] as Record<string, unknown> | undefined), progressToken: id } }
      : params;
    const request: RelayedRequest =
      sentParams === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params: sentParams };
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const call: ChannelCall = {
        request,
        traceparent: options.traceparent,
        deliver: (message) => {
          if (!this.intercept(message)) options.inContext(() => this.handOn(message));
        },
      };
      const timeoutMs = options.timeoutMs;
      const entry: Pending = {
        call,
        resolve,
        reject,
        onProgress,
        timeoutMs,
        deadline: performance.now() + timeoutMs,
        cancellation,
        onAbort: undefined,
      };
      this.pending.set(id, entry);
      this.sweepBy(entry.deadline);
      if (cancellation) {
        entry.onAbort = () => this.cancel(id, new SdkError(SdkErrorCode.RequestTimeout, String(cancellation.reason)));
        cancellation.onAbort(entry.onAbort);
      }
      this.channel.send(call).catch((error: unknown) => this.settle(id)?.reject(error));
    });
  }

  /**
   * Takes a message off the transport when it belongs to a relayed request: its response, or its
   * progress. Returns false for everything else (the SDK's client handles it). A late response to
   * a request already given up on is dropped here too.
   */
  readonly intercept = (message: unknown): boolean => {
    if (typeof message !== 'object' || message === null) return false;
    const m = message as Record<string, unknown>;
    if (m['method'] === 'notifications/progress') return this.onProgress(m['params']);
    if ('method' in m) return false;
    const id = m['id'];
    if (typeof id !== 'number' || id < FIRST_ID) return false;
    const entry = this.settle(id);
    if (!entry) return true;
    if (m['jsonrpc'] !== '2.0') entry.reject(this.malformed(entry.call.request.method, 'its "jsonrpc" is not "2.0"'));
    else if ('result' in m) {
      const result = m['result'];
      if (!isPlainObject(result))
        entry.reject(this.malformed(entry.call.request.method, 'its result is not an object'));
      else entry.resolve('resultType' in result ? withoutResultType(result) : result);
    } else if (isPlainObject(m['error'])) {
      const error = m['error'];
      const code = error['code'];
      const text = error['message'];
      if (typeof code !== 'number' || !Number.isInteger(code) || typeof text !== 'string')
        entry.reject(this.malformed(entry.call.request.method, 'its error has no integer code and string message'));
      else entry.reject(new UpstreamRpcError(code, text, error['data']));
    } else entry.reject(this.malformed(entry.call.request.method, 'it has neither a result nor an error'));
    return true;
  };

  /** The transport closed: every relayed request fails as the SDK's would, and later ones are refused. */
  close(): void {
    if (this.closedWith) return;
    const closed = new SdkError(SdkErrorCode.ConnectionClosed, 'Connection closed');
    this.closedWith = closed;
    clearTimeout(this.sweep);
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(closed);
    this.channel.close?.();
  }

  /** Relayed requests waiting for their response. */
  get size(): number {
    return this.pending.size;
  }

  private onProgress(params: unknown): boolean {
    if (!isPlainObject(params)) return false;
    const token = params['progressToken'];
    if (typeof token !== 'number' || token < FIRST_ID) return false;
    const entry = this.pending.get(token);
    if (!entry?.onProgress) return true;
    entry.deadline = performance.now() + entry.timeoutMs;
    const { progressToken: _, ...progress } = params;
    entry.onProgress(progress);
    return true;
  }

  /** Gives up on a request (timeout, abort): tells the upstream, as the SDK does, and rejects. */
  private cancel(id: number, reason: Error): void {
    const entry = this.settle(id);
    if (!entry) return;
    entry.call.abortStream?.();
    const cancelled: JSONRPCMessage = {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: id, reason: reason.message },
    };
    this.channel.notify(cancelled).catch(() => undefined);
    entry.reject(reason);
  }

  /** Removes a pending request and its abort listener; undefined when it is no longer pending. */
  private settle(id: number): Pending | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    if (entry.onAbort) entry.cancellation?.offAbort(entry.onAbort);
    return entry;
  }

  /** Makes sure the sweep runs by `deadline`. */
  private sweepBy(deadline: number): void {
    if (deadline >= this.sweepAt) return;
    clearTimeout(this.sweep);
    this.sweepAt = deadline;
    this.sweep = setTimeout(this.timeOut, Math.max(0, deadline - performance.now()));
    this.sweep.unref();
  }

  /** The sweep: fails every request past its deadline and sets the timer for the earliest of the rest. */
  private readonly timeOut = (): void => {
    this.sweep = undefined;
    this.sweepAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, entry] of this.pending) {
      if (entry.deadline <= now)
        this.cancel(id, new SdkError(SdkErrorCode.RequestTimeout, 'Request timed out', { timeout: entry.timeoutMs }));
      else if (entry.deadline < next) next = entry.deadline;
    }
    if (next !== Infinity) this.sweepBy(next);
  };

  private malformed(method: string, why: string): PortcullisError {
    return new PortcullisError(
      UpstreamErrorCode.ERROR,
      `upstream "${this.upstream}" answered ${method} with a malformed JSON-RPC response: ${why}`,
      { upstream: this.upstream },
    );
  }

  private takeId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id === LAST_ID ? FIRST_ID : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A 2025-era result never carries `resultType`; the SDK's 2025 codec drops one if it does, and so does the relay. */
function withoutResultType(result: Record<string, unknown>): Record<string, unknown> {
  const { resultType: _, ...rest } = result;
  return rest;
}
