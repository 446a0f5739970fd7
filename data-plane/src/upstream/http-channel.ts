import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SdkError, SdkErrorCode, SdkHttpError, type JSONRPCMessage, type SSEClientTransport, type StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { ChannelCall, RelayChannel } from './lean-relay.ts';

/**
 * The lean relay's channels over HTTP.
 *
 * Streamable HTTP: each relayed request is its own keep-alive `node:http` POST, with the session id
 * and protocol version the SDK's transport negotiated and the upstream's configured headers. The
 * SDK's transport goes through `fetch`, which cost the node 1–2 ms of CPU per call here (a new
 * Request, Headers and abort-signal plumbing each time; its shared signal also warned on every
 * request past ten concurrent); a plain keep-alive request costs a fraction of that. The answer
 * may be JSON or an SSE stream, as the transport allows: the response is taken by the relay;
 * anything else on the stream (progress, a notification, a server-to-client request) is handed to
 * the call, which gives the SDK's client what is not its own.
 *
 * Legacy HTTP+SSE: requests are POSTed through the SDK's transport (the answers come on its
 * event stream, where the relay takes them), so only the relay's bookkeeping is saved there.
 */

/** Thrown when the upstream redirects a relayed POST: the connection goes back to the SDK's transport, which follows redirects. */
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
}

export class StreamableHttpChannel implements RelayChannel {
  private readonly url: URL;
  private readonly transport: StreamableHTTPClientTransport;
  private readonly baseHeaders: OutgoingHttpHeaders;
  private readonly agent: HttpAgent;
  private readonly send_: typeof httpRequest;

  constructor(options: StreamableHttpChannelOptions) {
    this.url = options.url;
    this.transport = options.transport;
    const https = options.url.protocol === 'https:';
    this.agent = https ? new HttpsAgent({ keepAlive: true, scheduling: 'lifo' }) : new HttpAgent({ keepAlive: true, scheduling: 'lifo' });
    this.send_ = https ? httpsRequest : httpRequest;
    this.baseHeaders = requestHeaders(options.headers);
  }

  send(call: ChannelCall): Promise<void> {
    return this.post(call, JSON.stringify(call.request), true);
  }

  /**
   * One POST. A kept-alive socket the server has just closed (idle timeout, restart) fails before
   * any answer; that request is sent once more on a new connection, as Node's documentation
   * advises for `reusedSocket` resets. Such a reset almost always means the server never read the
   * request; one that read it and died at once refuses the new connection, or, restarted, has
   * forgotten the session (404). Only a stateless server restarted within that instant could see
   * the request twice.
   */
  private post(call: ChannelCall, body: string, mayRetry: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ...this.baseHeaders, 'content-length': Buffer.byteLength(body) };
      const sessionId = this.transport.sessionId;
      if (sessionId !== undefined) headers['mcp-session-id'] = sessionId;
      const version = this.transport.protocolVersion;
      if (version !== undefined) headers['mcp-protocol-version'] = version;
      let answered = false;
      // The second attempt takes a connection of its own: other pooled sockets may be just as dead.
      const req = this.send_(this.url, { method: 'POST', headers, agent: mayRetry ? this.agent : false }, (res) => {
        answered = true;
        this.onResponse(call, res).then(resolve, reject);
      });
      req.once('error', (error: NodeJS.ErrnoException) => {
        if (!answered && mayRetry && req.reusedSocket && error.code === 'ECONNRESET') this.post(call, body, false).then(resolve, reject);
        else reject(error);
      });
      call.abortStream = () => req.destroy();
      req.end(body);
    });
  }

  notify(message: JSONRPCMessage): Promise<void> {
    return this.transport.send(message);
  }

  close(): void {
    this.agent.destroy();
  }

  /** Reads one POST's answer to its end; rejects when it ends without one and cannot be resumed. */
  private async onResponse(call: ChannelCall, res: IncomingMessage): Promise<void> {
    const status = res.statusCode ?? 0;
    res.setEncoding('utf8');
    if (status >= 300 && status < 400) {
      res.resume();
      throw new RedirectedError(status);
    }
    if (status < 200 || status >= 300) {
      const text = await readText(res);
      throw new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint: ${text}`, { status, statusText: res.statusMessage ?? '', text });
    }
    if (status === 202) {
      res.resume();
      return; // accepted: the answer comes on the session's event stream, where the relay takes it
    }
    const mediaType = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType === 'application/json') {
      const text = await readText(res);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        throw new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, `the upstream answered with malformed JSON: ${String(error)}`);
      }
      for (const message of Array.isArray(parsed) ? parsed : [parsed]) call.deliver(message);
      return;
    }
    if (mediaType === 'text/event-stream') return this.readEvents(call, res);
    res.resume();
    throw new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, `Unexpected content type: ${String(res.headers['content-type'])}`, { contentType: res.headers['content-type'] });
  }

  private async readEvents(call: ChannelCall, res: IncomingMessage): Promise<void> {
    let answered = false;
    const parser = new SseParser((event, data) => {
      if (event !== '' && event !== 'message') return;
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        return; // the SDK's transport reports such an event and reads on; nothing here is waiting for it
      }
      if (isResponseTo(message, call.request.id)) answered = true;
      call.deliver(message);
    });
    try {
      for await (const chunk of res) parser.push(chunk as string);
    } catch (error) {
      if (answered) return;
      throw error;
    }
    if (answered) return;
    const lastEventId = parser.lastEventId;
    if (lastEventId !== undefined) {
      // The server keeps its events (resumability): the SDK's transport resumes the stream, and the answer arrives through it.
      await this.transport.resumeStream(lastEventId);
      return;
    }
    throw new SdkError(SdkErrorCode.ConnectionClosed, 'the upstream ended the response stream before answering');
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

/** The configured headers, plus what a Streamable HTTP POST must carry (as the SDK's transport sets them). */
function requestHeaders(configured: Readonly<Record<string, string>>): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  let accept: string[] = [];
  for (const [name, value] of Object.entries(configured)) {
    const lower = name.toLowerCase();
    if (lower === 'accept') accept = value.split(',').map((s) => s.trim().toLowerCase());
    else if (lower !== 'content-type' && lower !== 'content-length') headers[lower] = value;
  }
  headers['content-type'] = 'application/json';
  headers['accept'] = [...new Set([...accept, 'application/json', 'text/event-stream'])].join(', ');
  return headers;
}

function isResponseTo(message: unknown, id: number): boolean {
  return typeof message === 'object' && message !== null && !('method' in message) && (message as { id?: unknown }).id === id;
}

async function readText(res: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) text += chunk as string;
  return text;
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
