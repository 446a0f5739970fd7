import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { errorMessage, type Logger } from '../../../common/src/index.ts';

/** The Postgres channel config changes are announced on; the payload names the schema. */
export const CONFIG_CHANNEL = 'portcullis_config';

/** The Postgres channel node-to-node relay envelopes cross replicas on; the payload names the schema. */
export const RELAY_CHANNEL = 'portcullis_relay';

/**
 * The Postgres channel on which a replica announces the audit records it committed (their `seq` range), so that the
 * `auditEventAdded` subscribers of every replica see them; the payload names the schema.
 */
export const AUDIT_CHANNEL = 'portcullis_audit';

/**
 * The Postgres channel on which a replica announces a call a node holds for approval (the approval's id), so that
 * the `approvalRequested` subscribers of every replica see it, whichever replica the node is connected to.
 */
export const APPROVAL_CHANNEL = 'portcullis_approvals';

/** NOTIFY payloads must stay below 8000 bytes: the relayed message (base64) gets what the JSON wrapper leaves. */
export const MAX_RELAY_NOTIFY_CHARS = 7_600;

/**
 * Carries relay envelopes (node-to-node messages) between control-plane replicas sharing the
 * database, for nodes connected to another replica. Best effort, like the nodes' own streams: what
 * is published while the listening connection is down is lost.
 */
export interface RelayBus {
  /** This replica's id: its own publications come back to it and are told apart by it. */
  readonly replicaId: string;
  /** Sends `payload` (base64 of an encoded envelope) to every replica; false when it could not be sent. */
  publishRelay(payload: string): Promise<boolean>;
  onRelay(listener: (payload: string, fromReplica: string) => void): () => void;
}

/**
 * Tells the other control-plane replicas sharing the database which audit records this one committed: one
 * transaction's rows hold consecutive `seq` values (the chain head is locked while they are inserted), so a range
 * names them exactly. Best effort like the relay: what is announced while a listening connection is down is missed.
 */
export interface AuditBus {
  /** After the commit of the rows with `seq` from `first` to `last` (decimal text); does not wait. */
  publishAudit(first: string, last: string): void;
  /** Another replica's committed range (never this replica's own). */
  onAudit(listener: (first: string, last: string) => void): () => void;
}

/** Tells the other replicas of each approval request this one stored; best effort, like the audit announcements. */
export interface ApprovalBus {
  /** After the commit of a new approval request; does not wait. */
  publishApproval(id: string): void;
  /** Another replica's new approval request (never this replica's own). */
  onApproval(listener: (id: string) => void): () => void;
}

/**
 * What a committed revision changed, when the committing code knows it exactly and it is nothing but
 * this: the keys with these ids stopped being live (revoked). This process can then publish the
 * revision without reading it back; other replicas only hear the version and read it.
 */
export interface KnownChange {
  readonly removedKeyIds: readonly string[];
}

/**
 * Tells every control-plane process sharing the database that the configuration revision moved.
 * Listeners get the new version, or `undefined` when changes may have been missed (after the
 * listening connection was lost) and the revision must be re-read.
 */
export interface ConfigChangeBus extends RelayBus, AuditBus, ApprovalBus {
  /**
   * The announcement to other replicas as an SQL expression over `versionSql` (a text expression),
   * run inside the committing transaction (NOTIFY is delivered only on commit); its parameters are
   * numbered from `$firstParam`. Undefined when there is nobody to tell (the embedded database has
   * no other replicas).
   */
  announcementSql(versionSql: string, firstParam: number): { sql: string; params: unknown[] } | undefined;
  /** After the commit: tell this process at once (with what changed, when that is known exactly). */
  committed(version: string, change?: KnownChange): void;
  onChange(listener: (version: string | undefined, change?: KnownChange) => void): () => void;
  close(): Promise<void>;
}

abstract class EmitterBus {
  protected readonly emitter = new EventEmitter();
  readonly replicaId = randomUUID();

