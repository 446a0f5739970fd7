import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RpcId } from '../mcp/json-rpc.ts';

/**
 * Resumable SSE streams of 2025-era sessions (Streamable HTTP "Resumability and Redelivery").
 *
 * Every event of a session's POST response streams and GET stream carries an id
 * `<node>.<stream>_<seq>` (a POST stream's `<stream>` ends in `.<base64url(JSON request id)>`):
 * `node` is random per process, so ids are unique within a session even when its streams are
 * spread over many nodes (and over restarts), and an id names the node and stream it came from,
 * and which request a POST stream answers. So a node asked to resume a stream it cannot serve (it
 * is another node's, maybe one that died, or it expired) can still fail that request at once
 * rather than leave the agent waiting for a result that will never come (see requestIdOfEventId). Each node keeps the
 * recent events of the streams it holds, bounded by count
 * and bytes per stream, by the number of streams and the bytes of all of them, and by time: a stream
 * that lost its connection (or ended) is dropped `windowMs` later. No database, no I/O: a node that
 * did not hold a stream (stateless nodes) or no longer holds it cannot replay it, and the agent gets
 * a fresh stream.
 *
 * The store is shared by every agent of the node, so each virtual key and each session has a share
 * of its streams and bytes: a key (or session) over its share loses its own oldest streams, ended
 * ones first, never another key's. When the node-wide bounds are hit all the same (many keys, each
 * within its share), the key holding the most gives up its oldest stream.
 */

export interface EventStoreOptions {
  /**
   * How long a stream stays resumable after it lost its connection or ended; also how long a call whose stream dropped
   * keeps running without an agent (default 30 s).
   */
  readonly windowMs?: number;
  /** Events kept per stream (oldest dropped first; default 1,000). */
  readonly maxEventsPerStream?: number;
  /** Bytes of events kept per stream (the newest event is always kept; default 1 MiB). */
  readonly maxBytesPerStream?: number;
  /** Streams held at once (the oldest is dropped first; default 10,000). */
  readonly maxStreams?: number;
  /** Bytes of events held over all streams (the oldest streams are dropped first; default 64 MiB). */
  readonly maxBytes?: number;
  /** Streams held at once for one virtual key (its oldest are dropped first; default 1,000). */
  readonly maxStreamsPerKey?: number;
  /**
   * Bytes of events held for one virtual key (its oldest streams are dropped first; default 16 MiB, never below
   * maxBytesPerStream).
   */
  readonly maxBytesPerKey?: number;
  /** Streams held at once for one 2025-era session (its oldest are dropped first; default 100). */
  readonly maxStreamsPerSession?: number;
  /**
   * Bytes of events held for one session (its oldest streams are dropped first; default 8 MiB, never below
   * maxBytesPerStream).
   */
  readonly maxBytesPerSession?: number;
  /** Enforced by AgentStreams: notification streams (GET) open at once per session (default 8, agent-streams.ts). */
  readonly maxOpenStreamsPerSession?: number;
  /** Enforced by AgentStreams: streams open at once per key, of every kind (default 1,000, agent-streams.ts). */
  readonly maxOpenStreamsPerKey?: number;
  /** The SSE `retry` (ms) sent with priming events: how long agents wait before they reconnect (default 1 s). */
  readonly retryMs?: number;
  /**
   * SSE polling (SEP-1699), off when undefined: a connection delivering a stream that was primed
   * (2025-11-25 and later) is closed by the node after this long, the stream going on; the agent
   * reconnects after `retryMs` with `Last-Event-ID` and picks it up. Long calls thus outlive proxies
   * that cut connections after a while.
   */
  readonly maxConnectionMs?: number;
  /** A fixed node part of the ids (tests); random per process by default. */
  readonly nodeTag?: string;
}

/** Request ids longer than this (as JSON) are left out of event ids. */
const MAX_REQUEST_ID_JSON = 256;

