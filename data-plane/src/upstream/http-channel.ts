import { StringDecoder } from 'node:string_decoder';
import {
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  type JSONRPCMessage,
  type SSEClientTransport,
  type StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { Pool, type Dispatcher } from 'undici';
import type { ChannelCall, RelayChannel } from './lean-relay.ts';
import { parseNdjson, type DeviationSink } from './upstream-deviations.ts';

/**
 * The lean relay's channels over HTTP.
 *
 * Streamable HTTP: each relayed request is its own keep-alive POST through an undici `Pool`
 * (its low-level `dispatch`), with the session id and protocol version the SDK's transport
 * negotiated and the upstream's configured headers. The SDK's transport goes through `fetch`,
 * which cost the node 1–2 ms of CPU per call here (a new Request, Headers and abort-signal
 * plumbing each time; its shared signal also warned on every request past ten concurrent);
 * `node:http`'s client costs about twice what `dispatch` does (0.09 against 0.05 ms of CPU per
 * request at one in flight, 0.044 against 0.024 at 32, measured side by side here). The answer may
 * be JSON or an SSE stream, as the transport allows: the response is taken by the relay; anything
 * else on the stream (progress, a notification, a server-to-client request) is handed to the
 * call, which gives the SDK's client what is not its own.
 *
 * Legacy HTTP+SSE: requests are POSTed through the SDK's transport (the answers come on its
 * event stream, where the relay takes them), so only the relay's bookkeeping is saved there.
 */

/**
 * Thrown when the upstream redirects a relayed POST: the connection goes back to the SDK's transport, which follows
 * redirects.
 */
export class RedirectedError extends Error {
  constructor(readonly status: number) {
    super(`the upstream redirected a relayed request (HTTP ${status})`);
    this.name = 'RedirectedError';
  }
}

export interface StreamableHttpChannelOptions {
  url: URL;
  /** The upstream's configured headers (credentials included), sent on every request. */
  headers: Readonly<Record<string, string>>;
  /** The connected SDK transport: its session id and protocol version, and the way notifications go. */
  transport: StreamableHTTPClientTransport;
  /** Told when an answer is NDJSON labelled application/json (read all the same). */
  onDeviation: DeviationSink;
}

/**
 * Errors of a connection that failed under a request before any answer: the server closed or
 * reset it (a kept-alive socket it had just closed on idle timeout or restart), or it was refused.
 */
const CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'UND_ERR_SOCKET']);

export class StreamableHttpChannel implements RelayChannel {
  private readonly transport: StreamableHTTPClientTransport;
  private readonly origin: string;
  private readonly path: string;
  /** The configured headers and what every POST carries, as undici's flat name/value list. */
  private readonly baseHeaders: readonly string[];
  private readonly pool: Pool;
  private readonly onDeviation: DeviationSink;

  constructor(options: StreamableHttpChannelOptions) {
    this.transport = options.transport;
    this.onDeviation = options.onDeviation;
    this.origin = options.url.origin;
    this.path = `${options.url.pathname}${options.url.search}`;
    this.baseHeaders = requestHeaders(options.headers);
    // No body or header timeout of undici's own: the relay times each call (and restarts the clock on progress).
    this.pool = new Pool(this.origin, { pipelining: 1, bodyTimeout: 0, headersTimeout: 0 });
  }

  send(call: ChannelCall): Promise<void> {
    return this.post(call, JSON.stringify(call.request), true);
  }