  onRelay(listener: (payload: string, fromReplica: string) => void): () => void {
    this.emitter.on('relay', listener);
    return () => this.emitter.off('relay', listener);
  }

  committed(version: string, change?: KnownChange): void {
    this.emitter.emit('change', version, change);
  }

  onChange(listener: (version: string | undefined, change?: KnownChange) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }

  onAudit(listener: (first: string, last: string) => void): () => void {
    this.emitter.on('audit', listener);
    return () => this.emitter.off('audit', listener);
  }

  onApproval(listener: (id: string) => void): () => void {
    this.emitter.on('approval', listener);
    return () => this.emitter.off('approval', listener);
  }
}

/** For the embedded database (one process owns it; NOTIFY does not cross its connections). */
export class InProcessChangeBus extends EmitterBus implements ConfigChangeBus {
  announcementSql(): undefined {
    return undefined;
  }

  /** One process owns the embedded database: there are no other replicas. */
  async publishRelay(): Promise<boolean> {
    return true;
  }

  /** No other replicas: this process's subscribers are told in process (AuditFeed.stored). */
  publishAudit(): void {}

  /** No other replicas: this process's subscribers are told in process (ApprovalService.requested). */
  publishApproval(): void {}

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

export interface PgNotifyChangeBusOptions {
  url: string;
  schema: string;
  logger: Logger;
  /** Delay before re-listening after the connection is lost. */
  reconnectDelayMs?: number;
}

/** For a real Postgres server: NOTIFY in the committing transaction, LISTEN on a dedicated connection. */
export class PgNotifyChangeBus extends EmitterBus implements ConfigChangeBus {
  private client: pg.Client | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: PgNotifyChangeBusOptions) {
    super();
  }

  static async start(options: PgNotifyChangeBusOptions): Promise<PgNotifyChangeBus> {
    const bus = new PgNotifyChangeBus(options);
    await bus.listen();
    return bus;
  }

  announcementSql(versionSql: string, firstParam: number): { sql: string; params: unknown[] } {
    // The payload the listener parses: {"schema": …, "version": "…", "replica": …}.
    const [channel, schema, replica] = [firstParam, firstParam + 1, firstParam + 2].map((n) => `$${n}`);
    return {
      sql:
        `pg_notify(${channel}, json_build_object('schema', ${schema}::text, 'version', ${versionSql}, 'replica', ` +
        `${replica}::text)::text)`,
      params: [CONFIG_CHANNEL, this.options.schema, this.replicaId],
    };
  }

  async publishRelay(payload: string): Promise<boolean> {
    const client = this.client;
    if (client === undefined || payload.length > MAX_RELAY_NOTIFY_CHARS) return false;
    try {
      await client.query(`SELECT pg_notify($1, $2)`, [
        RELAY_CHANNEL,
        JSON.stringify({ schema: this.options.schema, replica: this.replicaId, envelope: payload }),
      ]);
      return true;
    } catch (error) {
      this.options.logger.warn(
        { err: errorMessage(error) },
        'could not publish a relay envelope to the other replicas',
      );
      return false;
    }
  }

  publishAudit(first: string, last: string): void {
    this.announce(AUDIT_CHANNEL, { first, last }, 'stored audit records');
  }

  publishApproval(id: string): void {
    this.announce(APPROVAL_CHANNEL, { id }, 'an approval request');
  }

