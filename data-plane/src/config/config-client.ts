import type { ApprovalRequest, ApprovalWithdrawal } from '../../../proto/gen/portcullis/v1/config.ts';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import { backoffDelay, errorMessage, type Logger } from '../../../common/src/index.ts';
import {
  type ConfigServiceClient,
  Snapshot,
  type SnapshotDelta,
  type ConnectRequest,
  type ConnectResponse,
  type RelayEnvelope,
  type UpstreamReport,
  type BudgetLease,
  type BudgetSpend,
  type AuditAck,
  type AuditBatch,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { AppliedConfig } from './applied-config.ts';
import { NodeConfigServiceClient } from './connect-request-encoding.ts';
import {
  channelCredentials,
  channelOptions,
  DEFAULT_RECONNECT,
  type ConfigStreamTls,
  type ReconnectBackoff,
} from './channel-options.ts';

export interface ConfigClientOptions {
  /**
   * host:port of the control plane's gRPC server, or of several replicas: the node follows one and
   * moves to the next when its stream fails.
   */
  addresses: readonly string[];
  /** Sent as `authorization: Bearer …`; may be omitted when the control plane authenticates nodes by certificate. */
  nodeToken: string | undefined;
  /** TLS (and a client certificate, for mTLS); plaintext when undefined. */
  tls?: ConfigStreamTls;
  /** Reconnect backoff of each channel and between attempts (default 100 ms to 5 s). */
  reconnect?: ReconnectBackoff;
  nodeId: string;
  softwareVersion: string;
  mcpUrl: string;
  /** Where the last accepted snapshot is kept, so a restart during an outage still serves. */
  cacheFile: string | undefined;
  logger: Logger;
  /** Called after a snapshot was accepted and swapped in. */
  onApplied: (config: AppliedConfig, previous: AppliedConfig | undefined) => void;
  /** The tag in this process's server-request ids, announced in the hello so that replies are relayed here. */
  nodeTag?: string;
  /** A message another node relayed to this one (not validated yet). */
  onRelay?: (envelope: RelayEnvelope) => void;
  /** The control plane's count of live nodes sharing every rate limit (NodeShare). */
  onShare?: (liveNodes: number) => void;
  /** This node's budget leases (BudgetLeases), whenever the control plane sends them. */
  onLeases?: (leases: BudgetLease[]) => void;
  /** After each (re)connect's hello: what the node re-announces (e.g. the sessions it knows ended). */
  onConnected?: () => void;
  /**
   * The first snapshot of each stream arrived: what the control plane at its other end takes
   * (`Snapshot.takes_audit_rows`), whether or not the snapshot is applied.
   */
  onControlPlaneKnown?: (controlPlane: { takesAuditRows: boolean }) => void;
  /** The stream was lost (messages sent on it and not answered are to be sent again on the next). */
  onDisconnected?: () => void;
  /** The control plane stored an audit batch. */
  onAuditAck?: (ack: AuditAck) => void;
}

/**
 * The node's end of the configuration stream. It keeps one Connect stream open (reconnecting
 * with backoff), applies each snapshot or delta atomically (validate, index, swap) and ACKs it, or
 * NACKs with the reason and keeps the last good one (a delta on another base than the version it
 * runs is NACKed, and the control plane answers with the whole snapshot). Upstream reports are sent
 * as they happen and the latest of each is re-sent after a reconnect, so the control plane always
 * converges. With several addresses, a failed stream moves the node to the next one at once; only a
 * whole round of failures backs off.
 */
export class ConfigClient {
  private readonly options: ConfigClientOptions;
  private readonly clients: ConfigServiceClient[];
  private readonly reconnect: ReconnectBackoff;
  /** Which address the current (or next) stream goes to. */
  private target = 0;
  private stream: ClientDuplexStream<ConnectRequest, ConnectResponse> | undefined;
  /** Whether the current stream has delivered a message (the control plane answered). */
  private live = false;
  /** When the node last knew its configuration was current (a live stream ended then); see configAgeMs. */
  private lastCurrentAt: number | undefined;
  private applied: AppliedConfig | undefined;
  private readonly reports = new Map<string, UpstreamReport>();
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The cache write in progress, and whether a newer configuration waits to be written after it. */
  private saving: Promise<void> | undefined;
  private saveAgain = false;

  constructor(options: ConfigClientOptions) {
    if (options.addresses.length === 0) throw new TypeError('ConfigClient needs at least one control-plane address');
    this.options = options;
    this.reconnect = options.reconnect ?? DEFAULT_RECONNECT;
    const credentials = channelCredentials(options.tls);
    const channel = channelOptions(this.reconnect, options.tls);
    this.clients = options.addresses.map((address) => new NodeConfigServiceClient(address, credentials, channel));
  }

  /** The configuration being served, or undefined before the first snapshot. */
  get config(): AppliedConfig | undefined {
    return this.applied;
  }

  /** Whether the config stream is up: the control plane answered on it and it has not failed since. */
  get connected(): boolean {
    return this.live;
  }

  /** The control-plane address the node follows (or tries next). */
  get address(): string {
    return this.options.addresses[this.target]!;
  }

  /**
   * How long the node may have been missing configuration changes, in ms: 0 while the stream is up
   * (gRPC keepalive pings check that every 10 s), else the time since it went down, or since the
   * cached snapshot was written when the node never reached the control plane; undefined before
   * any configuration.
   */
  configAgeMs(now = Date.now()): number | undefined {
    if (this.live) return 0;
    if (this.lastCurrentAt === undefined) return undefined;
    return Math.max(0, now - this.lastCurrentAt);
  }

  /** Loads the cached snapshot if there is one, then connects. Does not wait for the control plane. */
  async start(): Promise<void> {
    await this.loadCache();
    this.connect();
  }

  /** Sends (or queues for the next connection) an upstream report; only the latest per upstream is kept. */
  report(report: UpstreamReport): void {
    this.reports.set(report.upstreamId, report);
    this.stream?.write({ kind: { $case: 'upstream', value: report } });
  }

  /**
   * Sends a message for another node through the control plane; false when the stream is down (the
   * message is not queued: a relayed reply or cancel is only useful now).
   */
  relay(envelope: RelayEnvelope): boolean {
    return this.sendNow({ kind: { $case: 'relay', value: envelope } });
  }

  /**
   * Reports what this node spent of its budget leases; false while no stream is open (the next report carries it, being
   * cumulative).
   */
  reportSpend(entries: BudgetSpend[]): boolean {
    return this.sendNow({ kind: { $case: 'spend', value: { entries } } });
  }

  /** Sends a call held for approval; false when the stream is down (the caller re-sends it on connect). */
  requestApproval(request: ApprovalRequest): boolean {
    return this.sendNow({ kind: { $case: 'approvalRequest', value: request } });
  }

  /** Writes a message on the open stream; false (and nothing queued) when none is open. */
  private sendNow(message: ConnectRequest): boolean {
    const stream = this.stream;
    if (stream === undefined) return false;
    stream.write(message);
    return true;
  }

  /** Tells the control plane a held call no longer waits (best effort: it also expires there). */
  withdrawApproval(withdrawal: ApprovalWithdrawal): void {
    this.stream?.write({ kind: { $case: 'approvalWithdrawal', value: withdrawal } });
  }

  /** Sends a batch of audit records; false when the stream is down (the shipper sends it again on the next). */
  sendAudit(batch: AuditBatch): boolean {
    return this.sendNow({ kind: { $case: 'audit', value: batch } });
  }

  /** Forgets reports of upstreams no longer configured. */
  retainReports(upstreamIds: ReadonlySet<string>): void {
    for (const id of this.reports.keys()) if (!upstreamIds.has(id)) this.reports.delete(id);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.stream?.cancel();
    this.stream = undefined;
    for (const client of this.clients) client.close();
  }

  private connect(): void {
    if (this.closed) return;
    const metadata = new Metadata();
    if (this.options.nodeToken !== undefined) metadata.set('authorization', `Bearer ${this.options.nodeToken}`);
    const stream = this.clients[this.target]!.connect(metadata);
    this.live = false;
    this.stream = stream;
    stream.write({
      kind: {
        $case: 'hello',
        value: {
          nodeId: this.options.nodeId,
          softwareVersion: this.options.softwareVersion,
          mcpUrl: this.options.mcpUrl,
          appliedVersion: this.applied?.version ?? '',
          acceptsDeltas: true,
          nodeTag: this.options.nodeTag ?? '',
        },
      },
    });
    for (const report of this.reports.values()) stream.write({ kind: { $case: 'upstream', value: report } });
    this.options.onConnected?.();
    let known = false;
    stream.on('data', (message: ConnectResponse) => {
      this.attempts = 0;
      if (!this.live && this.stream === stream) {
        this.live = true;
        this.options.logger.info({ controlPlane: this.address }, 'following the control plane');
      }
      if (message.kind?.$case === 'snapshot' && !known && this.stream === stream) {
        known = true;
        this.options.onControlPlaneKnown?.({ takesAuditRows: message.kind.value.takesAuditRows });
      }
      if (message.kind?.$case === 'snapshot') this.onSnapshot(stream, message.kind.value);
      else if (message.kind?.$case === 'delta') this.onDelta(stream, message.kind.value);
      else if (message.kind?.$case === 'relay') this.options.onRelay?.(message.kind.value);
      else if (message.kind?.$case === 'share') this.options.onShare?.(message.kind.value.liveNodes);
      else if (message.kind?.$case === 'leases') this.options.onLeases?.(message.kind.value.leases);
      else if (message.kind?.$case === 'auditAck') this.options.onAuditAck?.(message.kind.value);
    });
    stream.on('error', (error: Error) => this.onDisconnected(stream, error));
    stream.on('end', () => this.onDisconnected(stream, new Error('stream ended')));
  }

  private onSnapshot(stream: ClientDuplexStream<ConnectRequest, ConnectResponse>, snapshot: Snapshot): void {
    const previous = this.applied;
    if (previous && BigInt(snapshot.version) <= BigInt(previous.version) && snapshot.version !== previous.version) {
      // An older revision (e.g. from a lagging replica): keep the newer one, but say so.
      stream.write({
        kind: {
          $case: 'ack',
          value: {
            version: snapshot.version,
            accepted: false,
            error: `node already runs newer version ${previous.version}`,
          },
        },
      });
      return;
    }
    this.apply(stream, snapshot.version, () => AppliedConfig.fromSnapshot(snapshot));
  }

  private onDelta(stream: ClientDuplexStream<ConnectRequest, ConnectResponse>, delta: SnapshotDelta): void {
    const base = this.applied;
    this.apply(stream, delta.version, () => {
      if (base === undefined)
        throw new Error(`delta ${delta.version}: this node runs no configuration yet; send the whole snapshot`);
      return base.applyDelta(delta);
    });
  }

  /** Builds the next configuration; swaps it in and ACKs, or keeps the current one and NACKs with the reason. */
  private apply(
    stream: ClientDuplexStream<ConnectRequest, ConnectResponse>,
    version: string,
    build: () => AppliedConfig,
  ): void {
    const previous = this.applied;
    let next: AppliedConfig;
    try {
      next = build();
    } catch (error) {
      const reason = errorMessage(error);
      this.options.logger.error({ version, err: reason }, 'configuration refused; keeping the last good one');
      stream.write({ kind: { $case: 'ack', value: { version, accepted: false, error: reason } } });
      return;
    }
    this.applied = next;
    this.options.onApplied(next, previous);
    stream.write({ kind: { $case: 'ack', value: { version, accepted: true, error: '' } } });
    this.options.logger.debug({ version }, 'configuration applied');
    this.scheduleSave();
  }

  /** Writes the configuration being served to the cache file, once at a time, always the newest. */
  private scheduleSave(): void {
    if (!this.options.cacheFile) return;
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    this.saving = (async () => {
      do {
        this.saveAgain = false;
        // Off the path of the ACK: the encoding of a large configuration waits for the next turn.
        await new Promise((resolve) => setImmediate(resolve));
        const config = this.applied;
        if (config) await this.saveCache(config.toSnapshot());
      } while (this.saveAgain && !this.closed);
    })().finally(() => {
      this.saving = undefined;
    });
  }

  private onDisconnected(stream: ClientDuplexStream<ConnectRequest, ConnectResponse>, error: Error): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    this.options.onDisconnected?.();
    if (this.live) this.lastCurrentAt = Date.now();
    this.live = false;
    if (this.closed) return;
    const lost = this.address;
    const delay = this.nextDelay();
    this.options.logger.warn(
      { err: error.message, controlPlane: lost, next: this.address, retryInMs: Math.round(delay) },
      'control plane stream lost; serving the last snapshot',
    );
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }

  /**
   * Moves to the next address and says how long to wait first: the next replica is tried at once
   * (after the initial backoff), and only a whole round of failed addresses doubles the wait, up to
   * the maximum, with jitter so that a fleet does not reconnect in step.
   */
  private nextDelay(): number {
    const count = this.clients.length;
    this.attempts += 1;
    this.target = (this.target + 1) % count;
    if (this.attempts % count !== 0) return this.reconnect.initialMs;
    const rounds = this.attempts / count - 1;
    return backoffDelay({ baseMs: this.reconnect.initialMs, maxMs: this.reconnect.maxMs }, rounds);
  }

  private async loadCache(): Promise<void> {
    const file = this.options.cacheFile;
    if (!file) return;
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return; // no cache yet
    }
    try {
      const config = AppliedConfig.fromSnapshot(Snapshot.decode(bytes));
      this.applied = config;
      // The cache was written when that configuration was current: its age counts from then.
      this.lastCurrentAt = (await stat(file)).mtimeMs;
      this.options.onApplied(config, undefined);
      this.options.logger.info(
        { version: config.version, file },
        'serving the cached snapshot until the control plane answers',
      );
    } catch (error) {
      this.options.logger.warn({ file, err: errorMessage(error) }, 'ignoring an unreadable snapshot cache');
    }
  }

  private async saveCache(snapshot: Snapshot): Promise<void> {
    const file = this.options.cacheFile;
    if (!file) return;
    try {
      // Write then rename, so a crash mid-write never leaves a torn cache.
      await writeFile(`${file}.tmp`, Snapshot.encode(snapshot).finish(), { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    } catch (error) {
      this.options.logger.warn({ file, err: errorMessage(error) }, 'could not write the snapshot cache');
    }
  }
}
