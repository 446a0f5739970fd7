import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { RequestChannel } from '../mcp/dispatcher.ts';
import type { RpcId, RpcReply } from '../mcp/json-rpc.ts';
import type { ServerRequests } from '../mcp/server-requests.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import type { EventStore, ResumableStream } from './event-store.ts';
import { sendJson } from './respond.ts';

export const SSE_HEADERS: Readonly<OutgoingHttpHeaders> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
});

/** One SSE event carrying one JSON-RPC message. */
export function sseEvent(json: string): string {
  return `event: message\ndata: ${json}\n\n`;
}

export function notificationJson(method: string, params: Record<string, unknown> | undefined): string {
  return JSON.stringify(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
}

/**
 * Whether an `Accept` header ranks `text/event-stream` above `application/json`: by q-value, then
 * by order. (Both must be listed for a POST to be accepted at all.)
 */
function ranksEventStreamFirst(accept: string): boolean {
  let json: { q: number; at: number } | undefined;
  let sse: { q: number; at: number } | undefined;
  accept.split(',').forEach((range, at) => {
    const [type, ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (type === 'application/json' && json === undefined) json = { q, at };
    else if (type === 'text/event-stream' && sse === undefined) sse = { q, at };
  });
  if (json === undefined || sse === undefined) return sse !== undefined;
  return sse.q > json.q || (sse.q === json.q && sse.at < json.at);
}

/** Answers by `Accept` value: an agent sends the same one on every request. Bounded. */
const preferenceByAccept = new LRUCache<string, boolean>({ max: 64 });

/**
 * Whether an `Accept` header ranks `text/event-stream` above `application/json` (see
 * ranksEventStreamFirst), remembered per header value.
 */
export function prefersEventStream(accept: string): boolean {
  let prefers = preferenceByAccept.get(accept);
  if (prefers === undefined) {
    prefers = ranksEventStreamFirst(accept);
    preferenceByAccept.set(accept, prefers);
  }
  return prefers;
}

/** What a 2025-era session's POST response streams need to be resumable (see event-store.ts). */
export interface ResumableResponse {
  readonly store: EventStore;
  /** The session id: only this session may resume the stream. */
  readonly holder: string;
  /** The session's virtual key: the share of the store its streams count against. */
  readonly keyId: string;
  /** The request answered: named in the stream's event ids, so that any node can fail it when the stream is lost. */
  readonly requestId: RpcId;
  /** Send the priming event (id, empty data, retry) first: agents of 2025-11-25 and later. */
  readonly priming: boolean;
  /** Cancels the call when its dropped stream is given up (not resumed in time, evicted, session ended). */
  readonly abort: { cancel(reason: unknown): void };
}

const NOT_RESUMED = 'the agent did not resume the dropped stream in time';

/**
 * The answer to one POSTed request: plain JSON when nothing but the result is sent (the common
 * case, one write), switching to a `text/event-stream` response as soon as the upstream sends
 * something related first (progress, a log message, a server-to-client request), with the result
 * as the last event. The spec lets the server pick either per request. An agent that ranks the event
 * stream first in `Accept` gets its successful answers as a stream even when nothing precedes them.
 *
 * A 2025-era session's stream is resumable: its events carry ids and are recorded, and when the
 * connection drops the stream goes on (the call keeps running) for a GET with `Last-Event-ID` to
 * pick up. Nothing of this is set up for plain JSON answers.
 */
export class ResponseChannel implements RequestChannel {
  private streaming = false;
  private stream: ResumableStream | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: OutgoingHttpHeaders | undefined,
    /** Present for 2025-era agents, who can be asked on the response stream. */
    private readonly requests: ServerRequests | undefined,
    /** Answer a successful request as an event stream even when nothing else is sent on it. */
    private readonly preferStream = false,
    private readonly resumable: ResumableResponse | undefined = undefined,
  ) {}

  get canRequest(): boolean {
    return this.requests !== undefined;
  }

  /**
   * Whether the call should outlive its connection: its stream has ids the agent can resume from and
   * has not ended. A plain JSON answer (or a stream without ids) cannot be resumed.
   */
  get outlivesConnection(): boolean {
    return this.stream?.resumable === true;
  }

  notify(method: string, params: Record<string, unknown> | undefined): void {
    this.write(notificationJson(method, params));
  }

  request(message: RpcMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    if (this.requests === undefined) return Promise.reject(new Error('this agent cannot be asked'));
    return this.requests.send((json) => this.write(json), message, signal);
  }

  /** Sends the final answer: as JSON, or as the stream's last event. */
  finish(reply: RpcReply): void {
    const res = this.res;
    const stream = this.stream;
    if (stream === undefined && (res.writableEnded || res.destroyed)) return;
    if (!this.streaming && !(this.preferStream && reply.status === 200)) {
      const headers =
        reply.retryAfterSeconds === undefined
          ? this.headers
          : { ...this.headers, 'retry-after': String(reply.retryAfterSeconds) };
      sendJson(res, reply.status, reply.body, headers);
      return;
    }
    if (!this.streaming) {
      this.startStream();
      this.endStream(reply.body);
      return;
    }
    // Upstream clients may deliver a notification sent just before the result a tick after the
    // result resolved: one macrotask lets it land on the stream before the result closes it.
    setImmediate(() => this.endStream(reply.body));
  }

  private startStream(): void {
    this.streaming = true;
    this.res.writeHead(200, this.headers === undefined ? SSE_HEADERS : { ...this.headers, ...SSE_HEADERS });
    const resumable = this.resumable;
    if (resumable === undefined) return;
    const stream = (this.stream = resumable.store.create(resumable.holder, resumable.keyId, resumable.requestId));
    stream.onAbandoned = () => resumable.abort.cancel(NOT_RESUMED);
    stream.start(this.res, resumable.priming);
  }

  private endStream(json: string): void {
    const stream = this.stream;
    if (stream !== undefined) return stream.end(json);
    const res = this.res;
    if (!res.writableEnded && !res.destroyed) res.end(sseEvent(json));
  }

  private write(json: string): void {
    if (!this.streaming) {
      if (this.res.writableEnded || this.res.destroyed) return;
      this.startStream();
    }
    const stream = this.stream;
    if (stream !== undefined) return stream.send(json);
    const res = this.res;
    if (!res.writableEnded && !res.destroyed) res.write(sseEvent(json));
  }
}