  /** NOTIFY on the listening connection (after the announced commit); a failure is logged, never thrown. */
  private announce(channel: string, fields: Record<string, string>, what: string): void {
    const client = this.client;
    if (client === undefined) return;
    const payload = JSON.stringify({ schema: this.options.schema, replica: this.replicaId, ...fields });
    client.query(`SELECT pg_notify($1, $2)`, [channel, payload]).catch((error: unknown) => {
      this.options.logger.warn({ err: errorMessage(error) }, `could not announce ${what} to the replicas`);
    });
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: 'portcullis-config-listener',
    });
    client.on('notification', (message) => {
      if (message.channel === RELAY_CHANNEL && message.payload !== undefined) {
        this.relayed(message.payload);
        return;
      }
      if (message.channel === AUDIT_CHANNEL && message.payload !== undefined) {
        this.audited(message.payload);
        return;
      }
      if (message.channel === APPROVAL_CHANNEL && message.payload !== undefined) {
        this.approvalHeard(message.payload);
        return;
      }
      if (message.channel !== CONFIG_CHANNEL || message.payload === undefined) return;
      try {
        const payload = JSON.parse(message.payload) as { schema?: unknown; version?: unknown; replica?: unknown };
        // This replica's own commits: it was told in process (committed()) in the turn each returned; hearing
        // one again could only start a read racing that (and a revocation's read-free publication).
        if (payload.replica === this.replicaId) return;
        if (
          payload.schema === this.options.schema &&
          typeof payload.version === 'string' &&
          /^\d+$/.test(payload.version)
        ) {
          this.emitter.emit('change', payload.version);
        }
      } catch {
        this.options.logger.warn({ channel: CONFIG_CHANNEL }, 'ignored a malformed config notification');
      }
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    await client.connect();
    await client.query(`LISTEN ${CONFIG_CHANNEL}`);
    await client.query(`LISTEN ${RELAY_CHANNEL}`);
    await client.query(`LISTEN ${AUDIT_CHANNEL}`);
    await client.query(`LISTEN ${APPROVAL_CHANNEL}`);
    this.client = client;
  }

  private relayed(raw: string): void {
    try {
      const payload = JSON.parse(raw) as { schema?: unknown; replica?: unknown; envelope?: unknown };
      if (
        payload.schema !== this.options.schema ||
        typeof payload.replica !== 'string' ||
        typeof payload.envelope !== 'string'
      )
        return;
      if (payload.replica === this.replicaId) return;
      this.emitter.emit('relay', payload.envelope, payload.replica);
    } catch {
      this.options.logger.warn({ channel: RELAY_CHANNEL }, 'ignored a malformed relay notification');
    }
  }

  private audited(raw: string): void {
    try {
      const payload = JSON.parse(raw) as { schema?: unknown; replica?: unknown; first?: unknown; last?: unknown };
      const seq = (value: unknown): value is string => typeof value === 'string' && /^\d{1,19}$/.test(value);
      if (payload.schema !== this.options.schema || payload.replica === this.replicaId) return;
      if (!seq(payload.first) || !seq(payload.last)) return;
      this.emitter.emit('audit', payload.first, payload.last);
    } catch {
      this.options.logger.warn({ channel: AUDIT_CHANNEL }, 'ignored a malformed audit notification');
    }
  }

  private approvalHeard(raw: string): void {
    try {
      const payload = JSON.parse(raw) as { schema?: unknown; replica?: unknown; id?: unknown };
      if (payload.schema !== this.options.schema || payload.replica === this.replicaId) return;
      if (typeof payload.id !== 'string' || !/^[0-9a-f-]{36}$/i.test(payload.id)) return;
      this.emitter.emit('approval', payload.id);
    } catch {
      this.options.logger.warn({ channel: APPROVAL_CHANNEL }, 'ignored a malformed approval notification');
    }
  }

  private lost(client: pg.Client, error: unknown): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    this.options.logger.warn({ err: errorMessage(error) }, 'config listener connection lost; reconnecting');
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.reconnectTimer = setTimeout(() => {
      this.listen().then(
        // Changes may have been committed while nobody listened: make listeners re-read.
        () => this.emitter.emit('change', undefined),
        (error: unknown) => {
          this.options.logger.warn({ err: errorMessage(error) }, 'config listener reconnect failed');
          this.scheduleReconnect();
        },
      );
    }, this.options.reconnectDelayMs ?? 1000);
    this.reconnectTimer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.emitter.removeAllListeners();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