/** The `.<base64url(JSON id)>` suffix of a POST stream's id; empty for GET streams and unwieldy ids. */
function requestPart(requestId: RpcId | undefined): string {
  if (requestId === undefined || requestId === null) return '';
  const json = JSON.stringify(requestId);
  return json.length > MAX_REQUEST_ID_JSON ? '' : `.${Buffer.from(json).toString('base64url')}`;
}

/**
 * The JSON-RPC id of the request whose answer stream a `Last-Event-ID` belongs to, when it names a
 * POST stream (of any node); undefined for GET streams and anything unreadable. The id comes from
 * the agent and is only ever echoed back to it, on its own session.
 */
export function requestIdOfEventId(lastEventId: string): string | number | undefined {
  const stream = lastEventId.slice(0, Math.max(0, lastEventId.lastIndexOf('_')));
  const parts = stream.split('.');
  if (parts.length !== 3 || parts[2] === '') return undefined;
  try {
    const id: unknown = JSON.parse(Buffer.from(parts[2]!, 'base64url').toString('utf8'));
    return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : undefined;
  } catch {
    return undefined;
  }
}

export const DEFAULT_RESUME_WINDOW_MS = 30_000;
export const DEFAULT_SSE_RETRY_MS = 1_000;
export const DEFAULT_MAX_EVENTS_PER_STREAM = 1_000;
export const DEFAULT_MAX_BYTES_PER_STREAM = 1024 * 1024;
export const DEFAULT_MAX_STREAMS = 10_000;
export const DEFAULT_MAX_STORE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_STREAMS_PER_KEY = 1_000;
export const DEFAULT_MAX_BYTES_PER_KEY = 16 * 1024 * 1024;
export const DEFAULT_MAX_STREAMS_PER_SESSION = 100;
export const DEFAULT_MAX_BYTES_PER_SESSION = 8 * 1024 * 1024;

/** The streams of one key or one session, oldest first, and the bytes they hold. */
interface Share {
  readonly streams: Set<ResumableStream>;
  bytes: number;
}

/** Why a `Last-Event-ID` found nothing to resume here. */
export type ResumeMiss = 'malformed' | 'other-node' | 'unknown-or-expired' | 'other-session';

export type ResumeLookup =
  | { readonly ok: true; readonly stream: ResumableStream; readonly afterSeq: number }
  | { readonly ok: false; readonly reason: ResumeMiss };

interface StoredEvent {
  readonly seq: number;
  readonly frame: string;
  readonly at: number;
}

/** One SSE event carrying one JSON-RPC message, with its id. */
function frame(id: string, json: string): string {
  return `id: ${id}\nevent: message\ndata: ${json}\n\n`;
}

/** A priming event (SEP-1699): an id to resume from, the reconnection delay, and empty data, which clients skip. */
function primingFrame(id: string, retryMs: number): string {
  return `id: ${id}\nretry: ${retryMs}\ndata: \n\n`;
}

/**
 * One resumable stream: the events it sent (bounded), and the connection delivering it now, if any.
 * A stream outlives its connection: what is sent while no connection is attached is only recorded,
 * and a GET with `Last-Event-ID` attaches a new connection, which gets the events after that id and
 * then the stream's further events.
 */
export class ResumableStream {
  private seq = 0;
  private events: StoredEvent[] = [];
  private bytes = 0;
  private sink: ServerResponse | undefined;
  /** The stream sent its last event (a POST stream's result); a resume replays and ends. */
  private ended = false;
  /** Its agent takes priming events (2025-11-25 and later), so it may be closed and resumed at will. */
  private primed = false;
  /** Dropped from the store (expired, evicted, its session ended): events are no longer recorded. */
  private dropped = false;
  /** When the stream last lost its connection or ended (or was made); undefined while connected. */
  idleSince: number | undefined = Date.now();
  /**
   * Called once when the store drops the stream before it ended (nobody resumed it in time, it was
   * evicted, or its session ended): a POST stream cancels its call, a GET stream is forgotten.
   */
  onAbandoned: (() => void) | undefined;

