import { randomBytes } from 'node:crypto';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { RelayEnvelope, RelayedAnswer, RelayedCallUpdate } from '../../../proto/gen/portcullis/v1/config.ts';

/** What a relayed call asks of the node serving it (RelayedCall.request). */
export type CallRequest =
  | { readonly $case: 'inputRetryJson'; readonly value: string }
  | { readonly $case: 'sseMessagesJson'; readonly value: string };
export type CallKind = CallRequest['$case'];
type Update = NonNullable<RelayedCallUpdate['update']>;

/** Where a call goes: the node (by tag), and the agent it is made for. */
export interface CallTarget {
  readonly toNodeTag: string;
  readonly keyId: string;
  /** The agent's 2025-era session token; empty for a 2026-07-28 agent. */
  readonly sessionId: string;
}

/** How a call this node relayed fared: the answer the other node gave, or why there is none. */
export type CallOutcome =
  | { readonly kind: 'answer'; readonly status: number; readonly body: string }
  | {
      readonly kind: 'failed';
      readonly reason: 'no-control-plane' | 'undeliverable' | 'unreachable' | 'cancelled';
      readonly message: string;
    };

/** A call another node relayed here, as its handler sees it. */
export interface IncomingCall {
  readonly keyId: string;
  readonly sessionId: string;
  readonly json: string;
  /** Aborts when the calling node's agent went away. */
  readonly signal: AbortSignal;
  /** Sends a JSON-RPC notification to the agent request waiting on the calling node. */
  notify(json: string): void;
}

/**
 * What a handler answers: the answer, and a small replacement should the answer not reach the caller (too large to
 * cross replicas).
 */
export interface ServedAnswer {
  readonly answer: RelayedAnswer;
  readonly fallback?: RelayedAnswer;
}

export type CallHandler = (call: IncomingCall) => Promise<ServedAnswer>;

export interface RelayedCallsOptions {
  readonly logger: Logger;
  /** How long the caller waits without any word from the serving node before it gives up (default 5 s). */
  readonly silenceMs?: number;
  /** How often the serving node says it is still working (default: a third of silenceMs' default). */
  readonly keepAliveMs?: number;
}

export const DEFAULT_CALL_SILENCE_MS = 5_000;
export const DEFAULT_CALL_KEEPALIVE_MS = 1_500;
/** Answered calls are remembered this long, so that an undeliverable answer can be replaced. */
const ANSWERED_MEMORY_MS = 30_000;

interface Outgoing {
  readonly target: CallTarget;
  readonly onNotification: ((json: string) => void) | undefined;
  readonly resolve: (outcome: CallOutcome) => void;
  timer: NodeJS.Timeout;
}

interface Served {
  readonly controller: AbortController;
  readonly keepAlive: NodeJS.Timeout;
}

/**
 * Requests relayed between nodes through the control plane (RelayedCall / RelayedCallUpdate): a
 * 2026-07-28 agent's retry of a call parked on another node, a legacy HTTP+SSE POST for a stream
 * another node holds. The calling node waits for the answer under a silence timeout: the serving
 * node says `accepted` at once and every `keepAliveMs` while it works, so a node that is gone (or
 * never got the call) is told apart from one that is busy, without bounding how long a tool may
 * run. The caller's agent going away cancels the call there. Updates are accepted only from the
 * node the call went to, for the key it was made for.
 */
export class RelayedCalls {
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly served = new Map<string, Served>();
  private readonly answered = new Map<
    string,
    {
      fallback: RelayedAnswer | undefined;
      envelope: Omit<RelayEnvelope, 'kind' | 'fromNodeId' | 'fromNodeTag'>;
      at: number;
    }
  >();
  private readonly handlers = new Map<CallKind, CallHandler>();
  private readonly silenceMs: number;
  private readonly keepAliveMs: number;

  constructor(
    private readonly send: (envelope: Omit<RelayEnvelope, 'fromNodeId' | 'fromNodeTag'>) => boolean,
    private readonly options: RelayedCallsOptions,
  ) {
    this.silenceMs = options.silenceMs ?? DEFAULT_CALL_SILENCE_MS;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_CALL_KEEPALIVE_MS;
  }

  /** Serves calls of one kind relayed here (unset kinds are answered 404). */
  handle(kind: CallKind, handler: CallHandler): void {
    this.handlers.set(kind, handler);
  }

  /** How many calls this node waits on / serves right now. */
  get pending(): { outgoing: number; served: number } {
    return { outgoing: this.outgoing.size, served: this.served.size };
  }