  /**
   * One POST. A kept-alive connection the server has just closed (idle timeout, restart) fails
   * before any answer; that request is sent once more, as Node's documentation advises for
   * `reusedSocket` resets (undici does not retry a POST itself). Such a failure almost always
   * means the server never read the request; one that read it and died at once refuses the new
   * connection, or, restarted, has forgotten the session (404). Only a stateless server restarted
   * within that instant could see the request twice.
   */
  private post(call: ChannelCall, body: string, mayRetry: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const headers = [...this.baseHeaders];
      const sessionId = this.transport.sessionId;
      if (sessionId !== undefined) headers.push('mcp-session-id', sessionId);
      const version = this.transport.protocolVersion;
      if (version !== undefined) headers.push('mcp-protocol-version', version);
      if (call.traceparent !== undefined) headers.push('traceparent', call.traceparent);
      const answer = new AnswerHandler(call, this.transport, this.onDeviation, resolve, (error, answered) => {
        if (!answered && mayRetry && isConnectionError(error)) this.post(call, body, false).then(resolve, reject);
        else reject(error);
      });
      this.pool.dispatch({ origin: this.origin, path: this.path, method: 'POST', headers, body }, answer);
    });
  }

  notify(message: JSONRPCMessage): Promise<void> {
    return this.transport.send(message);
  }

  close(): void {
    this.pool.destroy().catch(() => undefined);
  }
}

/**
 * Reads one POST's answer to its end: JSON, or an SSE stream whose messages are delivered as they
 * arrive. Settles once: resolved when the answer (or 202) came, failed when the request or the
 * answer failed (`answered` tells whether the upstream had begun to answer).
 */
class AnswerHandler implements Dispatcher.DispatchHandler {
  private status = 0;
  /** What the body is read as: JSON (or, with `failed`, an error's text), SSE events, or not at all. */
  private kind: 'json' | 'events' | 'ignored' = 'ignored';
  /** A non-2xx answer: its status text, for the error made from its body. */
  private failedWith: string | undefined;
  private readonly decoder = new StringDecoder('utf8');
  private text = '';
  private parser: SseParser | undefined;
  /** The call's own response arrived on the event stream. */
  private answered = false;
  private settled = false;
  private controller: Dispatcher.DispatchController | undefined;
  private abandoned = false;