  constructor(
    readonly id: string,
    /** The 2025-era session id this stream belongs to: only that session may resume it. */
    readonly holder: string,
    /** The virtual key of that session: the share of the store the stream counts against. */
    readonly keyId: string,
    private readonly store: EventStore,
  ) {}

  get connected(): boolean {
    return this.sink !== undefined;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /**
   * Starts delivering on `res` (its head already written): the priming event (an id and empty data,
   * SEP-1699) when asked, for agents of 2025-11-25 and later, whose clients skip events without data.
   */
  start(res: ServerResponse, priming: boolean): void {
    this.primed = priming;
    if (priming) res.write(primingFrame(`${this.id}_0`, this.store.retryMs));
    this.connect(res, 0);
  }

  /** Sends one JSON-RPC message as the stream's next event. */
  send(json: string): void {
    if (this.ended) return;
    const text = this.record(json);
    const sink = this.sink;
    if (sink !== undefined && !sink.writableEnded && !sink.destroyed) sink.write(text);
  }

  /** Sends the stream's last event (the POST's result) and ends the connection delivering it. */
  end(json: string): void {
    if (this.ended) return;
    const text = this.record(json);
    this.ended = true;
    this.idleSince = Date.now();
    const sink = this.sink;
    this.sink = undefined;
    if (sink !== undefined && !sink.writableEnded && !sink.destroyed) sink.end(text);
  }

  /** Writes an SSE comment (keep-alive) on the connection, if any. */
  comment(text: string): void {
    const sink = this.sink;
    if (sink !== undefined && !sink.writableEnded && !sink.destroyed) sink.write(text);
  }

  /**
   * Resumes the stream on `res` (a GET with `Last-Event-ID`): the recorded events after `afterSeq`,
   * then what comes. A primed stream is primed again with the agent's own cursor, so that the agent
   * holds an id to resume from even when this connection is closed before anything new was sent.
   * Returns how many events were replayed, and whether some after `afterSeq` had already been
   * dropped by the bounds.
   */
  attach(res: ServerResponse, afterSeq: number): { replayed: number; gap: boolean } {
    if (this.primed) res.write(primingFrame(`${this.id}_${Math.min(afterSeq, this.seq)}`, this.store.retryMs));
    return this.connect(res, afterSeq);
  }

  /**
   * Delivers the stream on `res` from `afterSeq` on. A connection still attached (the agent
   * reconnected before this node saw the old one close) is ended: one stream, one connection.
   */
  private connect(res: ServerResponse, afterSeq: number): { replayed: number; gap: boolean } {
    const previous = this.sink;
    this.sink = undefined;
    if (previous !== undefined && previous !== res && !previous.writableEnded) previous.end();
    const first = this.events[0];
    const gap = first !== undefined ? first.seq > afterSeq + 1 : this.seq > afterSeq;
    let replayed = 0;
    for (const event of this.events) {
      if (event.seq <= afterSeq) continue;
      res.write(event.frame);
      replayed += 1;
    }
    if (this.ended) {
      res.end();
      return { replayed, gap };
    }
    this.sink = res;
    this.idleSince = undefined;
    const poll = this.primed ? this.store.maxConnectionMs : undefined;
    const cut = poll === undefined ? undefined : setTimeout(() => this.cut(res), poll);
    cut?.unref();
    res.once('close', () => {
      if (cut !== undefined) clearTimeout(cut);
      if (this.sink !== res) return;
      this.sink = undefined;
      this.idleSince = Date.now();
      // Evicted while connected: with its connection gone, nobody can resume it any more.
      if (this.dropped && !this.ended) this.onAbandoned?.();
    });
    return { replayed, gap };
  }

  /**
   * SSE polling: ends the connection `res` while the stream goes on (its call keeps running); the
   * agent reconnects with `Last-Event-ID` after the `retry` it was sent. A stream the store no
   * longer holds could not be resumed, so its connection is left alone.
   */
  private cut(res: ServerResponse): void {
    if (this.sink !== res || !this.resumable) return;
    this.sink = undefined;
    this.idleSince = Date.now();
    this.store.notePolled();
    if (!res.writableEnded) res.end();
  }

  /** Ends the stream for good (session ended, key revoked, shutdown): ends its connection and leaves the store. */
  close(): void {
    const sink = this.sink;
    this.sink = undefined;
    this.ended = true;
    this.store.remove(this);
    if (sink !== undefined && !sink.writableEnded) sink.end();
  }

  /** Whether a dropped connection can still be resumed (the stream is held and has not ended). */
  get resumable(): boolean {
    return !this.dropped && !this.ended;
  }

  /**
   * The store let go of the stream. It is abandoned when it had neither ended nor a connection;
   * one still connected goes on delivering, without recording (and is abandoned when that connection closes).
   */
  drop(): { abandoned: boolean } {
    if (this.dropped) return { abandoned: false };
    this.dropped = true;
    this.store.release(this.bytes, this);
    this.events = [];
    this.bytes = 0;
    return { abandoned: !this.ended && this.sink === undefined };
  }

  /** Drops events older than `before` (the time bound on long-lived streams). */
  trimOlderThan(before: number): void {
    let n = 0;
    while (n < this.events.length - 1 && this.events[n]!.at < before) n += 1;
    if (n > 0) this.shift(n);
  }

  private record(json: string): string {
    this.seq += 1;
    const text = frame(`${this.id}_${this.seq}`, json);
    if (this.dropped) return text;
    this.events.push({ seq: this.seq, frame: text, at: Date.now() });
    this.bytes += text.length;
    let n = 0;
    let bytes = this.bytes;
    while (
      this.events.length - n > 1 &&
      (this.events.length - n > this.store.maxEventsPerStream || bytes > this.store.maxBytesPerStream)
    ) {
      bytes -= this.events[n]!.frame.length;
      n += 1;
    }
    if (n > 0) this.shift(n);
    this.store.reserve(text.length, this);
    return text;
  }

  private shift(n: number): void {
    let freed = 0;
    for (let i = 0; i < n; i += 1) freed += this.events[i]!.frame.length;
    this.events.splice(0, n);
    this.bytes -= freed;
    this.store.release(freed, this);
  }
}

/**
 * The node's resumable streams, by id. A sweep every few seconds drops the streams that have been
 * without a connection (or ended) for longer than the window; a stream dropped before it ended is
 * abandoned (its owner's `onAbandoned` runs: a POST stream's call is cancelled upstream).
 */
export class EventStore {
  readonly windowMs: number;
  readonly retryMs: number;
  readonly maxEventsPerStream: number;
  readonly maxBytesPerStream: number;
  readonly maxConnectionMs: number | undefined;
  private readonly maxStreams: number;
  private readonly maxBytes: number;
  private readonly keyBounds: { readonly streams: number; readonly bytes: number };
  private readonly sessionBounds: { readonly streams: number; readonly bytes: number };
  private readonly node: string;
  private readonly streams = new Map<string, ResumableStream>();
  private readonly byKey = new Map<string, Share>();
  private readonly bySession = new Map<string, Share>();
  private counter = 0;
  private bytes = 0;
  private polls = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: EventStoreOptions = {}) {
    this.windowMs = options.windowMs ?? DEFAULT_RESUME_WINDOW_MS;
    this.retryMs = options.retryMs ?? DEFAULT_SSE_RETRY_MS;
    this.maxEventsPerStream = Math.max(1, options.maxEventsPerStream ?? DEFAULT_MAX_EVENTS_PER_STREAM);
    this.maxBytesPerStream = options.maxBytesPerStream ?? DEFAULT_MAX_BYTES_PER_STREAM;
    this.maxStreams = Math.max(1, options.maxStreams ?? DEFAULT_MAX_STREAMS);
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_STORE_BYTES;
    this.maxConnectionMs = options.maxConnectionMs;
    // A share always fits one stream's bound.
    const atLeastOneStream = (bytes: number) => Math.max(this.maxBytesPerStream, bytes);
    this.keyBounds = {
      streams: Math.max(1, options.maxStreamsPerKey ?? DEFAULT_MAX_STREAMS_PER_KEY),
      bytes: atLeastOneStream(options.maxBytesPerKey ?? DEFAULT_MAX_BYTES_PER_KEY),
    };
    this.sessionBounds = {
      streams: Math.max(1, options.maxStreamsPerSession ?? DEFAULT_MAX_STREAMS_PER_SESSION),
      bytes: atLeastOneStream(options.maxBytesPerSession ?? DEFAULT_MAX_BYTES_PER_SESSION),
    };
    this.node = options.nodeTag ?? randomBytes(4).toString('hex');
  }

