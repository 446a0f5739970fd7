import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../data-plane/src/upstream/http-channel.ts';

/** Feeds `chunks` to a parser and returns the events it dispatched, as [event, data]. */
function parse(chunks: readonly string[]): { events: [string, string][]; lastEventId: string | undefined } {
  const events: [string, string][] = [];
  const parser = new SseParser((event, data) => events.push([event, data]));
  for (const chunk of chunks) parser.push(chunk);
  return { events, lastEventId: parser.lastEventId };
}

describe("SSE parsing of a relayed request's answer stream", () => {
  test('events end at a blank line; data lines join with newlines; event and id fields are read', () => {
    const { events, lastEventId } = parse(['event: message\nid: 7\ndata: {"a":\ndata: 1}\n\n', 'data: second\n\n']);
    assert.deepEqual(events, [
      ['message', '{"a":\n1}'],
      ['', 'second'],
    ]);
    assert.equal(lastEventId, '7');
  });

  test('CRLF and CR line ends, a CRLF split across chunks, and a line split anywhere', () => {
    const { events } = parse(['data: one\r', '\n\r\ndata: t', 'wo\r\rda', 'ta: three\n', '\n']);
    assert.deepEqual(events, [
      ['', 'one'],
      ['', 'two'],
      ['', 'three'],
    ]);
  });

  test(`a comment dispatches nothing; an id-only (priming) event sets the last id and dispatches nothing; \
a bare \`data\` line is an empty event`, () => {
    const { events, lastEventId } = parse([': keep-alive\n\nid: 1\n\ndata\n\n']);
    assert.deepEqual(events, [['', '']]);
    assert.equal(lastEventId, '1');
  });
});
