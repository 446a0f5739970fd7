import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseNdjson, tolerantFetch, type DeviationKind } from '../../data-plane/src/upstream/upstream-deviations.ts';

describe('upstream deviations: NDJSON labelled application/json', () => {
  test('parseNdjson reads several values one a line, and nothing else', () => {
    assert.deepEqual(parseNdjson('{"a":1}\n{"b":2}\n'), [{ a: 1 }, { b: 2 }]);
    assert.deepEqual(parseNdjson('{"a":1}\r\n\r\n{"b":2}'), [{ a: 1 }, { b: 2 }]);
    assert.equal(parseNdjson('{"a":1}'), undefined, 'one value is plain JSON');
    assert.equal(parseNdjson('{"a":1}\n{"b":'), undefined, 'a broken line is no NDJSON');
  });

  // A real server: one finished NDJSON body, and one that stays open after its first line (a listen stream).
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url === '/endless') {
      const chunk = `"${'x'.repeat(1024 * 1024)}`;
      for (let i = 0; i < 5; i += 1) res.write(chunk); // 5 MiB of one unfinished value, no newline
      return;
    }
    if (req.headers['mcp-method'] === 'subscriptions/listen') {
      res.write(
        '{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}\n{\n  "pretty": true\n}\n',
      );
      return; // never ends
    }
    res.end(
      req.url === '/ndjson'
        ? '{"jsonrpc":"2.0","method":"notifications/message","params":{}}\n{"jsonrpc":"2.0","id":1,"result":{}}\n'
        : '{"jsonrpc":"2.0","id":1,"result":{}}',
    );
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const seen: DeviationKind[] = [];
  const fetch = tolerantFetch((kind) => seen.push(kind));
  const url = async (path: string) => {
    if (!server.listening) await once(server.listen(0, '127.0.0.1'), 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  };

  test('a finished body: plain JSON as it is, NDJSON as the array of its messages (counted)', async () => {
    assert.deepEqual(await (await fetch(await url('/json'))).json(), { jsonrpc: '2.0', id: 1, result: {} });
    assert.deepEqual(seen, []);
    const messages = await (await fetch(await url('/ndjson'))).json();
    assert.deepEqual(messages, [
      { jsonrpc: '2.0', method: 'notifications/message', params: {} },
      { jsonrpc: '2.0', id: 1, result: {} },
    ]);
    assert.deepEqual(seen, ['ndjson_body']);
  });

  test('a listen answer that stays open: each value is an SSE event as soon as its line is complete', async () => {
    const abort = new AbortController();
    const response = await fetch(await url('/listen'), {
      headers: { 'mcp-method': 'subscriptions/listen' },
      signal: abort.signal,
    });
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('"pretty"')) text += (await reader.read()).value ?? '';
    assert.equal(
      text,
      'data: {"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}\n\ndata: ' +
        '{"pretty":true}\n\n',
    );
    abort.abort();
  });

  test('a listen answer that never completes a value is refused past 4 MiB instead of growing the node', async () => {
    const response = await fetch(await url('/endless'), { headers: { 'mcp-method': 'subscriptions/listen' } });
    await assert.rejects(response.text(), /without completing a JSON value/);
  });
});
