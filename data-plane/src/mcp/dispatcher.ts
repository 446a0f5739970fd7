import { randomBytes } from 'node:crypto';
import { InitializeRequestParamsSchema } from '@modelcontextprotocol/core';
import type { ApprovalGate } from '../approvals/approval-gate.ts';
import type { Logger } from 'pino';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { DataPlaneMetrics } from '../observability/metrics.ts';
import type { Tracing } from '../../../common/src/tracing.ts';
import type { AuditRecorder } from '../audit/audit-recorder.ts';
import { KnownTools } from '../pipeline/known-tools.ts';
import type { RequestChannel, RequestOrigin, Step } from '../pipeline/operation.ts';
import { composeSteps, defaultSteps, type RunOperation } from '../pipeline/pipeline.ts';
import { TaskIds } from '../pipeline/task-wrapping.ts';
import type { AllowList } from '../policy/allow-list.ts';
import type { Principal } from '../policy/principal.ts';
import type { Cancellation } from '../upstream/cancellation.ts';
import type { UpstreamRouter } from '../upstream/upstream-router.ts';
import type { LogLevels, ResourceSubscriptions } from './agent-state.ts';
import type { RateLimitGate } from '../policy/rate-limits.ts';
import type { BudgetLedger } from '../policy/budget-ledger.ts';
import type { CatalogViews } from './catalog-views.ts';
import { LegacyEra } from './era-legacy.ts';
import { ModernEra, type RetryForwarder } from './era-modern.ts';
import { InputExchanges, type InputExchangesOptions } from './input-required.ts';
import { errorBody, resultBody, type RpcReply } from './json-rpc.ts';
import { checkParamHeaders, paramHeaderDeclarations, type ParamHeaderMismatch } from './param-headers.ts';
import {
  LATEST_LEGACY_PROTOCOL_VERSION,
  LEGACY_PROTOCOL_VERSIONS,
  RpcErrorCode,
  mergeUpstreamCapabilities,
} from './protocol.ts';
import { signSessionToken } from './session-token.ts';
import type { SandboxPool } from '../code-mode/sandbox-pool.ts';

export type { RequestChannel } from '../pipeline/operation.ts';
export type { RetryForwarder } from './era-modern.ts';

export type ProtocolEra = 'modern' | 'legacy';

/** One JSON-RPC request as the HTTP layer hands it over: already shape-checked by the SDK schemas. */
export interface RpcRequest {
  readonly id: string | number;
  readonly method: string;
  readonly params?: Record<string, unknown> | undefined;
}

/** What a transport knows of one request, for its era's adapter to decode into an operation. */
export interface DispatchContext {
  readonly principal: Principal;
  readonly era: ProtocolEra;
  /**
   * Aborts when the agent's connection goes away or it cancels (`signal()` makes an AbortSignal for the calls that need
   * one).
   */
  readonly cancellation: Cancellation;
  /** The session keys of the snapshot being served (task ids are signed with them). */
  readonly sessionKeys: readonly SigningKey[];
  /** 2025 era: the session's id (resource subscriptions and log level live under it on this node). */
  readonly sessionId?: string;
  /**
   * 2025 era: the client capabilities the agent declared at `initialize`, when known (server-to-client requests are
   * sent only for those).
   */
  readonly agentCapabilities?: unknown;
  /** Absent where the transport cannot stream an answer (batches): related notifications are dropped there. */
  readonly channel?: RequestChannel;
  /** performance.now() when the HTTP request was taken up (for the gateway-overhead histogram). */
  readonly receivedAt?: number;
  /** The request was relayed here by another node: it is served here or refused, never relayed on. */
  readonly relayed?: boolean;
  /** Headers the audit record keeps (parent id, trace context, a 2025-era session's client info). */
  readonly origin?: RequestOrigin;
}