  /** Streams held (connected or waiting to be resumed). */
  get size(): number {
    return this.streams.size;
  }

  /** How many connections SSE polling closed while their streams went on. */
  get polledConnections(): number {
    return this.polls;
  }

  /** Bytes of events held over all streams. */
  get heldBytes(): number {
    return this.bytes;
  }

  /**
   * A new stream of session `holder` of key `keyId`. When the session, the key or the store is at
   * its bound of streams, the oldest stream of the session, the key, or the key holding the most
   * streams is dropped first.
   */
  create(holder: string, keyId: string, requestId?: RpcId): ResumableStream {
    const session = this.bySession.get(holder);
    while (
      session !== undefined &&
      session.streams.size >= this.sessionBounds.streams &&
      this.evictFrom(session, undefined)
    ) {
      // dropped the session's oldest stream
    }
    const key = this.byKey.get(keyId);
    while (key !== undefined && key.streams.size >= this.keyBounds.streams && this.evictFrom(key, undefined)) {
      // dropped the key's oldest stream
    }
    while (
      this.streams.size >= this.maxStreams &&
      this.evictFrom(
        this.largestShare((share) => share.streams.size),
        undefined,
      )
    ) {
      // dropped the oldest stream of the key holding the most
    }
    this.counter += 1;
    const stream = new ResumableStream(
      `${this.node}.${this.counter.toString(36)}${requestPart(requestId)}`,
      holder,
      keyId,
      this,
    );
    this.streams.set(stream.id, stream);
    share(this.bySession, holder).streams.add(stream);
    share(this.byKey, keyId).streams.add(stream);
    this.sweeper ??= this.startSweeper();
    return stream;
  }

