import {
  isJsonContentType,
  type Client,
  type FetchLike,
  type JSONRPCMessage,
  type MessageExtraInfo,
} from '@modelcontextprotocol/client';

/**
 * What an upstream may do against the spec that the gateway still carries (issue 12, "Upstreams
 * the project did not write"). Each is relayed as a model can use it, logged once per upstream and
 * counted (`portcullis_upstream_deviations_total{upstream,kind}`), instead of failing the request:
 * - `missing_result_type`: a 2026-07-28 result without `resultType`. The SDK client rejects it
 *   ("servers implementing protocol revision 2026-07-28 MUST include it"); the gateway reads it as
 *   `complete`, which is what a result without it means in every earlier revision.
 * - `ndjson_body`: several newline-delimited JSON-RPC messages in a body labelled
 *   `application/json`. The SDK reads such a body with `response.json()`, which fails on a finished
 *   body and, on a `subscriptions/listen` stream that never ends, never returns.
 */
export type DeviationKind = 'missing_result_type' | 'ndjson_body';

export type DeviationSink = (kind: DeviationKind) => void;

/**
 * Puts a check in front of a connected 2026-07-28 client's transport: a result without
 * `resultType` reaches the SDK as a `complete` one. A no-op on a 2025-era connection (whose
 * results never carry it).
 */
export function tolerateMissingResultType(client: Client, report: DeviationSink): void {
  const transport = client.transport;
  if (client.getProtocolEra() !== 'modern' || !transport) return;
  const sdkOnMessage = transport.onmessage;
  transport.onmessage = ((message: JSONRPCMessage, extra?: MessageExtraInfo) => {
    const result = (message as { result?: unknown }).result;
    if (typeof result === 'object' && result !== null && !Array.isArray(result) && !('resultType' in result)) {
      report('missing_result_type');
      sdkOnMessage?.({ ...message, result: { ...result, resultType: 'complete' } } as JSONRPCMessage, extra);
      return;
    }
    sdkOnMessage?.(message, extra);
  }) as typeof transport.onmessage;
}

/**
 * The messages of a body that is not one JSON value but several, one a line (NDJSON); undefined
 * when it is not that either.
 */
export function parseNdjson(text: string): unknown[] | undefined {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  if (lines.length < 2) return undefined;
  try {
    return lines.map((line) => JSON.parse(line) as unknown);
  } catch {
    return undefined;
  }
}

/**
 * A `fetch` for the SDK's Streamable HTTP transport that reads NDJSON labelled `application/json`:
 * a finished body is parsed line by line when it is not one JSON value (the SDK takes an array of
 * messages); a `subscriptions/listen` answer, which stays open, is handed on as the event stream
 * the spec asks for, one event a line, so its acknowledgement is read when it arrives.
 */
export function tolerantFetch(report: DeviationSink, inner: FetchLike = fetch): FetchLike {
  return async (url, init) => {
    const response = await inner(url, init);
    if (!response.ok || response.body === null || !isJsonContentType(response.headers.get('content-type')))
      return response;
    if (new Headers(init?.headers).get('mcp-method') === 'subscriptions/listen') return asEventStream(response, report);
    const text = response.text.bind(response);
    Object.defineProperty(response, 'json', {
      value: async (): Promise<unknown> => {
        const body = await text();
        try {
          return JSON.parse(body) as unknown;
        } catch (error) {
          const messages = parseNdjson(body);
          if (messages === undefined) throw error;
          report('ndjson_body');
          return messages;
        }
      },
    });
    return response;
  };
}

/** The most of one unfinished value a listen stream may hold (an upstream's endless line must not grow the node). */
const MAX_PENDING_CHARS = 4 * 1024 * 1024;

/** An `application/json` body read as it arrives: each complete JSON value becomes one SSE event. */
function asEventStream(response: Response, report: DeviationSink): Response {
  let buffered = '';
  let messages = 0;
  const encoder = new TextEncoder();
  const emit = (value: unknown, controller: TransformStreamDefaultController<Uint8Array>) => {
    messages += 1;
    if (messages === 2) report('ndjson_body');
    controller.enqueue(encoder.encode(`data: ${JSON.stringify(value)}\n\n`));
  };
  const events = new TransformStream<string, Uint8Array>({
    transform(chunk, controller) {
      buffered += chunk;
      if (buffered.length > MAX_PENDING_CHARS) {
        controller.error(
          new Error(`the upstream sent more than ${MAX_PENDING_CHARS} characters without completing a JSON value`),
        );
        return;
      }
      // A value may span lines (pretty-printed JSON): a line that does not complete one waits for more.
      for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n', end + 1)) {
        const candidate = buffered.slice(0, end);
        if (candidate.trim() === '') {
          buffered = buffered.slice(end + 1);
          end = -1;
          continue;
        }
        const value = parseOrUndefined(candidate);
        if (value === undefined) continue;
        emit(value, controller);
        buffered = buffered.slice(end + 1);
        end = -1;
      }
    },
    flush(controller) {
      const value = buffered.trim() === '' ? undefined : parseOrUndefined(buffered);
      if (value !== undefined) emit(value, controller);
    },
  });
  const headers = new Headers(response.headers);
  headers.set('content-type', 'text/event-stream');
  const body = (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).pipeThrough(events);
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
