import { randomUUID } from 'node:crypto';
import { status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { Backoff, PortcullisError, ErrorCode, errorMessage, type Logger } from '../../../common/src/index.ts';
import {
  ConfigServiceService,
  ConnectResponse,
  type ConnectRequest,
  type BudgetSpend,
  type NodeShare,
  type RelayEnvelope,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { bearerMatches } from '../auth.ts';
import type { Publication, SnapshotPublisher } from '../config/snapshot-publisher.ts';
import type { CatalogService } from '../services/catalog.ts';
import type { NodeService } from '../services/nodes.ts';
import { AckBatcher } from './ack-batcher.ts';
import { NodeRecords } from './node-records.ts';
import { parseNodeMessage, type NodeMessage } from './messages.ts';
import type { RelayBus } from '../config/change-bus.ts';
import { RelayHub, type RelayTarget } from './relay-hub.ts';
import type { ApprovalService } from '../services/approvals.ts';
import type { EndedSessionStore } from '../services/ended-sessions.ts';
import type { BudgetService } from '../services/budgets.ts';
import type { ControlPlaneMetrics } from '../observability/metrics.ts';
import type { Tracing } from '../../../common/src/tracing.ts';
import { ndjsonLines, parseAuditBatch, type AuditRecordInput, type AuditStore } from '../services/audit-store.ts';

export interface ConfigServiceDeps {
  /** Counts audit ingest (records stored, duplicate, rejected; the backlog); absent, nothing is counted. */
  metrics?: ControlPlaneMetrics;
  /** A span per stored audit batch (OpenTelemetry, when OTEL_* asks for it); absent, none. */
  tracing?: Tracing | undefined;
  /** The token nodes present; undefined only when nodes are authenticated by client certificate (mTLS). */
  nodeToken: string | undefined;
  publisher: SnapshotPublisher;
  nodes: NodeService;
  catalog: CatalogService;
  logger: Logger;
  /** Reaches nodes connected to other control-plane replicas; without it, relays reach this replica's nodes only. */
  relayBus?: RelayBus;
  /** Keeps ended sessions in the database (across restarts, for every replica); without it, in memory only. */
  endedSessions?: EndedSessionStore;
  /** How long ACKs wait to be stored together (default ACK_WINDOW_MS). */
  ackWindowMs?: number;
  /** Budgets and their leases; without it, nodes are sent no leases. */
  budgets?: BudgetService;
  /** How often leases are refreshed (new periods) and dead nodes' leases reclaimed (default 5 s). */
  leaseRefreshMs?: number;
  /** After how long a node not seen gives its unspent leases back (default 30 s). */
  leaseTimeoutMs?: number;
  /** Stores calls held for approval and sends the decisions; without it, approval requests are dropped. */
  approvals?: ApprovalService;
  /** Stores the audit records nodes ship; without it, audit batches are refused (not acknowledged). */
  audit?: AuditStore;
}

type ConnectCall = ServerDuplexStream<ConnectRequest, ConnectResponse>;

/** An audit batch parsed on arrival, waiting to be stored. */
interface AuditBatchIn {
  readonly batchId: number;
  readonly records: readonly AuditRecordInput[];
  readonly rejected: number;
}

/** Records stored in one transaction at most, from the batches waiting (a node sends 1,000 a batch). */
export const AUDIT_RECORDS_PER_INSERT = 8_000;

/** Encoded once per snapshot or delta and shared by every stream that sends it. */
const encodedMessages = new WeakMap<object, Buffer>();

/**
 * ConfigService's definition with a response serializer that encodes each snapshot and delta once,
 * however many nodes it is sent to.
 */
export const configServiceDefinition = {
  connect: {
    ...ConfigServiceService.connect,
    responseSerialize(value: ConnectResponse): Buffer {
      const payload = value.kind?.value;
      if (!payload || value.kind?.$case === 'auditAck') return Buffer.from(ConnectResponse.encode(value).finish());
      let encoded = encodedMessages.get(payload);
      if (!encoded) {
        encoded = Buffer.from(ConnectResponse.encode(value).finish());
        encodedMessages.set(payload, encoded);
      }
      return encoded;
    },
  },
};

/** Sent versions a node has not answered yet, kept per stream at most (older ones are forgotten). */
const MAX_UNANSWERED = 1024;

const GRPC_STATUS: Record<string, status> = {
  [ErrorCode.BAD_USER_INPUT]: status.INVALID_ARGUMENT,
  [ErrorCode.UNAUTHENTICATED]: status.UNAUTHENTICATED,
  [ErrorCode.FORBIDDEN]: status.PERMISSION_DENIED,
  [ErrorCode.NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.CONFLICT]: status.ALREADY_EXISTS,
};

/** The ConfigService: one long-lived Connect stream per data-plane node. */
export class ConfigStreamService {
  private readonly streams = new Set<NodeStream>();
  private readonly acks: AckBatcher;
  private readonly records: NodeRecords;
  /** Forwards node-to-node messages (replies, cancels, ended sessions) and keeps the ended sessions. */
  readonly relays: RelayHub;

  constructor(private readonly deps: ConfigServiceDeps) {
    this.records = new NodeRecords(
      deps.nodes,
      (nodeId, report) => deps.catalog.applyReport(nodeId, report),
      deps.logger,
    );
    this.acks = new AckBatcher(
      deps.nodes,
      deps.logger,
      (nodeIds) => this.records.presenceWritten(nodeIds),
      deps.ackWindowMs,
    );
    this.relays = new RelayHub(deps.relayBus, deps.logger, Date.now, deps.endedSessions);
    deps.approvals?.sendDecisionsWith(this.relays);
    if (deps.budgets !== undefined) {
      const budgets = deps.budgets;
      this.leaseTimer = setInterval(() => {
        budgets
          .reconcile()
          .then(() => budgets.reclaim(deps.leaseTimeoutMs ?? 30_000))
          .then(() => {
            for (const stream of this.streams) stream.refreshLeases([]);
          })
          .catch((error: unknown) => deps.logger.warn({ err: error }, 'budget leases could not be refreshed'));
      }, deps.leaseRefreshMs ?? 5_000);
      this.leaseTimer.unref();
    }
  }

  private leaseTimer: NodeJS.Timeout | undefined;

  /** How many distinct nodes are connected to this replica (what every limit and budget is divided by). */
  liveNodeCount(): number {
    return Math.max(1, new Set(this.liveStreams().map((s) => s.nodeId)).size);
  }

  readonly implementation = {
    connect: (call: ConnectCall) => this.connect(call),
  };

  private connect(call: ConnectCall): void {
    const authorization = call.metadata.get('authorization')[0];
    const nodeToken = this.deps.nodeToken;
    if (
      nodeToken !== undefined &&
      !bearerMatches(typeof authorization === 'string' ? authorization : undefined, nodeToken)
    ) {
      this.deps.logger.warn({ peer: call.getPeer() }, 'refused a config stream with a missing or wrong node token');
      endWithError(
        call,
        new PortcullisError(
          ErrorCode.UNAUTHENTICATED,
          'the node token is missing or wrong; send metadata "authorization: Bearer <node token>" with the token ' +
            'the control plane was started with',
        ),
      );
      return;
    }
    const stream = new NodeStream(
      call,
      this.deps,
      this.acks,
      this.records,
      this.relays,
      () => {
        this.streams.delete(stream);
        this.shareLimits();
      },
      () => this.shareLimits(),
      () => this.liveNodeCount(),
    );
    this.streams.add(stream);
  }

  /** The streams that said hello on this replica (the heartbeat keeps their nodes' lastSeenAt fresh). */
  liveStreams(): Array<{ nodeId: string; streamId: string }> {
    return [...this.streams].filter((s) => s.nodeId !== '').map((s) => ({ nodeId: s.nodeId, streamId: s.streamId }));
  }

  /**
   * Tells every node its share of the rate limits: one over the number of distinct nodes connected
   * to this replica (a node on two streams counts once). Sent whenever a node comes or goes.
   */
  private shareLimits(): void {
    const share = { liveNodes: this.liveNodeCount() };
    for (const stream of this.streams) stream.share(share);
  }

  /** Waits for every stream's bookkeeping (marking nodes disconnected) after the server went down. */
  async drain(): Promise<void> {
    clearInterval(this.leaseTimer);
    await Promise.all([...this.streams].map((stream) => stream.finished));
    // Answers and records still waiting are written (one last attempt) before the database goes away.
    await Promise.all([this.acks.close(), this.records.close()]);
    this.relays.close();
  }
}

function endWithError(call: ConnectCall, error: unknown): void {
  const serviceError: Partial<ServiceError> =
    error instanceof PortcullisError
      ? {
          code: GRPC_STATUS[error.code] ?? status.INTERNAL,
          details: GRPC_STATUS[error.code] ? error.message : 'internal error',
        }
      : { code: status.INTERNAL, details: 'internal error' };
  call.emit('error', serviceError);
}

/**
 * One node's stream: hello, snapshots (or deltas) out, ACKs and upstream reports in. A node that
 * accepts deltas gets the whole snapshot first and then deltas against what it was last sent; when
 * it NACKs a delta (it does not run the delta's base), it is sent the whole current snapshot.
 */
class NodeStream implements RelayTarget {
  readonly streamId = randomUUID();
  private nodeId_: string | undefined;
  nodeTag = '';
  private leaveRelays: (() => void) | undefined;
  private acceptsDeltas = false;
  private lastSentVersion: bigint | undefined;
  /** The version the node runs if it applied everything sent; undefined after a NACK (unknown). */
  private nodeRuns: string | undefined;
  /** Versions sent and not answered yet, and whether each went as a delta. */
  private readonly unanswered = new Map<string, 'delta' | 'snapshot'>();
  /** The newest version re-sent whole after a refused delta: later refusals up to it are answered already. */
  private resentWhole: bigint | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Messages are handled one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  /** Audit batches parsed and waiting to be stored, in order (those waiting together go in one transaction). */
  private auditPending: AuditBatchIn[] = [];
  private auditStoring = false;
  /**
   * Whether the next audit group may hold records stored already (its ids are then looked up before the COPY):
   * true on a new stream, which starts with what the node had in flight on the last one.
   */
  private auditMayRepeat = true;
  private ended = false;
  private readonly logger: Logger;
  private resolveFinished!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(
    private readonly call: ConnectCall,
    private readonly deps: ConfigServiceDeps,
    private readonly acks: AckBatcher,
    private readonly records: NodeRecords,
    private readonly relays: RelayHub,
    private readonly onFinished: () => void,
    private readonly onHello: () => void = () => undefined,
    private readonly liveNodes: () => number = () => 1,
  ) {
    this.logger = deps.logger.child({ stream: this.streamId });
    call.on('data', (message: ConnectRequest) => {
      this.queue = this.queue
        .then(() => (this.ended ? undefined : this.handle(message)))
        .catch((error: unknown) => this.fail(error));
    });
    call.on('end', () => this.finish(true));
    call.on('cancelled', () => this.finish(false));
    call.on('error', () => this.finish(false));
  }

  get nodeId(): string {
    return this.nodeId_ ?? '';
  }

  /** Sends this node its share of the rate limits (after its first snapshot). */
  share(share: NodeShare): void {
    if (!this.ended && this.nodeId_ !== undefined && this.lastSentVersion !== undefined)
      this.call.write({ kind: { $case: 'share', value: share } });
  }

  /** The budgets named by the last snapshot sent (a change refreshes the leases). */
  private budgeted = '';

  /** Records what the node spent, tops its leases up and sends them (in order with its other messages). */
  refreshLeases(spends: readonly BudgetSpend[]): void {
    const budgets = this.deps.budgets;
    if (budgets === undefined || this.ended || this.nodeId_ === undefined) return;
    this.queue = this.queue
      .then(async () => {
        const leases = await budgets.grant(this.nodeId, this.liveNodes(), spends);
        if (!this.ended) this.call.write({ kind: { $case: 'leases', value: { leases } } });
      })
      .catch((error: unknown) => this.logger.warn({ err: error }, 'budget leases could not be granted'));
  }

  /** Sends a relayed message to this node. */
  deliver(envelope: RelayEnvelope): void {
    if (!this.ended) this.call.write({ kind: { $case: 'relay', value: envelope } });
  }

  private async handle(raw: ConnectRequest): Promise<void> {
    const message = parseNodeMessage(raw);
    if (this.nodeId_ === undefined && message.kind !== 'hello') {
      throw new PortcullisError(
        ErrorCode.BAD_USER_INPUT,
        `kind: the first message on a stream must be hello, not ${message.kind}; send NodeHello first`,
        { field: 'kind' },
      );
    }
    switch (message.kind) {
      case 'hello':
        return this.hello(message.hello);
      case 'ack': {
        const sentAs = this.answered(message.ack.version);
        if (!message.ack.accepted) this.refused(message.ack.version, sentAs, message.ack.error);
        // Not awaited: the answer is stored with the others of its batch (retried while the database
        // is away), and the node's later messages (relayed replies an agent waits for) must not wait.
        this.acks.record(this.nodeId, message.ack.version, message.ack.accepted, message.ack.error);
        return;
      }
      case 'upstream': {
        // Stored later when the database is away: the stream goes on.
        await this.records.report(this.nodeId, message.report);
        return;
      }
      case 'relay':
        this.relays.fromNode(this, message.relay);
        return;
      case 'spend':
        this.refreshLeases(message.spend.entries);
        return;
      case 'approvalRequest':
        await this.deps.approvals?.requested(this.nodeId, this.nodeTag, message.request);
        return;
      case 'approvalWithdrawal':
        await this.deps.approvals?.withdrawn(this.nodeId, message.withdrawal);
        return;
      case 'audit': {
        // Validated on arrival, so that the next batch is parsed while the one before waits for the database;
        // stored on a queue of its own: a batch waiting for the database must not hold relayed replies up.
        const { records, rejected } = this.parseAudit(
          message.audit.recordsNdjson.length > 0 ? ndjsonLines(message.audit.recordsNdjson) : message.audit.recordsJson,
        );
        this.auditPending.push({ batchId: message.audit.batchId, records, rejected });
        if (!this.auditStoring) void this.storeAuditBatches();
        return;
      }
    }
  }

  /** Parses and checks a batch's records; the invalid ones are counted and logged with their first problems. */
  private parseAudit(lines: Iterable<string>): { records: AuditRecordInput[]; rejected: number } {
    if (this.deps.audit === undefined) return { records: [], rejected: 0 };
    const { records, rejected, problems } = parseAuditBatch(lines);
    if (rejected > 0)
      this.logger.warn({ node: this.nodeId, rejected, problems }, 'audit records refused as invalid (not stored)');
    this.deps.metrics?.auditReceived(records.length, rejected);
    return { records, rejected };
  }

  /**
   * Stores the batches waiting, in order: those that arrived while the one before was being stored go in
   * one transaction together (up to AUDIT_RECORDS_PER_INSERT records), so a node with several batches in
   * flight pays one transaction for them; each batch is acknowledged once that transaction committed.
   */
  private async storeAuditBatches(): Promise<void> {
    this.auditStoring = true;
    try {
      while (this.auditPending.length > 0 && !this.ended) {
        const group: AuditBatchIn[] = [this.auditPending.shift()!];
        let count = group[0]!.records.length;
        while (
          this.auditPending.length > 0 &&
          count + this.auditPending[0]!.records.length <= AUDIT_RECORDS_PER_INSERT
        ) {
          const next = this.auditPending.shift()!;
          count += next.records.length;
          group.push(next);
        }
        await this.storeAudit(group);
      }
    } finally {
      this.auditStoring = false;
    }
  }

  /**
   * Stores batches of audit records and acknowledges them; a failed insert (the database away) is
   * tried again with backoff while the stream lives (the node sends more only as batches are
   * acknowledged, so at most its window piles up here). Invalid records are logged, counted in the
   * ack and not stored.
   */
  private async storeAudit(group: readonly AuditBatchIn[]): Promise<void> {
    const store = this.deps.audit;
    const metrics = this.deps.metrics;
    if (store === undefined || this.ended) return;
    const records = group.length === 1 ? group[0]!.records : group.flatMap((batch) => batch.records);
    const backoff = new Backoff({ baseMs: 100, maxMs: 5_000 });
    const span = this.deps.tracing?.request('audit ingest', undefined, {
      'portcullis.node_id': this.nodeId,
      'portcullis.audit.records': records.length,
      'portcullis.audit.rejected': group.reduce((sum, batch) => sum + batch.rejected, 0),
      'portcullis.audit.batches': group.length,
    });
    let attempts = 0;
    while (!this.ended) {
      try {
        attempts++;
        const stored = await store.insert(records, this.auditMayRepeat);
        // A node sends again, on a new stream, what it had in flight when the last one ended: its ids are looked
        // up first until a group holds none stored already (then the primary key alone catches a repeat).
        this.auditMayRepeat = stored < records.length;
        span?.annotate({ 'portcullis.audit.stored': stored, 'portcullis.audit.attempts': attempts });
        span?.end();
        metrics?.auditStored(records.length, stored);
        for (const { batchId, rejected } of group)
          if (!this.ended) this.call.write({ kind: { $case: 'auditAck', value: { batchId, rejected } } });
        return;
      } catch (error) {
        this.logger.warn(
          { node: this.nodeId, records: records.length, err: errorMessage(error) },
          'audit records not stored yet; retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, backoff.next()));
      }
    }
    span?.fail('the stream ended before the records were stored', { 'portcullis.audit.attempts': attempts });
    span?.end();
    metrics?.auditAbandoned(records.length);
  }

  private async hello(hello: Extract<NodeMessage, { kind: 'hello' }>['hello']): Promise<void> {
    if (this.nodeId_ !== undefined) {
      throw new PortcullisError(
        ErrorCode.BAD_USER_INPUT,
        'hello: a stream carries one hello; open a new stream to reconnect',
        { field: 'hello' },
      );
    }
    this.nodeId_ = hello.nodeId;
    this.nodeTag = hello.nodeTag;
    this.acceptsDeltas = hello.acceptsDeltas;
    // Recorded in the background: with the database away, the node is still served the last snapshot.
    this.records.connected(hello, this.streamId);
    // Calls an earlier process of this node held for approval died with it (before its requests come again).
    if (this.deps.approvals !== undefined && hello.nodeTag !== '')
      await this.deps.approvals
        .nodeStarted(hello.nodeId, hello.nodeTag)
        .catch((error: unknown) =>
          this.logger.warn({ err: error }, 'could not mark the approvals of an earlier node process'),
        );
    this.logger.info(
      {
        node: hello.nodeId,
        softwareVersion: hello.softwareVersion,
        appliedVersion: hello.appliedVersion,
        acceptsDeltas: hello.acceptsDeltas,
      },
      'node connected',
    );
    if (this.ended) return;
    this.unsubscribe = this.deps.publisher.subscribe((publication) => this.send(publication));
    this.send({ snapshot: this.deps.publisher.current(), delta: undefined });
    this.onHello();
    // After the snapshot (the node verifies ended session ids with its session keys): what ended while it was away.
    const ended = await this.relays.liveEndedSessions();
    if (this.ended) return;
    for (const envelope of ended) this.deliver(envelope);
    this.leaveRelays = this.relays.join(this);
  }

  /** Sends a newer revision: as a delta when the node takes them and runs its base, else whole. */
  private send({ snapshot, delta }: Publication, again = false): void {
    const version = BigInt(snapshot.version);
    if (this.ended || (!again && this.lastSentVersion !== undefined && version <= this.lastSentVersion)) return;
    this.lastSentVersion = version;
    const asDelta = this.acceptsDeltas && delta !== undefined && !again && this.nodeRuns === delta.baseVersion;
    // A plain Map, not an LRUCache: `answered` walks the versions in the order they were sent.
    if (this.unanswered.size >= MAX_UNANSWERED) this.unanswered.delete(this.unanswered.keys().next().value!);
    this.unanswered.set(snapshot.version, asDelta ? 'delta' : 'snapshot');
    this.nodeRuns = snapshot.version;
    this.call.write(
      asDelta ? { kind: { $case: 'delta', value: delta } } : { kind: { $case: 'snapshot', value: snapshot } },
    );
    // Budgets may have changed with the revision: the node's leases follow it.
    const budgeted = snapshot.budgeted.join(',');
    if (budgeted !== '' || this.budgeted !== '') this.refreshLeases([]);
    this.budgeted = budgeted;
  }

  /** How `version` was sent, forgetting it and everything before it (a node answers in order). */
  private answered(version: string): 'delta' | 'snapshot' | undefined {
    const sentAs = this.unanswered.get(version);
    if (sentAs === undefined) return undefined;
    for (const sent of this.unanswered.keys()) {
      this.unanswered.delete(sent);
      if (sent === version) break;
    }
    return sentAs;
  }

  /** A NACK: what the node runs is unknown now; a refused delta is answered with the whole snapshot. */
  private refused(version: string, sentAs: 'delta' | 'snapshot' | undefined, reason: string): void {
    this.nodeRuns = undefined;
    this.logger.warn({ node: this.nodeId, version, sentAs, reason }, 'node refused a config snapshot');
    if (sentAs !== 'delta' || (this.resentWhole !== undefined && BigInt(version) <= this.resentWhole)) return;
    const current = this.deps.publisher.current();
    this.resentWhole = BigInt(current.version);
    this.send({ snapshot: current, delta: undefined }, true);
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    if (!(error instanceof PortcullisError) || error.code === ErrorCode.INTERNAL) {
      this.logger.error({ node: this.nodeId, err: errorMessage(error) }, 'config stream failed');
    } else {
      this.logger.warn({ node: this.nodeId, code: error.code, err: error.message }, 'config stream refused a message');
    }
    endWithError(this.call, error);
    this.finish(false);
  }

  private finish(clientEnded: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe?.();
    this.leaveRelays?.();
    if (clientEnded) this.call.end();
    const nodeId = this.nodeId_;
    this.queue
      .then(() => {
        if (nodeId === undefined) return;
        this.records.disconnected(nodeId, this.streamId);
        this.logger.info({ node: nodeId }, 'node disconnected');
      })
      .finally(() => {
        this.onFinished();
        this.resolveFinished();
      });
  }
}