  /**
   * Relays a request to the node that can serve it and resolves with its answer (or why there is none); never rejects.
   */
  call(
    target: CallTarget,
    request: CallRequest,
    signal: AbortSignal | undefined,
    onNotification?: (json: string) => void,
  ): Promise<CallOutcome> {
    const callId = randomBytes(12).toString('base64url');
    return new Promise<CallOutcome>((resolve) => {
      const finish = (outcome: CallOutcome) => {
        const entry = this.outgoing.get(callId);
        if (entry === undefined) return;
        clearTimeout(entry.timer);
        this.outgoing.delete(callId);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = () => {
        this.send({
          toNodeTag: target.toNodeTag,
          keyId: target.keyId,
          sessionId: target.sessionId,
          kind: {
            $case: 'callUpdate',
            value: { callId, update: { $case: 'cancelled', value: 'the agent went away' } },
          },
        });
        finish({ kind: 'failed', reason: 'cancelled', message: 'the agent went away' });
      };
      const entry: Outgoing = { target, onNotification, resolve: finish, timer: this.silenceTimer(callId) };
      this.outgoing.set(callId, entry);
      if (
        !this.send({
          toNodeTag: target.toNodeTag,
          keyId: target.keyId,
          sessionId: target.sessionId,
          kind: { $case: 'call', value: { callId, request } },
        })
      ) {
        finish({
          kind: 'failed',
          reason: 'no-control-plane',
          message: 'this node is not connected to the control plane, through which the call would be relayed',
        });
        return;
      }
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A call another node relayed here (validated already): served by the handler of its kind, answered when it is done.
   */
  serve(fromNodeTag: string, target: Omit<CallTarget, 'toNodeTag'>, callId: string, request: CallRequest): void {
    const key = `${fromNodeTag}/${callId}`;
    const envelope = { toNodeTag: fromNodeTag, keyId: target.keyId, sessionId: target.sessionId };
    const update = (value: Update) =>
      this.send({ ...envelope, kind: { $case: 'callUpdate', value: { callId, update: value } } });
    if (fromNodeTag === '' || this.served.has(key)) return;
    const handler = this.handlers.get(request.$case);
    if (handler === undefined) {
      update({ $case: 'answer', value: { status: 404, bodyJson: '' } });
      return;
    }
    const controller = new AbortController();
    update({ $case: 'accepted', value: true });
    const keepAlive = setInterval(() => update({ $case: 'accepted', value: true }), this.keepAliveMs);
    keepAlive.unref();
    this.served.set(key, { controller, keepAlive });
    const call: IncomingCall = {
      ...target,
      json: request.value,
      signal: controller.signal,
      notify: (json) => void update({ $case: 'notificationJson', value: json }),
    };
    handler(call)
      .then(
        ({ answer, fallback }) => {
          this.remember(key, envelope, fallback);
          update({ $case: 'answer', value: answer });
        },
        (error: unknown) => {
          this.options.logger.error(
            { err: errorMessage(error), kind: request.$case },
            'a relayed call failed unexpectedly',
          );
          update({ $case: 'answer', value: { status: 500, bodyJson: '' } });
        },
      )
      .finally(() => {
        clearInterval(keepAlive);
        this.served.delete(key);
      });
  }

  /**
   * An update of a call (validated already): from the node serving a call of ours, or (cancelled) from a caller of one
   * we serve.
   */
  update(fromNodeTag: string, keyId: string, callId: string, update: Update): void {
    if (update.$case === 'cancelled') {
      this.served.get(`${fromNodeTag}/${callId}`)?.controller.abort(new Error(update.value));
      return;
    }
    const outgoing = this.outgoing.get(callId);
    if (outgoing === undefined) {
      if (update.$case === 'undeliverable') this.replaceUndeliverable(`${fromNodeTag}/${callId}`, callId);
      return;
    }
    // Only the node the call went to answers it (the control plane stamps the sender's tag), for the key it was made
    // for.
    if (fromNodeTag !== outgoing.target.toNodeTag || keyId !== outgoing.target.keyId) return;
    switch (update.$case) {
      case 'accepted':
        this.rearm(callId, outgoing);
        return;
      case 'notificationJson':
        this.rearm(callId, outgoing);
        outgoing.onNotification?.(update.value);
        return;
      case 'answer':
        outgoing.resolve({ kind: 'answer', status: update.value.status, body: update.value.bodyJson });
        return;
      case 'undeliverable':
        outgoing.resolve({ kind: 'failed', reason: 'undeliverable', message: update.value });
        return;
    }
  }

  /** Every call is abandoned (the node is closing). */
  close(): void {
    for (const outgoing of this.outgoing.values())
      outgoing.resolve({ kind: 'failed', reason: 'unreachable', message: 'this node is shutting down' });
    for (const served of this.served.values()) served.controller.abort(new Error('the node is shutting down'));
  }

  private silenceTimer(callId: string): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const outgoing = this.outgoing.get(callId);
      outgoing?.resolve({
        kind: 'failed',
        reason: 'unreachable',
        message:
          `no word from it for ${this.silenceMs} ms ` + '(it may have restarted, shut down or lost the control plane)',
      });
    }, this.silenceMs);
    // Not unref'd: a call waiting for another node is work in progress (close() settles every one, clearing its timer).
    return timer;
  }

  private rearm(callId: string, outgoing: Outgoing): void {
    clearTimeout(outgoing.timer);
    outgoing.timer = this.silenceTimer(callId);
  }

  private remember(
    key: string,
    envelope: Omit<RelayEnvelope, 'kind' | 'fromNodeId' | 'fromNodeTag'>,
    fallback: RelayedAnswer | undefined,
  ): void {
    const now = Date.now();
    for (const [old, entry] of this.answered) {
      if (now - entry.at < ANSWERED_MEMORY_MS) break;
      this.answered.delete(old);
    }
    this.answered.set(key, { fallback, envelope, at: now });
  }

  /** Our answer could not reach the caller: its small replacement goes instead, once. */
  private replaceUndeliverable(key: string, callId: string): void {
    const entry = this.answered.get(key);
    this.answered.delete(key);
    if (entry?.fallback === undefined) return;
    this.options.logger.warn(
      { callId },
      'the answer to a relayed call could not be delivered (too large to cross control-plane replicas?); a short ' +
        'error went instead',
    );
    this.send({
      ...entry.envelope,
      kind: { $case: 'callUpdate', value: { callId, update: { $case: 'answer', value: entry.fallback } } },
    });
  }
}
