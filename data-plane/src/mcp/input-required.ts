import { LRUCache } from 'lru-cache';
import { randomBytes } from 'node:crypto';
import {
  CreateMessageResultSchema,
  CreateMessageResultWithToolsSchema,
  ElicitResultSchema,
  ListRootsResultSchema,
} from '@modelcontextprotocol/core';
import type { z } from 'zod';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import { signalCancellation, type Cancellation } from '../upstream/cancellation.ts';
import { UpstreamRpcError } from '../upstream/upstream-rpc-error.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import type { RequestChannel } from '../pipeline/operation.ts';
import { isPlainObject } from './json-rpc.ts';
import { RpcErrorCode } from './protocol.ts';
import { signRequestState, verifyRequestState } from './request-state.ts';

/**
 * Server-to-client input for 2026-07-28 agents (`input_required`, SEP-2322) on a gateway whose
 * upstream connections are shared and long-lived.
 *
 * Whatever the upstream's era, its need for input reaches the node as server-to-client requests
 * during the relayed call (a 2025 upstream sends `elicitation/create`; a 2026 upstream answers
 * `input_required`, which the SDK client turns into calls of the same handlers). A 2026-07-28
 * agent cannot be asked on the call's stream, so the node parks those requests with the upstream
 * call still running (an "exchange"), answers the agent `input_required` with a request state it
 * signs, and completes the parked requests with the `inputResponses` of the agent's retry. The
 * retry then gets the upstream's next outcome: the final result, or another round of input.
 *
 * The request state names this node (its id and process tag): the waiting call lives here. A retry
 * that lands on another node is relayed here through the control plane (the dispatcher does that,
 * see OtherNode) and checked here exactly as a local one.
 *
 * A 2026-07-28 upstream answering a 2026-07-28 agent needs none of that: its `input_required` is
 * passed on as it came (keys intact), with the upstream's own state wrapped in the gateway's
 * signed state, and the retry is a new upstream call on whichever node it reaches.
 */

/** What the agent is answered with, round by round. */
export type ExchangeOutcome =
  | { readonly kind: 'result'; readonly result: Record<string, unknown> }
  | { readonly kind: 'error'; readonly error: unknown }
  | { readonly kind: 'input'; readonly inputRequests: Record<string, RpcMessage>; readonly requestState: string };

/** A retry of a 2026-07-28 upstream's own round: sent to that upstream again, with its state. */
export interface UpstreamRound {
  readonly kind: 'upstream-round';
  readonly upstream: string;
  readonly upstreamState: string | undefined;
}

/** A retry of a call parked on another node: it must be relayed there. */
export interface OtherNode {
  readonly kind: 'other-node';
  /** The id of the node holding the call. */
  readonly node: string;
  /** Its process tag, to relay the retry by; undefined in states minted before tags were (refused then). */
  readonly nodeTag: string | undefined;
}

/** A retry the node cannot serve: the JSON-RPC error to answer it with. */
export interface ResumeRefusal {
  readonly code: number;
  readonly message: string;
  readonly data?: Record<string, unknown>;
}

export interface InputExchangesOptions {
  /** The name of this node, put in every request state it mints. */
  readonly nodeId: string;
  /**
   * This node process's tag (of its hello), put in every request state it mints, so other nodes can relay retries here.
   */
  readonly nodeTag?: string;
  /** How long a parked call waits for the agent's retry (and how long its request state is valid). */
  readonly ttlMs: number;
  /** Input requests arriving within this quiet period are sent to the agent in one round. */
  readonly gatherMs: number;
  /** Most calls parked at once on this node, and per virtual key. */
  readonly maxParked: number;
  readonly maxParkedPerKey: number;
}

export const DEFAULT_INPUT_EXCHANGE_OPTIONS: Omit<InputExchangesOptions, 'nodeId'> = {
  ttlMs: 120_000,
  gatherMs: 10,
  maxParked: 10_000,
  maxParkedPerKey: 100,
};

/** Why a state's exchange is gone, kept (bounded) so a late retry is told what happened. */
type EndReason = 'completed' | 'expired' | 'cancelled';
const END_REASONS: Record<EndReason, string> = {
  completed: 'the call it belongs to has already completed (each requestState answers one round once)',
  expired: 'the agent did not retry in time, so the waiting upstream call was abandoned',
  cancelled: 'the agent went away while the call was running, so the upstream call was cancelled',
};
const MAX_TOMBSTONES = 10_000;

/** How each kind of input response must look (the bare result of the embedded request). */
const RESPONSE_SCHEMAS: Readonly<Record<string, readonly z.ZodType[]>> = {
  'elicitation/create': [ElicitResultSchema],
  'sampling/createMessage': [CreateMessageResultSchema, CreateMessageResultWithToolsSchema],
  'roots/list': [ListRootsResultSchema],
};

