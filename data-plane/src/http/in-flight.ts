import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, type RpcId, type RpcReply } from '../mcp/json-rpc.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { defaultAbortReason, type Cancellation } from '../upstream/cancellation.ts';

/**
 * Aborts a request's upstream work when the agent's connection closes before its answer was
 * written, or when the agent cancels it. A Cancellation: the lean relay is told through a plain
 * listener, and an AbortController is made only for the paths that ask for a signal.
 *
 * A 2025-era call whose answer is a resumable event stream outlives its connection (the spec: a
 * disconnection is not a cancellation): `keepRunningWhile` says when, and the stream's owner cancels the
 * call with `cancel` if the agent does not resume the stream in time.
 */
export class RequestAbort implements Cancellation {
  private controller: AbortController | undefined;
  private listeners: (() => void)[] | undefined;
  private watching = false;
  private onClose: (() => void) | undefined;
  private abortedWith: { readonly reason: unknown } | undefined;
  private outlives: { readonly outlivesConnection: boolean } | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {}

  get aborted(): boolean {
    this.watch();
    return this.abortedWith !== undefined;
  }

  get reason(): unknown {
    return this.abortedWith?.reason;
  }

  onAbort(listener: () => void): void {
    this.watch();
    if (this.abortedWith === undefined) (this.listeners ??= []).push(listener);
  }

  offAbort(listener: () => void): void {
    const listeners = this.listeners;
    if (listeners === undefined) return;
    const at = listeners.indexOf(listener);
    if (at !== -1) listeners.splice(at, 1);
  }

  signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = this.controller = new AbortController();
      this.watch();
      if (this.abortedWith !== undefined) controller.abort(this.abortedWith.reason);
    }
    return controller.signal;
  }

  /** When the connection closes while `channel.outlivesConnection` holds, the call goes on. */
  keepRunningWhile(channel: { readonly outlivesConnection: boolean }): void {
    this.outlives = channel;
  }

  /** The agent cancelled (2025 era `notifications/cancelled`), or gave up its dropped stream. */
  cancel(reason: unknown): void {
    this.abort(reason);
  }

  /** Starts watching the connection, once something wants to know (most answers are written before anything asks). */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    if (this.req.socket.destroyed) return this.abort(defaultAbortReason());
    this.onClose = () =>
      this.res.writableFinished || this.outlives?.outlivesConnection === true
        ? undefined
        : this.abort(defaultAbortReason());
    this.res.once('close', this.onClose);
  }

  /**
   * The call is over: stop watching its connection. On the legacy HTTP+SSE transport that
   * connection is the session's long-lived stream, which would otherwise collect a listener per call.
   */
  release(): void {
    if (this.onClose !== undefined) this.res.off('close', this.onClose);
    this.onClose = undefined;
    this.listeners = undefined;
  }

  private abort(reason: unknown): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = { reason };
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }
}

/**
 * The 2025-era requests in flight on this node, by session and JSON-RPC id, so that an agent's
 * `notifications/cancelled` aborts the upstream call. Nodes are stateless: a cancel that lands on
 * another node than the call is relayed to every node through the control plane (relay/), and the
 * node holding the call aborts it here.
 */
export class InFlightRequests {
  private readonly requests = new Map<string, RequestAbort>();

  register(sessionId: string, id: string | number, abort: RequestAbort): string {
    const key = `${typeof id}:${id}\n${sessionId}`;
    this.requests.set(key, abort);
    return key;
  }

  done(key: string, abort: RequestAbort): void {
    if (this.requests.get(key) === abort) this.requests.delete(key);
    abort.release();
  }

  /** Aborts the request `id` of `sessionId`; false when it is not in flight on this node. */
  cancel(sessionId: string, id: unknown, reason: unknown): boolean {
    if (typeof id !== 'string' && typeof id !== 'number') return false;
    const key = `${typeof id}:${id}\n${sessionId}`;
    const abort = this.requests.get(key);
    if (abort === undefined) return false;
    this.requests.delete(key);
    abort.cancel(reason);
    return true;
  }