  constructor(
    private readonly call: ChannelCall,
    private readonly transport: StreamableHTTPClientTransport,
    private readonly onDeviation: DeviationSink,
    private readonly resolve: () => void,
    private readonly reject: (error: Error, answered: boolean) => void,
  ) {
    call.abortStream = () => {
      this.abandoned = true;
      this.controller?.abort(abandonedError());
    };
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The relay gave up while the request still waited for a connection: it is not sent.
    if (this.abandoned) controller.abort(abandonedError());
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    this.status = status;
    if (status >= 300 && status < 400) return this.fail(new RedirectedError(status));
    if (status < 200 || status >= 300) {
      this.kind = 'json';
      this.failedWith = statusMessage ?? '';
      return;
    }
    // Accepted: the answer comes on the session's event stream, where the relay takes it.
    if (status === 202) return this.succeed();
    const contentType = headerValue(headers['content-type']);
    const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
    if (mediaType === 'application/json') this.kind = 'json';
    else if (mediaType === 'text/event-stream') {
      this.kind = 'events';
      this.parser = new SseParser((event, data) => this.onEvent(event, data));
    } else
      this.fail(
        new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, `Unexpected content type: ${contentType}`, {
          contentType,
        }),
      );
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.kind === 'ignored') return;
    const text = this.decoder.write(chunk);
    if (this.kind === 'events') this.parser!.push(text);
    else this.text += text;
  }

  onResponseEnd(): void {
    const rest = this.decoder.end();
    if (this.kind === 'json') this.endJson(this.text + rest);
    else if (this.kind === 'events') this.endEvents(rest);
    else this.succeed();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.kind === 'events' && this.answered) return this.succeed();
    this.fail(error);
  }

  private endJson(text: string): void {
    if (this.failedWith !== undefined)
      return this.fail(
        new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint: ${text}`, {
          status: this.status,
          statusText: this.failedWith,
          text,
        }),
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      parsed = parseNdjson(text);
      if (parsed === undefined)
        return this.fail(
          new SdkError(
            SdkErrorCode.ClientHttpUnexpectedContent,
            `the upstream answered with malformed JSON: ${String(error)}`,
          ),
        );
      this.onDeviation('ndjson_body');
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) this.call.deliver(message);
    this.succeed();
  }

  private endEvents(rest: string): void {
    const parser = this.parser!;
    if (rest !== '') parser.push(rest);
    if (this.answered) return this.succeed();
    const lastEventId = parser.lastEventId;
    // The server keeps its events (resumability): the SDK's transport resumes the stream, and the answer arrives
    // through it.
    if (lastEventId !== undefined)
      this.transport.resumeStream(lastEventId).then(
        () => this.succeed(),
        (error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))),
      );
    else
      this.fail(new SdkError(SdkErrorCode.ConnectionClosed, 'the upstream ended the response stream before answering'));
  }

  private onEvent(event: string, data: string): void {
    // An empty `data` is a priming event (SEP-1699), sent before every answer: nothing to parse (a
    // thrown and caught JSON.parse('') was about 7% of the node's CPU on an HTTP upstream).
    if ((event !== '' && event !== 'message') || data === '') return;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return; // the SDK's transport reports such an event and reads on; nothing here is waiting for it
    }
    if (isResponseTo(message, this.call.request.id)) this.answered = true;
    this.call.deliver(message);
  }

  private succeed(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve();
  }

  private fail(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(error, this.status !== 0);
  }
}

/** Legacy HTTP+SSE: requests are POSTed by the SDK's transport; answers arrive on its event stream. */
export class SseChannel implements RelayChannel {
  constructor(private readonly transport: SSEClientTransport) {}

  send(call: ChannelCall): Promise<void> {
    return this.transport.send(call.request as JSONRPCMessage);
  }

  notify(message: JSONRPCMessage): Promise<void> {
    return this.transport.send(message);
  }
}

/**
 * The configured headers, plus what a Streamable HTTP POST must carry (as the SDK's transport sets them), as a flat
 * name/value list.
 */
function requestHeaders(configured: Readonly<Record<string, string>>): string[] {
  const headers: string[] = [];
  let accept: string[] = [];
  for (const [name, value] of Object.entries(configured)) {
    const lower = name.toLowerCase();
    if (lower === 'accept') accept = value.split(',').map((s) => s.trim().toLowerCase());
    else if (lower !== 'content-type' && lower !== 'content-length') headers.push(lower, value);
  }
  headers.push('content-type', 'application/json');
  headers.push('accept', [...new Set([...accept, 'application/json', 'text/event-stream'])].join(', '));
  return headers;
}

function abandonedError(): SdkError {
  return new SdkError(SdkErrorCode.ConnectionClosed, 'the relay gave up on the request');
}

function headerValue(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

function isConnectionError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined && CONNECTION_ERRORS.has(code);
}

function isResponseTo(message: unknown, id: number): boolean {
  return (
    typeof message === 'object' && message !== null && !('method' in message) && (message as { id?: unknown }).id === id
  );
}

/**
 * Server-sent events as the HTML standard parses them: `event`, `data` (joined by newlines) and
 * `id` fields, an event dispatched at each blank line; comments and `retry` ignored.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  lastEventId: string | undefined;

  constructor(private readonly onEvent: (event: string, data: string) => void) {}

  push(text: string): void {
    this.buffer += text;
    const buffer = this.buffer;
    let start = 0;
    const lineEnd = /\r\n|\r|\n/g;
    for (let match = lineEnd.exec(buffer); match !== null; match = lineEnd.exec(buffer)) {
      // A lone CR at the end of what has arrived may be the first half of a CRLF: wait for more.
      if (match[0] === '\r' && match.index === buffer.length - 1) break;
      this.line(buffer.slice(start, match.index));
      start = match.index + match[0].length;
    }
    this.buffer = buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.onEvent(this.event, this.data.join('\n'));
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\u0000')) this.lastEventId = value;
  }
}