/** The calls parked on this node, by exchange id. */
export class InputExchanges {
  readonly options: InputExchangesOptions;
  private readonly parked = new Map<string, InputExchange>();
  private readonly perKey = new Map<string, number>();
  private readonly ended = new LRUCache<string, EndReason>({ max: MAX_TOMBSTONES });

  constructor(options: Partial<InputExchangesOptions> & { nodeId: string }) {
    this.options = { ...DEFAULT_INPUT_EXCHANGE_OPTIONS, ...options };
  }

  /** A new exchange for one agent request; it is registered only once it needs input. */
  start(
    keyId: string,
    method: string,
    subject: string,
    upstream: string,
    sessionKeys: readonly SigningKey[],
  ): InputExchange {
    return new InputExchange(this, keyId, method, subject, upstream, sessionKeys);
  }

  /**
   * The exchange a retry's `requestState` names, or why it cannot be served: a state that is not
   * the gateway's, fails its MAC or was issued to another key is refused as invalid (the agent
   * learns nothing more); an expired one, one of another node, one already answered, or one whose
   * call is gone is refused saying so.
   */
  resume(
    state: unknown,
    keyId: string,
    method: string,
    subject: string,
    sessionKeys: readonly SigningKey[],
  ): InputExchange | UpstreamRound | OtherNode | ResumeRefusal {
    if (typeof state !== 'string') return invalidState('requestState must be a string');
    const verified = verifyRequestState(state, keyId, sessionKeys);
    if (!verified.ok) {
      if (verified.reason === 'expired')
        return {
          code: RpcErrorCode.InputNotAwaited,
          message: 'requestState has expired: the call waiting for this input was abandoned; call again without it',
          data: { reason: 'expired' },
        };
      return invalidState(
        'requestState failed verification (tampered, not issued by this gateway, or issued to another key)',
      );
    }
    const claims = verified.claims;
    if (claims.method !== method || claims.subject !== subject)
      return invalidState(
        `requestState belongs to ${claims.method} ${JSON.stringify(claims.subject)}, not to this request`,
      );
    if (claims.upstream !== undefined)
      return { kind: 'upstream-round', upstream: claims.upstream, upstreamState: claims.upstreamState };
    if (claims.node === undefined || claims.exchange === undefined) return invalidState('requestState names no call');
    if (claims.node !== this.options.nodeId) return { kind: 'other-node', node: claims.node, nodeTag: claims.nodeTag };
    // This node's name, an earlier process's tag: the node restarted since, and its parked calls are gone.
    if (claims.nodeTag !== undefined && claims.nodeTag !== this.options.nodeTag)
      return {
        code: RpcErrorCode.InputNotAwaited,
        message:
          'requestState can no longer be answered: this node restarted since it was issued, and the waiting call is ' +
          'gone; call again without it',
        data: { node: this.options.nodeId, reason: 'restarted' },
      };
    const exchange = this.parked.get(claims.exchange);
    if (exchange === undefined) {
      const reason = this.ended.get(claims.exchange);
      const why =
        reason === undefined
          ? 'no call is waiting for it on this node (the node may have restarted)'
          : END_REASONS[reason];
      return {
        code: RpcErrorCode.InputNotAwaited,
        message: `requestState can no longer be answered: ${why}`,
        data: { node: this.options.nodeId, reason: reason ?? 'unknown' },
      };
    }
    if (claims.round !== exchange.round)
      return {
        code: RpcErrorCode.InputNotAwaited,
        message: 'requestState was already answered: retry with the requestState of the latest input_required result',
        data: { node: this.options.nodeId, reason: 'answered' },
      };
    if (exchange.serving)
      return {
        code: RpcErrorCode.InputNotAwaited,
        message: 'a retry with this requestState is already being served',
        data: { node: this.options.nodeId, reason: 'in-progress' },
      };
    return exchange;
  }

  /**
   * The state handed out with a 2026-07-28 upstream's own `input_required` (wrapping the upstream's state, if it gave
   * one).
   */
  upstreamRoundState(
    keyId: string,
    method: string,
    subject: string,
    upstream: string,
    upstreamState: string | undefined,
    sessionKeys: readonly SigningKey[],
  ): string {
    const claims = { keyId, method, subject, upstream, expiresAt: Date.now() + this.options.ttlMs };
    return signRequestState(upstreamState === undefined ? claims : { ...claims, upstreamState }, sessionKeys);
  }

  get size(): number {
    return this.parked.size;
  }

  /** Whether another call of this key may be parked. */
  mayPark(keyId: string): boolean {
    return this.parked.size < this.options.maxParked && (this.perKey.get(keyId) ?? 0) < this.options.maxParkedPerKey;
  }

