import { errorMessage, type Logger } from '../../../common/src/index.ts';
import { RelayEnvelope } from '../../../proto/gen/portcullis/v1/config.ts';
import { MAX_RELAY_NOTIFY_CHARS, type RelayBus } from '../config/change-bus.ts';
import type { EndedSessionRecord, EndedSessionStore } from '../services/ended-sessions.ts';
import { MAX_ENDED_SESSION_AGE_MS, parseRelayMessage, type RelayMessage } from './messages.ts';

/** A node stream connected to this replica, as the hub sees it. */
export interface RelayTarget {
  readonly nodeId: string;
  /** The tag of the node's hello (its server-request ids are "pcn-<tag>-<n>"); empty if it sent none. */
  readonly nodeTag: string;
  deliver(envelope: RelayEnvelope): void;
}

/** The sender named on envelopes the control plane makes itself. */
const CONTROL_PLANE_SENDER = 'control-plane';

/** Never sweep a smaller table: below this, expired entries cost less than the sweep. */
const MIN_SWEEP_SIZE = 1_024;
/** Node ids are checked the same way as in the hello. */
const NODE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const NODE_TAG = /^([A-Za-z0-9_-]{1,32})?$/;

/**
 * Forwards relay envelopes between data-plane nodes: to the node whose tag an envelope names, or
 * to every other node when it names none. A node connected to another control-plane replica is
 * reached through the RelayBus (Postgres LISTEN/NOTIFY): an envelope whose target is not connected
 * here, and every broadcast, is published there once, and each replica delivers what it receives to
 * its own streams (never publishing it again).
 *
 * Ended sessions are kept until their ids would have expired anyway, so that a node that
 * (re)connects to any replica is sent the live list after its snapshot: in memory, and in the
 * database through the EndedSessionStore (written in the background), which every replica reads
 * at a node's hello, so the list survives a restart of every replica and every node together.
 * Nodes also re-announce the ended sessions they know whenever they reconnect (the hub forwards and
 * stores only those it did not know), which covers what a replica held but had not written yet.
 */