export interface InitializeReply extends RpcReply {
  /** The signed session id to send as `Mcp-Session-Id` (absent when the request was refused). */
  readonly sessionId?: string;
  /** The negotiated revision (absent when refused). */
  readonly protocolVersion?: string;
}

export interface ServerInfo {
  readonly name: string;
  readonly version: string;
}

export interface McpDispatcherOptions {
  readonly router: UpstreamRouter;
  /** This node's rate-limit buckets (pipeline/steps/limits.ts); absent, nothing is rate limited. */
  readonly rateLimiter?: RateLimitGate;
  /** This node's budget leases (pipeline/steps/limits.ts); absent, budgets are not enforced. */
  readonly budgetLedger?: BudgetLedger;
  readonly views: CatalogViews;
  readonly subscriptions: ResourceSubscriptions;
  readonly logLevels: LogLevels;
  readonly serverInfo: ServerInfo;
  readonly logger: Logger;
  /** The snapshot being served (keys of operations that name theirs, configured upstreams). */
  readonly getConfig: () => AppliedConfig | undefined;
  /** `ttlMs` of 2026-07-28 list results. */
  readonly listTtlMs: number;
  /** Where tool calls are measured; absent, nothing is. */
  readonly metrics?: DataPlaneMetrics;
  /** The node's audit recorder: the record step writes one record per operation through it. */
  readonly audit?: AuditRecorder;
  /** OpenTelemetry traces; absent, none are made. */
  readonly tracing?: Tracing | undefined;
  /** This node's name, put in the request state of `input_required` results (default: a random tag). */
  readonly nodeId?: string;
  /** This node process's tag (of its hello), put there too, so that other nodes relay retries here. */
  readonly nodeTag?: string;
  /** How calls waiting for a 2026-07-28 agent's input are held (defaults: DEFAULT_INPUT_EXCHANGE_OPTIONS). */
  readonly inputExchanges?: Partial<Omit<InputExchangesOptions, 'nodeId'>>;
  /** Changes the pipeline's steps (say, inserts one); given the default steps in chain order. */
  readonly steps?: (defaults: readonly Step[]) => readonly Step[];
  /** Where calls whose execution policy is `approve` wait for a person (approvals/approval-gate.ts). */
  readonly approvals?: ApprovalGate | undefined;
  /** Code mode's sandbox; absent, code mode is off on this node. */
  readonly sandbox?: SandboxPool;
}

const OK = 200;

/**
 * Where MCP requests of both eras meet the pipeline: each era's adapter decodes a request into one
 * operation, `run` takes it through authenticate → authorize → policy → limits → execute (record
 * around them), and the adapter encodes the outcome. `run` is also the entry for operations that
 * do not come from an MCP transport (a sandboxed script's nested call, the REST API). Only the
 * handshakes stay in the eras: `initialize` here, `server/discover` in the 2026-07-28 adapter.
 */
export class McpDispatcher {
  /** Runs one operation through the pipeline. */
  readonly run: RunOperation;
  /** Calls parked on this node until a 2026-07-28 agent retries with the input they need. */
  readonly exchanges: InputExchanges;
  private readonly router: UpstreamRouter;
  private readonly views: CatalogViews;
  private readonly knownTools: KnownTools;
  private readonly legacy: LegacyEra;
  private readonly modern: ModernEra;
  private readonly serverInfoJson: string;