  /** @internal */
  register(exchange: InputExchange): void {
    if (this.parked.has(exchange.id)) return;
    this.parked.set(exchange.id, exchange);
    this.perKey.set(exchange.keyId, (this.perKey.get(exchange.keyId) ?? 0) + 1);
  }

  /** @internal */
  unregister(exchange: InputExchange, reason: EndReason): void {
    if (!this.parked.delete(exchange.id)) return;
    const left = (this.perKey.get(exchange.keyId) ?? 1) - 1;
    if (left <= 0) this.perKey.delete(exchange.keyId);
    else this.perKey.set(exchange.keyId, left);
    this.ended.set(exchange.id, reason);
  }
}

/** A retry of a call on another node that cannot be relayed there: the refusal, naming that node and why. */
export function otherNodeRefusal(other: OtherNode, thisNode: string, why: string): ResumeRefusal {
  return {
    code: RpcErrorCode.InputOnOtherNode,
    message:
      `requestState names gateway node "${other.node}", which holds the waiting call; this node ` +
      `("${thisNode}") could not relay the retry there: ${why}`,
    data: { node: other.node },
  };
}

function invalidState(why: string): ResumeRefusal {
  return { code: RpcErrorCode.InvalidParams, message: `Invalid requestState: ${why}` };
}

interface ParkedInput {
  readonly message: RpcMessage;
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
}

/**
 * One agent request relayed to an upstream, as long as it may need input: the upstream call, the
 * server-to-client requests it parked, and the agent request waiting for its next outcome.
 */
export class InputExchange {
  private idValue: string | undefined;
  /** The round the current request state answers (0 until the first `input_required`). */
  round = 0;
  /** The upstream call's abort: the agent went away while waiting, or never retried. */
  private readonly controller = new AbortController();
  private readonly pending = new Map<string, ParkedInput>();
  private nextKey = 0;
  private settled: ExchangeOutcome | undefined;
  private waiter: ((outcome: ExchangeOutcome) => void) | undefined;
  private gatherTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private ended = false;
  /** The back channel of the agent request waiting right now (progress and log messages go there). */
  private channelValue: RequestChannel | undefined;
  private progressTokenValue: unknown;
  /** The audit id the call's first request took (its retries' record keeps it; see Operation.continuesAuditId). */
  auditId: string | undefined;

  constructor(
    private readonly exchanges: InputExchanges,
    readonly keyId: string,
    readonly method: string,
    readonly subject: string,
    readonly upstream: string,
    private readonly sessionKeys: readonly SigningKey[],
  ) {}

  /** Made when the exchange is first parked: calls that need no input skip the random bytes. */
  get id(): string {
    return (this.idValue ??= randomBytes(12).toString('base64url'));
  }

  /** Aborts the upstream call; give it to the relay (RelayOptions.cancellation). */
  get cancellation(): Cancellation {
    return signalCancellation(this.controller.signal);
  }

  /** Whether an agent request is waiting on this exchange now. */
  get serving(): boolean {
    return this.waiter !== undefined;
  }

  get channel(): RequestChannel | undefined {
    return this.channelValue;
  }

  /**
   * The progress token of the agent request waiting now (progress of later rounds must carry it, not the first one's).
   */
  get progressToken(): unknown {
    return this.progressTokenValue;
  }

  /**
   * Where what the upstream sends meanwhile goes: the agent request being served (set before the call starts, as
   * progress may come at once).
   */
  bind(channel: RequestChannel | undefined, progressToken: unknown): void {
    this.channelValue = channel;
    this.progressTokenValue = progressToken;
  }

  /** Follows the upstream call: its settling is the exchange's final outcome. */
  attach(call: Promise<Record<string, unknown>>): void {
    call.then(
      (result) => this.settle({ kind: 'result', result }),
      (error: unknown) => this.settle({ kind: 'error', error }),
    );
  }

  /** RelayOptions.onRequest: parks a server-to-client request until the agent answers it in a retry. */
  readonly onRequest = (message: RpcMessage): Promise<Record<string, unknown>> => {
    if (this.ended || this.settled !== undefined)
      return Promise.reject(
        new UpstreamRpcError(
          RpcErrorCode.InternalError,
          'Request cancelled: the agent is no longer waiting for this call',
        ),
      );
    if (this.round === 0 && this.pending.size === 0 && !this.exchanges.mayPark(this.keyId)) {
      return Promise.reject(
        new UpstreamRpcError(RpcErrorCode.InternalError, 'The gateway cannot hold more calls waiting for agent input'),
      );
    }
    this.exchanges.register(this);
    this.nextKey += 1;
    const key = `${message.method.split('/')[0]}-${this.nextKey}`;
    return new Promise((resolve, reject) => {
      this.pending.set(key, { message, resolve, reject });
      if (this.waiter !== undefined) this.gatherSoon();
    });
  };

