import { sseEvents } from './sse-events.ts';

/**
 * A fetch for the SDK client transports that records what travels over the wire without changing
 * it: the `Last-Event-ID` of each GET (how a client resumes), the protocol versions it sends, and,
 * read beside the client from a copy of every SSE body, the progress notifications and `retry`
 * values the gateway sent.
 */
export interface SseWire {
  readonly fetch: (url: string | URL, init?: RequestInit) => Promise<Response>;
  /** `Last-Event-ID` of each GET, in order. */
  readonly resumes: string[];
  /** `MCP-Protocol-Version` of the requests that carried one. */
  readonly versions: Set<string>;
  /** `params.progress` of each progress notification on the wire, in order. */
  readonly progress: number[];
  /** The `retry` fields on the wire, in order. */
  readonly retries: number[];
}

export function sseWire(): SseWire {
  const wire: SseWire = {
    resumes: [],
    versions: new Set(),
    progress: [],
    retries: [],
    fetch: async (url, init) => {
      const headers = new Headers(init?.headers);
      const lastEventId = headers.get('last-event-id');
      if (init?.method === 'GET' && lastEventId !== null) wire.resumes.push(lastEventId);
      const version = headers.get('mcp-protocol-version');
      if (version !== null) wire.versions.add(version);
      const response = await fetch(url, init);
      if (response.headers.get('content-type') !== 'text/event-stream' || response.body === null) return response;
      const [mine, theirs] = response.body.tee();
      void record(mine, wire);
      return new Response(theirs, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    },
  };
  return wire;
}

/** The stream part (`<node>.<stream>`) of a gateway event id. */
export function streamOf(eventId: string): string {
  return eventId.slice(0, eventId.lastIndexOf('_'));
}

/** Reads one SSE body to its end (quietly when the connection is cut). */
async function record(body: ReadableStream<Uint8Array>, wire: SseWire): Promise<void> {
  try {
    for await (const event of sseEvents(body)) {
      if (event.retry !== undefined) wire.retries.push(event.retry);
      if (event.data === '') continue;
      const message = JSON.parse(event.data) as { method?: string; params?: { progress?: number } };
      if (message.method === 'notifications/progress') wire.progress.push(message.params?.progress ?? -1);
    }
  } catch {
    // the connection was cut (by the node's polling, or the client's close)
  }
}