export class RelayHub {
  private readonly targets = new Set<RelayTarget>();
  private readonly byTag = new Map<string, RelayTarget>();
  /** Ended sessions by session id, with the time they expire. */
  private readonly ended = new Map<string, { envelope: RelayEnvelope; expiresAt: number }>();
  private sweepAt = MIN_SWEEP_SIZE;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    private readonly bus: RelayBus | undefined,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
    private readonly store?: EndedSessionStore,
  ) {
    this.unsubscribe = bus?.onRelay((payload, replica) => this.fromReplica(payload, replica));
  }

  /**
   * Sends an envelope the control plane itself made (an approval decision) to the node whose tag it
   * names: on this replica, or through the others.
   */
  send(envelope: RelayEnvelope): void {
    const stamped = { ...envelope, fromNodeId: CONTROL_PLANE_SENDER };
    if (this.deliverLocally(stamped, undefined) || this.bus === undefined) return;
    const payload = Buffer.from(RelayEnvelope.encode(stamped).finish()).toString('base64');
    this.bus
      .publishRelay(payload)
      .catch((error: unknown) =>
        this.logger.warn({ err: errorMessage(error) }, 'could not publish an approval decision to the other replicas'),
      );
  }

  /** A node stream joins once its hello was accepted; the returned function removes it. */
  join(target: RelayTarget): () => void {
    this.targets.add(target);
    if (target.nodeTag !== '') {
      const previous = this.byTag.get(target.nodeTag);
      if (previous !== undefined && previous.nodeId !== target.nodeId)
        this.logger.warn(
          { nodeTag: target.nodeTag, node: target.nodeId, previous: previous.nodeId },
          'two nodes announced the same node tag; relays go to the newer',
        );
      this.byTag.set(target.nodeTag, target);
    }
    return () => {
      this.targets.delete(target);
      if (this.byTag.get(target.nodeTag) === target) this.byTag.delete(target.nodeTag);
    };
  }

  /**
   * The ended sessions that have not expired yet, to send to a node that just connected: those of
   * the database (ended through any replica, before any restart) and those this replica knows.
   * Without the database (an outage), what this replica knows.
   */
  async liveEndedSessions(): Promise<RelayEnvelope[]> {
    if (this.store !== undefined) {
      try {
        for (const record of await this.store.live()) this.remember(record);
      } catch (error) {
        this.logger.warn(
          { err: errorMessage(error) },
          'could not read the ended sessions from the database; sending the node those this replica knows',
        );
      }
    }
    const now = this.now();
    const live: RelayEnvelope[] = [];
    for (const [sessionId, entry] of this.ended) {
      if (entry.expiresAt > now) live.push(entry.envelope);
      else this.ended.delete(sessionId);
    }
    return live;
  }

  get endedCount(): number {
    return this.ended.size;
  }

  /** An envelope a node sent on its stream (validated already). */
  fromNode(from: RelayTarget, message: RelayMessage): void {
    const envelope = toEnvelope(message, from.nodeId, from.nodeTag);
    if (!this.deliverLocally(envelope, from)) return;
    if (envelope.toNodeTag !== '' && this.byTag.has(envelope.toNodeTag)) return;
    const payload = Buffer.from(RelayEnvelope.encode(envelope).finish()).toString('base64');
    if (this.bus === undefined)
      return this.undeliverable(from, envelope, 'the target node is not connected to the control plane');
    this.bus.publishRelay(payload).then(
      (sent) => {
        if (sent) return;
        this.logger.warn(
          { kind: envelope.kind?.$case, node: from.nodeId, toNodeTag: envelope.toNodeTag, bytes: payload.length },
          'a relay envelope could not reach the other control-plane replicas (too large for NOTIFY, or the listener ' +
            'connection is down)',
        );
        this.undeliverable(
          from,
          envelope,
          `the target node is not connected to this control-plane replica, and the message (${payload.length} ` +
            `base64 characters) could not be passed to the others (NOTIFY carries at most ` +
            `${MAX_RELAY_NOTIFY_CHARS}, or the listener connection is down)`,
        );
      },
      (error: unknown) => {
        this.logger.warn({ err: errorMessage(error) }, 'could not publish a relay envelope');
        this.undeliverable(from, envelope, 'the message could not be passed to the other control-plane replicas');
      },
    );
  }

  /**
   * A relayed call, or an update of one, that cannot go on: the sender is told at once (with the
   * call id), so that its agent gets an answer now rather than after a timeout. Other kinds are
   * only useful now and are dropped; so is news about an undeliverable or cancelled call.
   */
  private undeliverable(from: RelayTarget, envelope: RelayEnvelope, why: string): void {
    const kind = envelope.kind;
    const callId =
      kind?.$case === 'call'
        ? kind.value.callId
        : kind?.$case === 'callUpdate' &&
            (kind.value.update?.$case === 'answer' || kind.value.update?.$case === 'notificationJson')
          ? kind.value.callId
          : undefined;
    if (callId === undefined) return;
    this.logger.debug(
      { node: from.nodeId, toNodeTag: envelope.toNodeTag, kind: kind?.$case, why },
      'relayed call undeliverable; the sender is told',
    );
    from.deliver({
      toNodeTag: from.nodeTag,
      fromNodeId: '',
      fromNodeTag: envelope.toNodeTag,
      keyId: envelope.keyId,
      sessionId: envelope.sessionId,
      kind: { $case: 'callUpdate', value: { callId, update: { $case: 'undeliverable', value: why } } },
    });
  }

  close(): void {
    this.unsubscribe?.();
  }

  private fromReplica(payload: string, replica: string): void {
    let envelope: RelayEnvelope;
    try {
      const decoded = RelayEnvelope.decode(Buffer.from(payload, 'base64'));
      if (!NODE_ID.test(decoded.fromNodeId)) throw new Error('relay.fromNodeId: must name the sending node');
      if (!NODE_TAG.test(decoded.fromNodeTag))
        throw new Error("relay.fromNodeTag: must be the sending node's tag, or empty");
      envelope = toEnvelope(parseRelayMessage(decoded), decoded.fromNodeId, decoded.fromNodeTag);
    } catch (error) {
      this.logger.warn(
        { replica, err: errorMessage(error) },
        'ignored a malformed relay envelope from another replica',
      );
      return;
    }
    this.deliverLocally(envelope, undefined);
  }

  /**
   * Delivers to the streams of this replica: the named node, or every node but the sender. An
   * ended session is recorded, and forwarded only when it is news (false: nothing more to do).
   */
  private deliverLocally(envelope: RelayEnvelope, from: RelayTarget | undefined): boolean {
    if (
      envelope.kind?.$case === 'ended' &&
      !this.recordEnded(envelope, envelope.kind.value.expiresAtMs, from !== undefined)
    )
      return false;
    if (envelope.toNodeTag !== '') {
      const target = this.byTag.get(envelope.toNodeTag);
      if (target !== undefined) target.deliver(envelope);
      else if (from === undefined) return false;
      else
        this.logger.debug(
          { toNodeTag: envelope.toNodeTag, node: from.nodeId },
          'relay target not connected to this replica; publishing to the others',
        );
      return true;
    }
    for (const target of this.targets) if (target !== from) target.deliver(envelope);
    return true;
  }

  /** An ended session read from the database: known from now on, not written again. */
  private remember(record: EndedSessionRecord): void {
    if (this.ended.has(record.sessionId)) return;
    const envelope = RelayEnvelope.fromPartial({
      fromNodeId: record.fromNodeId,
      keyId: record.keyId,
      sessionId: record.sessionId,
      kind: { $case: 'ended', value: { expiresAtMs: record.expiresAt } },
    });
    this.keep(envelope, Math.min(record.expiresAt, this.now() + MAX_ENDED_SESSION_AGE_MS));
  }

  /** `fromNode`: the replica a node told writes it; the others learn of it over the bus, or from the table. */
  private recordEnded(envelope: RelayEnvelope, expiresAtMs: number, fromNode: boolean): boolean {
    const now = this.now();
    const expiresAt = Math.min(expiresAtMs, now + MAX_ENDED_SESSION_AGE_MS);
    if (expiresAt <= now || this.ended.has(envelope.sessionId)) return false;
    this.keep(envelope, expiresAt);
    if (fromNode)
      this.store?.record({
        sessionId: envelope.sessionId,
        keyId: envelope.keyId,
        fromNodeId: envelope.fromNodeId,
        expiresAt,
      });
    return true;
  }

  private keep(envelope: RelayEnvelope, expiresAt: number): void {
    const now = this.now();
    this.ended.set(envelope.sessionId, { envelope, expiresAt });
    if (this.ended.size >= this.sweepAt) {
      for (const [sessionId, entry] of this.ended) if (entry.expiresAt <= now) this.ended.delete(sessionId);
      this.sweepAt = Math.max(MIN_SWEEP_SIZE, this.ended.size * 2);
    }
  }
}

function toEnvelope(message: RelayMessage, fromNodeId: string, fromNodeTag: string): RelayEnvelope {
  return {
    toNodeTag: message.toNodeTag,
    fromNodeId,
    fromNodeTag,
    keyId: message.keyId,
    sessionId: message.sessionId,
    kind: message.kind,
  };
}