  get size(): number {
    return this.requests.size;
  }
}

/** Bounds on the calls one agent may have running on a node at once (see CallAdmission). */
export interface CallAdmissionOptions {
  /** Requests in flight per virtual key on this node, over all its sessions and transports (default 256). */
  readonly maxPerKey?: number;
  /** Requests in flight per 2025-era session (Streamable HTTP or legacy SSE) on this node (default 64). */
  readonly maxPerSession?: number;
}

export const DEFAULT_MAX_IN_FLIGHT_PER_KEY = 256;
export const DEFAULT_MAX_IN_FLIGHT_PER_SESSION = 64;

/** A refused admission: which bound was hit, for the JSON-RPC error's message and data. */
export interface AdmissionRefusal {
  readonly scope: 'key' | 'session';
  readonly limit: number;
}

/**
 * Counts the requests each key and each session has in flight on this node, and refuses one more
 * beyond the bounds, so that one agent cannot queue unbounded work (a 35,000-call POST starved
 * every other key for 15 s) and others keep being served. Every transport admits each request here
 * before dispatching it and releases it when answered; a request refused is answered at once with
 * a JSON-RPC error (see tooManyInFlight) and costs nothing upstream.
 */
export class CallAdmission {
  readonly maxPerKey: number;
  readonly maxPerSession: number;
  private readonly perKey = new Map<string, number>();
  private readonly perSession = new Map<string, number>();

  constructor(options: CallAdmissionOptions = {}) {
    this.maxPerKey = options.maxPerKey ?? DEFAULT_MAX_IN_FLIGHT_PER_KEY;
    this.maxPerSession = options.maxPerSession ?? DEFAULT_MAX_IN_FLIGHT_PER_SESSION;
  }

  /** Admits one request of `keyId` (and `sessionId`, 2025 era); undefined when admitted (then `release` it once). */
  admit(keyId: string, sessionId: string | undefined): AdmissionRefusal | undefined {
    const forKey = this.perKey.get(keyId) ?? 0;
    if (forKey >= this.maxPerKey) return { scope: 'key', limit: this.maxPerKey };
    if (sessionId !== undefined) {
      const forSession = this.perSession.get(sessionId) ?? 0;
      if (forSession >= this.maxPerSession) return { scope: 'session', limit: this.maxPerSession };
      this.perSession.set(sessionId, forSession + 1);
    }
    this.perKey.set(keyId, forKey + 1);
    return undefined;
  }

  /** Runs `dispatch` when the request is admitted (releasing it when answered); else answers the refusal at once. */
  async run(
    keyId: string,
    sessionId: string | undefined,
    id: RpcId,
    dispatch: () => Promise<RpcReply>,
  ): Promise<RpcReply> {
    const refused = this.admit(keyId, sessionId);
    if (refused !== undefined) return { status: 200, body: tooManyInFlight(id, refused) };
    try {
      return await dispatch();
    } finally {
      this.release(keyId, sessionId);
    }
  }

  release(keyId: string, sessionId: string | undefined): void {
    decrement(this.perKey, keyId);
    if (sessionId !== undefined) decrement(this.perSession, sessionId);
  }

  /** Requests in flight for a key (tests, metrics). */
  inFlight(keyId: string): number {
    return this.perKey.get(keyId) ?? 0;
  }
}

/** The JSON-RPC error a refused request is answered with: which bound, and what to do. */
export function tooManyInFlight(id: RpcId, refusal: AdmissionRefusal): string {
  const who = refusal.scope === 'key' ? 'this virtual key' : 'this session';
  return errorBody(
    id,
    RpcErrorCode.TooManyInFlight,
    `Too many requests in flight: ${who} already has ${refusal.limit} running on this gateway node (the limit); ` +
      `retry once some have been answered`,
    refusal,
  );
}

function decrement(counts: Map<string, number>, name: string): void {
  const left = (counts.get(name) ?? 1) - 1;
  if (left <= 0) counts.delete(name);
  else counts.set(name, left);
}