  /** The stream a `Last-Event-ID` names, if this node holds it for this session, and the cursor in it. */
  find(lastEventId: string, holder: string): ResumeLookup {
    const at = lastEventId.lastIndexOf('_');
    const seqText = lastEventId.slice(at + 1);
    const seq = Number(seqText);
    if (at <= 0 || seqText === '' || !Number.isSafeInteger(seq) || seq < 0) return { ok: false, reason: 'malformed' };
    const streamId = lastEventId.slice(0, at);
    if (!streamId.startsWith(`${this.node}.`)) return { ok: false, reason: 'other-node' };
    const stream = this.streams.get(streamId);
    if (stream === undefined) return { ok: false, reason: 'unknown-or-expired' };
    if (stream.holder !== holder) return { ok: false, reason: 'other-session' };
    return { ok: true, stream, afterSeq: seq };
  }

  /** Drops the streams of an ended session (their calls are cancelled, their GET streams forgotten). */
  endHolder(holder: string): void {
    for (const stream of [...this.streams.values()]) if (stream.holder === holder) this.drop(stream);
  }

  /** Drops every stream (shutdown): nothing is left running for an agent that can no longer resume. */
  close(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const stream of [...this.streams.values()]) this.drop(stream);
  }

  /** Drops the streams idle for longer than the window, and events older than it. */
  sweep(now = Date.now()): void {
    const before = now - this.windowMs;
    for (const stream of [...this.streams.values()]) {
      if (stream.idleSince !== undefined && stream.idleSince <= before) this.drop(stream);
      else stream.trimOlderThan(before);
    }
  }

  /** @internal A stream leaves without being abandoned (it was closed on purpose). */
  remove(stream: ResumableStream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    stream.drop();
    leave(this.bySession, stream.holder, stream);
    leave(this.byKey, stream.keyId, stream);
  }

  /**
   * @internal Accounts for `n` bytes recorded by `by`; while its session, its key or the store is
   * over its bound of bytes, drops the oldest other stream of that session, that key, or the key
   * holding the most bytes (`by` itself is bounded per stream).
   */
  reserve(n: number, by: ResumableStream): void {
    this.bytes += n;
    const session = this.bySession.get(by.holder);
    const key = this.byKey.get(by.keyId);
    if (session === undefined || key === undefined) return;
    session.bytes += n;
    key.bytes += n;
    while (session.bytes > this.sessionBounds.bytes && this.evictFrom(session, by)) {
      // released the bytes of one of the session's streams
    }
    while (key.bytes > this.keyBounds.bytes && this.evictFrom(key, by)) {
      // released the bytes of one of the key's streams
    }
    while (
      this.bytes > this.maxBytes &&
      (this.evictFrom(
        this.largestShare((s) => s.bytes),
        by,
      ) ||
        this.evictOldest(by))
    ) {
      // released the bytes of one stream of the key holding the most
    }
  }

  /** @internal A connection was closed by SSE polling. */
  notePolled(): void {
    this.polls += 1;
  }

  /** @internal `n` bytes of `by` were let go. */
  release(n: number, by: ResumableStream): void {
    this.bytes -= n;
    const session = this.bySession.get(by.holder);
    const key = this.byKey.get(by.keyId);
    if (session?.streams.has(by)) session.bytes -= n;
    if (key?.streams.has(by)) key.bytes -= n;
  }

  /** Bytes held for one key (tests, metrics). */
  heldBytesOf(keyId: string): number {
    return this.byKey.get(keyId)?.bytes ?? 0;
  }

  /** The key share with the most of `measure`. */
  private largestShare(measure: (share: Share) => number): Share | undefined {
    let largest: Share | undefined;
    for (const candidate of this.byKey.values())
      if (largest === undefined || measure(candidate) > measure(largest)) largest = candidate;
    return largest;
  }

  /** Drops the oldest stream of `share` other than `keep`: an ended one when there is one. */
  private evictFrom(share: Share | undefined, keep: ResumableStream | undefined): boolean {
    if (share === undefined) return false;
    let victim: ResumableStream | undefined;
    for (const stream of share.streams) {
      if (stream === keep) continue;
      if (stream.isEnded) {
        victim = stream;
        break;
      }
      victim ??= stream;
    }
    if (victim === undefined) return false;
    this.drop(victim);
    return true;
  }

  private evictOldest(keep: ResumableStream | undefined): boolean {
    for (const stream of this.streams.values()) {
      if (stream === keep) continue;
      this.drop(stream);
      return true;
    }
    return false;
  }

  private drop(stream: ResumableStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    const { abandoned } = stream.drop();
    leave(this.bySession, stream.holder, stream);
    leave(this.byKey, stream.keyId, stream);
    if (abandoned) stream.onAbandoned?.();
  }

  private startSweeper(): NodeJS.Timeout {
    const timer = setInterval(() => this.sweep(), Math.max(50, Math.min(5_000, Math.floor(this.windowMs / 4))));
    timer.unref();
    return timer;
  }
}

function share(shares: Map<string, Share>, name: string): Share {
  let found = shares.get(name);
  if (found === undefined) shares.set(name, (found = { streams: new Set(), bytes: 0 }));
  return found;
}

/** `stream` leaves the share `name` (after its bytes were released); an empty share is forgotten. */
function leave(shares: Map<string, Share>, name: string, stream: ResumableStream): void {
  const found = shares.get(name);
  if (found === undefined || !found.streams.delete(stream)) return;
  if (found.streams.size === 0) shares.delete(name);
}