  /**
   * Completes the parked requests the agent answered. An answer that is missing, or not the bare
   * result its request asks for, leaves that request parked: it is asked again in the next round.
   * Keys that name nothing parked are ignored.
   */
  answer(inputResponses: unknown): void {
    if (!isPlainObject(inputResponses)) return;
    for (const [key, response] of Object.entries(inputResponses)) {
      const parked = this.pending.get(key);
      if (parked === undefined || !isValidResponse(parked.message.method, response)) continue;
      this.pending.delete(key);
      parked.resolve(response as Record<string, unknown>);
    }
  }

  /**
   * Waits for what to answer the agent request now serving: the call's outcome, or the input it
   * needs (requests still unanswered go out again). The agent going away (`signal`) cancels the
   * upstream call.
   */
  next(signal: AbortSignal, channel: RequestChannel | undefined, progressToken: unknown): Promise<ExchangeOutcome> {
    clearTimeout(this.expiryTimer);
    this.bind(channel, progressToken);
    if (this.settled !== undefined) return Promise.resolve(this.finish(this.settled));
    if (this.pending.size > 0 && this.round > 0) return Promise.resolve(this.inputRound());
    return new Promise((resolve) => {
      const onAbort = () => {
        this.waiter = undefined;
        this.end('cancelled');
        resolve({
          kind: 'error',
          error: new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled: the agent went away'),
        });
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiter = (outcome) => {
        signal.removeEventListener('abort', onAbort);
        this.waiter = undefined;
        resolve(outcome);
      };
      if (this.pending.size > 0) this.gatherSoon();
    });
  }

  private settle(outcome: ExchangeOutcome): void {
    if (this.settled !== undefined) return;
    this.settled = outcome;
    clearTimeout(this.gatherTimer);
    // Requests the upstream no longer waits for cannot be answered any more.
    for (const parked of this.pending.values())
      parked.reject(new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled: the call ended'));
    this.pending.clear();
    const waiter = this.waiter;
    if (waiter !== undefined) waiter(this.finish(outcome));
  }

  /** The final outcome goes out: the exchange is done, its state answered. */
  private finish(outcome: ExchangeOutcome): ExchangeOutcome {
    this.end('completed');
    return outcome;
  }

  /** Sends what is parked to the waiting agent request once no more requests arrive for `gatherMs`. */
  private gatherSoon(): void {
    clearTimeout(this.gatherTimer);
    this.gatherTimer = setTimeout(() => {
      const waiter = this.waiter;
      if (waiter !== undefined && this.settled === undefined && this.pending.size > 0) waiter(this.inputRound());
    }, this.exchanges.options.gatherMs);
  }

  /** A new round: every unanswered request, under a new request state; the call waits `ttlMs` for the retry. */
  private inputRound(): ExchangeOutcome {
    this.round += 1;
    const { nodeId, nodeTag, ttlMs } = this.exchanges.options;
    const inputRequests: Record<string, RpcMessage> = {};
    for (const [key, parked] of this.pending)
      inputRequests[key] =
        parked.message.params === undefined
          ? { method: parked.message.method }
          : { method: parked.message.method, params: parked.message.params };
    const requestState = signRequestState(
      {
        keyId: this.keyId,
        node: nodeId,
        ...(nodeTag === undefined ? {} : { nodeTag }),
        exchange: this.id,
        round: this.round,
        method: this.method,
        subject: this.subject,
        expiresAt: Date.now() + ttlMs,
      },
      this.sessionKeys,
    );
    this.channelValue = undefined;
    this.progressTokenValue = undefined;
    this.expiryTimer = setTimeout(() => this.end('expired'), ttlMs);
    this.expiryTimer.unref();
    return { kind: 'input', inputRequests, requestState };
  }

  /** Ends the exchange: the upstream call is cancelled if it still runs, parked requests are refused. */
  private end(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.gatherTimer);
    clearTimeout(this.expiryTimer);
    this.exchanges.unregister(this, reason);
    if (reason === 'completed') return;
    const why = reason === 'expired' ? 'the agent did not provide the input in time' : 'the agent went away';
    for (const parked of this.pending.values())
      parked.reject(new UpstreamRpcError(RpcErrorCode.InternalError, `Request cancelled: ${why}`));
    this.pending.clear();
    if (this.settled === undefined) this.controller.abort(new Error(why));
  }
}

function isValidResponse(method: string, response: unknown): boolean {
  if (!isPlainObject(response) || 'method' in response) return false;
  return (RESPONSE_SCHEMAS[method] ?? []).some((schema) => schema.safeParse(response).success);
}