  constructor(options: McpDispatcherOptions) {
    const nodeId = options.nodeId ?? `node-${randomBytes(4).toString('hex')}`;
    this.exchanges = new InputExchanges({
      ...options.inputExchanges,
      nodeId,
      ...(options.nodeTag === undefined ? {} : { nodeTag: options.nodeTag }),
    });
    this.router = options.router;
    this.views = options.views;
    this.serverInfoJson = JSON.stringify({ name: options.serverInfo.name, version: options.serverInfo.version });
    this.knownTools = new KnownTools(options.router, options.getConfig);
    const tasks = new TaskIds();
    const sandbox = options.sandbox;
    const steps = defaultSteps({
      ...options,
      knownTools: this.knownTools,
      tasks,
      // A script's tool calls enter the whole pipeline, as composed below.
      codeMode: sandbox === undefined ? undefined : { sandbox, run: (operation) => this.run(operation) },
    });
    this.run = composeSteps(options.steps === undefined ? steps : options.steps(steps));
    this.legacy = new LegacyEra(this.run);
    this.modern = new ModernEra({
      run: this.run,
      router: options.router,
      exchanges: this.exchanges,
      relay: { logLevels: options.logLevels, tasks },
      serverInfo: { name: options.serverInfo.name, version: options.serverInfo.version },
      listTtlMs: options.listTtlMs,
      capabilities: () => this.capabilities('modern'),
    });
  }

  /** Retries of calls parked on other nodes are relayed there with `forward` (set once the relay exists). */
  relayRetriesWith(forward: RetryForwarder): void {
    this.modern.relayRetriesWith(forward);
  }

  /** What the gateway advertises right now: the merged upstreams' capabilities. */
  capabilities(era: ProtocolEra): Record<string, unknown> {
    return mergeUpstreamCapabilities(this.router.upstreams(), era);
  }

  /**
   * A 2026-07-28 `tools/call` whose `Mcp-Param-*` headers disagree with its arguments (SEP-2243), as
   * the tool the key may call declares them: the rejection, else undefined. `header` reads a request header.
   */
  paramHeaderMismatch(
    request: RpcRequest,
    allowList: AllowList,
    header: (name: string) => string | undefined,
  ): ParamHeaderMismatch | undefined {
    if (request.method !== 'tools/call') return undefined;
    const name = request.params?.['name'];
    const tool = typeof name === 'string' ? this.views.findAllowed(allowList, 'tools', name) : undefined;
    if (tool === undefined) return undefined;
    const declarations = paramHeaderDeclarations(tool.definition['inputSchema']);
    return declarations.length === 0
      ? undefined
      : checkParamHeaders(declarations, request.params?.['arguments'], header);
  }

  /** A 2025-era `initialize`: negotiates the revision and hands out a signed, self-contained session id. */
  initialize(request: RpcRequest, principal: Principal, sessionKeys: readonly SigningKey[]): InitializeReply {
    const parsed = InitializeRequestParamsSchema.safeParse(request.params);
    if (!parsed.success) {
      return {
        status: OK,
        body: errorBody(request.id, RpcErrorCode.InvalidParams, `Invalid initialize request: ${parsed.error.message}`),
      };
    }
    const requested = parsed.data.protocolVersion;
    const protocolVersion = LEGACY_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_LEGACY_PROTOCOL_VERSION;
    const sessionId = signSessionToken(
      {
        keyId: principal.keyId,
        protocolVersion,
        clientInfo: request.params?.['clientInfo'],
        clientCapabilities: request.params?.['capabilities'],
        issuedAt: Math.floor(Date.now() / 1000),
      },
      sessionKeys,
    );
    const result =
      `{"protocolVersion":${JSON.stringify(protocolVersion)},` +
      `"capabilities":${JSON.stringify(this.capabilities('legacy'))},"serverInfo":${this.serverInfoJson}}`;
    return { status: OK, body: resultBody(request.id, result), sessionId, protocolVersion };
  }

  /** Any other request, of either era: decoded by its era's adapter, run through the pipeline, encoded back. */
  dispatch(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    return context.era === 'modern' ? this.modern.handle(request, context) : this.legacy.handle(request, context);
  }

  /** The upstream serving `uri`, if this allow-list may use it. */
  visibleResourceUpstream(uri: string, allowList: AllowList): string | undefined {
    return this.router.routeResource(uri, (upstream) => this.views.mayReadResource(allowList, uri, upstream));
  }

  close(): void {
    this.knownTools.close();
  }
}
