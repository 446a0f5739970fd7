/** One server-sent event: its id and retry fields when it has them, and its data lines joined. */
export interface SseEvent {
  readonly id: string | undefined;
  readonly retry: number | undefined;
  /** '' when the event carried no data (a priming event, a bare retry). */
  readonly data: string;
}

/** The SSE events of a response body, as they come (ends with the body; a cut connection throws). */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  let buffer = '';
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const lines = buffer.slice(0, end).split('\n');
      buffer = buffer.slice(end + 2);
      const field = (name: string) =>
        lines
          .find((line) => line.startsWith(`${name}:`))
          ?.slice(name.length + 1)
          .trim();
      const retry = field('retry');
      yield {
        id: field('id'),
        retry: retry === undefined ? undefined : Number(retry),
        data: lines
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n'),
      };
    }
  }
}
