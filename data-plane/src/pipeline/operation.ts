import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import type { RpcId } from '../mcp/json-rpc.ts';
import type { AllowList } from '../policy/allow-list.ts';
import type { Principal } from '../policy/principal.ts';
import type { TraceSpan } from '../../../common/src/tracing.ts';
import type { Cancellation } from '../upstream/cancellation.ts';
import type { CatalogKind, RpcMessage } from '../upstream/upstream-router.ts';
import type { GatewayError } from './gateway-error.ts';

/**
 * The back channel of one request: notifications related to it (progress, log messages) and
 * server-to-client requests, sent on its SSE response (or, on the legacy HTTP+SSE transport, on
 * the session's stream).
 */
export interface RequestChannel {
  notify(method: string, params: Record<string, unknown> | undefined): void;
  /**
   * Whether the agent can be asked on this channel (2025 era); 2026-07-28 agents are answered `input_required` instead.
   */
  readonly canRequest: boolean;
  /**
   * Asks the agent (elicitation, sampling, roots) and resolves with its result; rejects with UpstreamRpcError for its
   * error.
   */
  request(message: RpcMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>>;
}

/** Where authorize routed an operation; execute acts on exactly this. */
export type Target =
  /** One upstream, with the params as it must see them (names un-prefixed, task ids unwrapped). */
  | {
      readonly kind: 'upstream';
      readonly upstream: string;
      readonly subject: string;
      readonly params: Record<string, unknown>;
    }
  /** A list, filtered by this allow-list. */
  | { readonly kind: 'catalog'; readonly catalog: CatalogKind; readonly allowList: AllowList; readonly offset: number }
  /** `tasks/list` over these upstreams (those declaring it that the key may use). */
  | { readonly kind: 'tasks'; readonly upstreams: readonly string[] }
  /** Answered by the gateway itself (ping, log level, unsubscribe). */
  | { readonly kind: 'gateway' };

/** What the upstream answered an era's upstream call (see UpstreamCaller). */
export type UpstreamAnswer =
  | { readonly kind: 'result'; readonly result: Record<string, unknown> }
  /** A 2026-07-28 agent must retry with input (already signed into `requestState`). */
  | {
      readonly kind: 'input';
      readonly inputRequests: Readonly<Record<string, unknown>> | undefined;
      readonly requestState: string;
    };

/**
 * How an operation reaches its upstream. The era adapter that decoded the operation supplies it
 * (a 2025-era call relays directly, a 2026-07-28 call may park for the agent's input); execute calls
 * it without knowing which. Rejects with UpstreamRpcError / PortcullisError / GatewayError.
 */
export type UpstreamCaller = (operation: Operation, upstream: string, message: RpcMessage) => Promise<UpstreamAnswer>;

/** A retry of a call that waited for a 2026-07-28 agent's input: which upstream it is bound to. */
export interface Resumption {
  readonly upstream: string;
  /**
   * `parked`: the call is still running there, bound to that upstream even if it left the catalog;
   * `round`: a 2026-07-28 upstream's own round, sent again to whatever serves the name now, which must be that
   * upstream.
   */
  readonly kind: 'parked' | 'round';
}

/**
 * A question for the person at the agent's client that must be answered before the upstream is
 * called (an execution policy's client approval). Set by the policy step for a 2026-07-28 agent,
 * whose era caller (`callUpstream`) sends `request` as an input request of its exchange (an
 * `input_required` round) and hands the answer to `settle`; 2025-era agents are asked on the
 * call's stream by the policy step itself.
 */
export interface AgentQuestion {
  readonly request: RpcMessage;
  /** The agent's answer (or its failure): resolves undefined to call the upstream, else the result ending the call. */
  settle(answer: Promise<Record<string, unknown>>): Promise<Record<string, unknown> | undefined>;
}

/** What the HTTP edge saw of a request that the audit record keeps (absent for operations made in the gateway). */
export interface RequestOrigin {
  /** `x-portcullis-parent-request`. */
  readonly parentId?: string | undefined;
  /** W3C `traceparent`. */
  readonly traceparent?: string | undefined;
  /** `x-portcullis-model-cost-micros`: the run's model cost, recorded when the request names a parent. */
  readonly modelCostMicros?: string | undefined;
  /** A 2025-era session's client info (from its signed session id); 2026-07-28 requests carry theirs in `_meta`. */
  readonly clientInfo?: unknown;
}

/**
 * One operation as every step sees it, whatever era or transport it came in on: what is asked
 * (method, params), by whom (principal), below what (parent id), and where it goes (target, set by
 * authorize). The adapters decode requests into it; anything else (the REST API, a sandboxed
 * script's nested call) builds one and runs it through the pipeline the same way.
 */
export interface Operation {
  /** The JSON-RPC id the answer echoes (a nested call makes its own). */
  readonly id: RpcId;
  readonly method: string;
  readonly params: Record<string, unknown>;
  /** Who is asking, once authenticated: the edge sets it, or authenticate resolves it from `keyId`. */
  principal: Principal | undefined;
  /** The key of a caller the edge did not authenticate itself (a relayed or nested operation). */
  readonly keyId?: string;
  /** The operation this one was made by (a script's call: its `run_script` call's `auditId`); recorded with it. */
  readonly parentId?: string;
  /** The id its audit record will have, set by record before the later steps run (so nested calls can name it). */
  auditId?: string;
  /** Set by authorize. */
  target?: Target;
  /** The session keys of the snapshot being served (task ids are signed with them). */
  readonly sessionKeys: readonly SigningKey[];
  /** Aborts when the caller goes away or cancels. */
  readonly cancellation: Cancellation;
  /** Where related notifications and server-to-client requests go; absent, they are dropped. */
  readonly channel?: RequestChannel;
  /** A 2025-era session's id (log level and subscriptions live under it on this node). */
  readonly sessionId?: string;
  /** A 2025-era session's declared client capabilities (server-to-client requests are sent only for those). */
  readonly agentCapabilities?: unknown;
  /**
   * The era's way to reach the upstream; absent, execute relays directly. Present only where the call can wait for
   * the agent's input (2026-07-28): such a caller asks `askFirst` before it calls the upstream.
   */
  readonly callUpstream?: UpstreamCaller;
  /** Asked of the agent's person before the upstream is called (see AgentQuestion). */
  askFirst?: AgentQuestion;
  /**
   * A 2026-07-28 retry that completes a parked call: the audit id the call's first request took (its one record
   * keeps it, so records that named it as their parent, such as its approval's, point at it).
   */
  readonly continuesAuditId?: string;
  /** A retry bound to the upstream of the call it continues. */
  readonly resumes?: Resumption;
  /** performance.now() when the request was taken up (the gateway-overhead histogram). */
  readonly receivedAt: number;
  /** Headers the audit record keeps (parent id, trace context), set by the HTTP edge. */
  readonly origin?: RequestOrigin | undefined;
  /** Its trace span, set by record when traces are on (execute starts the upstream call's span under it). */
  span?: TraceSpan;
  /** The `traceparent` of the upstream call's span, set by execute when traces are on (the relay sends it). */
  upstreamTraceparent?: string;
  /** performance.now() when execute sent it upstream (record reads it). */
  upstreamStartedAt?: number;
  /** performance.now() when the upstream's answer (or failure) came back. */
  upstreamEndedAt?: number;
  /**
   * What this operation cost, in integer micro-units of the one currency; set by the `limits` step
   * when a tools/call got a result from its upstream (an `isError` result too; refusals and
   * unreachable upstreams cost nothing and leave it undefined): the tool's price from the snapshot
   * (per tool, else the upstream's default, else 0) plus any cost the upstream reported as an
   * integer in the result's `_meta["dev.portcullis/costMicros"]` (policy/prices.ts). Set before
   * `record` sees the outcome, so the audit event can carry it.
   */
  costMicros?: number;
}

/** How an operation ended; the era adapter encodes it, record measures it. */
export type Outcome =
  /**
   * An upstream's (or the gateway's) result object. `unavailable`: a tools/call the upstream could not run (an isError
   * result). `json`: the result's JSON text, when record serialized it for the audit record (the adapter sends it
   * rather than serializing the result a second time).
   */
  | {
      readonly kind: 'result';
      readonly result: Record<string, unknown>;
      readonly unavailable?: boolean;
      readonly json?: string;
    }
  /** A result already serialized (catalog pages). `cacheable`: a list result (2026-07-28 adds its cache hints). */
  | { readonly kind: 'json'; readonly json: string; readonly cacheable: boolean }
  | {
      readonly kind: 'input';
      readonly inputRequests: Readonly<Record<string, unknown>> | undefined;
      readonly requestState: string;
    }
  /** Refused by a step or failed: the adapter sends the error. */
  | { readonly kind: 'error'; readonly error: GatewayError };

/** One step: acts on the operation and either ends it (returns an outcome) or hands it to `next`. */
export type StepHandler = (operation: Operation, next: (operation: Operation) => Promise<Outcome>) => Promise<Outcome>;

/** A step and its name (what a test or a later capability inserts before or after). */
export interface Step {
  readonly name: string;
  readonly run: StepHandler;
}

export function refused(error: GatewayError): Outcome {
  return { kind: 'error', error };
}
