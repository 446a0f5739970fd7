import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import {
  buildConfig,
  startServer,
  testKey,
  type RunningServer,
  type TestKey,
  initializeRequest,
} from '../support/mcp-server-harness.ts';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const LIST = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };

/** Opens `GET /sse` and reads the endpoint it names (`/messages?sessionId=…`); the stream stays open until `abort`. */
async function openSse(server: RunningServer, key: TestKey, abort: AbortController): Promise<string> {
  const response = await fetch(new URL('/sse', server.url), {
    headers: { authorization: `Bearer ${key.secret}`, accept: 'text/event-stream' },
    signal: abort.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the SSE stream ended before naming its endpoint: ${text}`);
    text += decoder.decode(value, { stream: true });
    const match = /event: endpoint\ndata: (\S+)\n\n/.exec(text);
    if (match) return match[1]!;
  }
}

async function postMessages(
  server: RunningServer,
  key: TestKey,
  endpoint: string,
  body: unknown,
): Promise<{ status: number; code: number | undefined }> {
  const response = await fetch(new URL(endpoint, server.url), {
    method: 'POST',
    headers: { ...JSON_HEADERS, authorization: `Bearer ${key.secret}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    code: text === '' ? undefined : (JSON.parse(text) as { error?: { code: number } }).error?.code,
  };
}

async function initialize(server: RunningServer, key: TestKey): Promise<string> {
  const init = initializeRequest('2025-06-18');
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, authorization: `Bearer ${key.secret}` },
    body: JSON.stringify(init),
  });
  assert.equal(response.status, 200);
  await response.text();
  return response.headers.get('mcp-session-id')!;
}

test(`13 one session guard: /messages refuses a session past its maximum age (404) exactly as /mcp refuses an expired \
Mcp-Session-Id`, async () => {
  const key = testKey('k1', ['*']);
  // Every session is past its maximum age as soon as it is issued.
  const server = await startServer(
    new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]),
    buildConfig([key]),
    { sessionMaxAgeMs: 1 },
  );
  const abort = new AbortController();
  try {
    const sessionId = await initialize(server, key);
    const mcp = await fetch(server.url, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${key.secret}`, 'mcp-session-id': sessionId },
      body: JSON.stringify(LIST),
    });
    assert.equal(mcp.status, 404);
    assert.equal(((await mcp.json()) as { error: { code: number } }).error.code, RpcErrorCode.SessionNotFound);

    const endpoint = await openSse(server, key, abort);
    assert.deepEqual(await postMessages(server, key, endpoint, LIST), {
      status: 404,
      code: RpcErrorCode.SessionNotFound,
    });
  } finally {
    abort.abort();
    await server.close();
  }
});

test(`13 one session guard: a token is used only on its own transport and by its own key, on /mcp and /messages \
alike`, async () => {
  const key = testKey('k1', ['*']);
  const other = testKey('k2', ['*']);
  const server = await startServer(
    new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]),
    buildConfig([key, other]),
  );
  const abort = new AbortController();
  try {
    const sessionId = await initialize(server, key);
    const endpoint = await openSse(server, key, abort);
    const streamToken = new URL(endpoint, server.url).searchParams.get('sessionId')!;
    // The stream's token is no Mcp-Session-Id, and an Mcp-Session-Id names no stream.
    const mcp = await fetch(server.url, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${key.secret}`, 'mcp-session-id': streamToken },
      body: JSON.stringify(LIST),
    });
    assert.equal(mcp.status, 404);
    await mcp.text();
    assert.deepEqual(await postMessages(server, key, `/messages?sessionId=${encodeURIComponent(sessionId)}`, LIST), {
      status: 404,
      code: RpcErrorCode.SessionNotFound,
    });
    // Another key cannot use the stream.
    assert.deepEqual(await postMessages(server, other, endpoint, LIST), {
      status: 404,
      code: RpcErrorCode.SessionNotFound,
    });
    // Its own key can.
    assert.equal((await postMessages(server, key, endpoint, LIST)).status, 202);
  } finally {
    abort.abort();
    await server.close();
  }
});
