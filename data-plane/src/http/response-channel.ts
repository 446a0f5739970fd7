import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestChannel } from '../mcp/dispatcher.ts';
import type { RpcReply } from '../mcp/json-rpc.ts';
import type { ServerRequests } from '../mcp/server-requests.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
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
export function prefersEventStream(accept: string): boolean {
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

/**
 * The answer to one POSTed request: plain JSON when nothing but the result is sent (the common
 * case, one write), switching to a `text/event-stream` response as soon as the upstream sends
 * something related first (progress, a log message, a server-to-client request), with the result
 * as the last event. The spec lets the server pick either per request. An agent that ranks the event
 * stream first in `Accept` gets its successful answers as a stream even when nothing precedes them.
 */
export class ResponseChannel implements RequestChannel {
  private streaming = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: OutgoingHttpHeaders | undefined,
    /** Present for 2025-era agents, who can be asked on the response stream. */
    private readonly requests: ServerRequests | undefined,
    /** Answer a successful request as an event stream even when nothing else is sent on it. */
    private readonly preferStream = false,
  ) {}

  get canRequest(): boolean {
    return this.requests !== undefined;
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
    if (res.writableEnded || res.destroyed) return;
    if (!this.streaming && !(this.preferStream && reply.status === 200)) {
      sendJson(res, reply.status, reply.body, this.headers);
      return;
    }
    if (!this.streaming) {
      this.startStream();
      res.end(sseEvent(reply.body));
      return;
    }
    // Upstream clients may deliver a notification sent just before the result a tick after the
    // result resolved: one macrotask lets it land on the stream before the result closes it.
    setImmediate(() => {
      if (!res.writableEnded && !res.destroyed) res.end(sseEvent(reply.body));
    });
  }

  private startStream(): void {
    this.streaming = true;
    this.res.writeHead(200, this.headers === undefined ? SSE_HEADERS : { ...this.headers, ...SSE_HEADERS });
  }

  private write(json: string): void {
    const res = this.res;
    if (res.writableEnded || res.destroyed) return;
    if (!this.streaming) this.startStream();
    res.write(sseEvent(json));
  }
}
