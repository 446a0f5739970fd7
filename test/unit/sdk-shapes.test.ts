import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PROTOCOL_VERSION_META_KEY,
  RELATED_TASK_META_KEY,
  classifyInboundRequest,
  type InboundHttpRequest,
} from '@modelcontextprotocol/server';
import { CallToolRequestParamsSchema } from '@modelcontextprotocol/core';
import { classifyInbound, fastLegacyRequest } from '../../data-plane/src/mcp/inbound-classification.ts';
import { isPlainCallToolParams } from '../../data-plane/src/mcp/sdk-shapes.ts';

/** A valid 2026-07-28 envelope (what the SDK's modern client puts in `_meta`). */
const ENVELOPE = {
  [PROTOCOL_VERSION_META_KEY]: '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'agent', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

const ids: unknown[] = [
  1,
  0,
  -1,
  2_147_483_647,
  Number.MAX_SAFE_INTEGER,
  2 ** 53,
  -(2 ** 53),
  1.5,
  -0,
  'a',
  '',
  null,
  {},
  [],
  true,
];
const metas: unknown[] = [
  undefined,
  {},
  { progressToken: 7 },
  { progressToken: 'tok' },
  { progressToken: 1.5 },
  { progressToken: 2 ** 53 },
  { progressToken: null },
  { progressToken: {} },
  { other: 'x', 'io.modelcontextprotocol/other': 1 },
  { [RELATED_TASK_META_KEY]: { taskId: 't' } },
  { [RELATED_TASK_META_KEY]: { taskId: 1 } },
  { [RELATED_TASK_META_KEY]: 'x' },
  { [PROTOCOL_VERSION_META_KEY]: '2025-11-25' },
  { [PROTOCOL_VERSION_META_KEY]: 5 },
  ENVELOPE,
  { ...ENVELOPE, progressToken: 3 },
  { ...ENVELOPE, [PROTOCOL_VERSION_META_KEY]: '2026-13-99' },
  null,
  [],
  'meta',
];
const paramsVariants: unknown[] = [
  undefined,
  { name: 'echo', arguments: { message: 'hi' } },
  ...metas.map((meta) => ({ name: 'echo', arguments: {}, _meta: meta })),
  {},
  null,
  [],
  'params',
  3,
];

/** JSON-RPC bodies: the common requests with every id, method and params variant, and what else an agent may POST. */
function bodies(): unknown[] {
  const out: unknown[] = [];
  for (const method of [
    'tools/call',
    'tools/list',
    'ping',
    'initialize',
    'notifications/cancelled',
    '',
    7,
    undefined,
  ]) {
    for (const params of paramsVariants)
      out.push(params === undefined ? { jsonrpc: '2.0', id: 1, method } : { jsonrpc: '2.0', id: 1, method, params });
  }
  for (const id of ids) out.push({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo' } });
  for (const jsonrpc of ['1.0', 2, undefined, null]) out.push({ jsonrpc, id: 1, method: 'tools/call' });
  out.push(
    { id: 1, method: 'tools/call' },
    { jsonrpc: '2.0', method: 'tools/call' },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'x' } },
    { jsonrpc: '2.0', method: 'notifications/progress', params: { _meta: ENVELOPE } },
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'a', version: '1' } },
    },
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { _meta: ENVELOPE } },
    { jsonrpc: '2.0', id: 1, result: {} },
    { jsonrpc: '2.0', id: 1, result: { content: [] }, method: 'tools/call' },
    { jsonrpc: '2.0', id: 1, error: { code: -32600, message: 'x' } },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: undefined },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', extra: true },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', result: {} },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', error: { code: 1, message: 'x' } },
    JSON.parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","__proto__":{"x":1}}'),
    JSON.parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"__proto__":{"_meta":1}}}'),
    JSON.parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"__proto__":{"progressToken":{}}}}}'),
    [],
    [{ jsonrpc: '2.0', id: 1, method: 'tools/call' }],
    [
      { jsonrpc: '2.0', id: 1, method: 'tools/call' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
    ],
    [{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { _meta: ENVELOPE } }],
    [1],
    null,
    undefined,
    1,
    'tools/call',
    true,
    {},
  );
  return out;
}

function requests(): InboundHttpRequest[] {
  const out: InboundHttpRequest[] = [];
  const versions = [
    undefined,
    '2025-11-25',
    '2025-06-18',
    ' \t2025-03-26 ',
    '2026-07-28',
    ' 2026-07-28\t',
    '',
    'garbage',
    '9999-01-01',
  ];
  for (const body of bodies()) {
    for (const httpMethod of ['POST', 'post', 'GET']) {
      for (const protocolVersionHeader of versions) {
        for (const mcpMethodHeader of [undefined, 'tools/call', ' ping ']) {
          out.push({
            httpMethod,
            body,
            ...(protocolVersionHeader !== undefined && { protocolVersionHeader }),
            ...(mcpMethodHeader !== undefined && { mcpMethodHeader, mcpNameHeader: 'echo' }),
          });
        }
      }
    }
  }
  return out;
}

test(`the fast classification answers exactly what the SDK classifier answers, over a corpus of valid and invalid \
messages`, () => {
  const corpus = requests();
  let fast = 0;
  for (const request of corpus) {
    const expected = classifyInboundRequest(request);
    const short = fastLegacyRequest(request);
    if (short !== undefined) {
      fast++;
      assert.deepEqual(short, expected, JSON.stringify(request));
    }
    assert.deepEqual(classifyInbound(request), expected, JSON.stringify(request));
  }
  // The fast path must carry the common messages, and leave the SDK the rest (envelopes, notifications, batches...).
  assert.ok(fast > 500 && fast < corpus.length / 4, `fast path taken for ${fast} of ${corpus.length}`);
});

test(`a well-formed 2025-era tools/call, with or without a progress token, takes the fast path; unusual ones do \
not`, () => {
  const call = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } };
  assert.deepEqual(fastLegacyRequest({ httpMethod: 'POST', protocolVersionHeader: ' 2025-11-25', body: call }), {
    kind: 'legacy',
    reason: 'no-claim',
    requestedVersion: '2025-11-25',
  });
  assert.deepEqual(
    fastLegacyRequest({
      httpMethod: 'POST',
      body: { ...call, params: { ...call.params, _meta: { progressToken: 'p' } } },
    }),
    { kind: 'legacy', reason: 'no-claim' },
  );
  for (const unusual of [
    { ...call, id: 2 ** 53 },
    { ...call, params: { ...call.params, _meta: ENVELOPE } },
    { ...call, params: { ...call.params, _meta: { [RELATED_TASK_META_KEY]: { taskId: 't' } } } },
    { ...call, method: 'initialize' },
    { ...call, extra: 1 },
  ]) {
    assert.equal(fastLegacyRequest({ httpMethod: 'POST', body: unusual }), undefined, JSON.stringify(unusual));
  }
  assert.equal(fastLegacyRequest({ httpMethod: 'POST', protocolVersionHeader: '2026-07-28', body: call }), undefined);
});

test(`the tools/call params fast check accepts only params the SDK's CallToolRequestParamsSchema accepts, and the \
common ones`, () => {
  const corpus: unknown[] = [...paramsVariants];
  for (const name of ['echo', '', 7, null, undefined]) {
    for (const args of [undefined, {}, { message: 'x' }, [], null, 'x', JSON.parse('{"__proto__":{"a":1}}')]) {
      for (const task of [undefined, { ttl: 5 }, { ttl: 'x' }, null]) {
        for (const meta of metas) corpus.push({ name, arguments: args, task, _meta: meta, extra: 1 });
      }
    }
  }
  let fast = 0;
  for (const params of corpus) {
    if (!isPlainCallToolParams(params)) continue;
    fast++;
    assert.equal(CallToolRequestParamsSchema.safeParse(params).success, true, JSON.stringify(params));
  }
  assert.ok(fast > 30, `fast path taken for ${fast} of ${corpus.length}`);
  assert.equal(isPlainCallToolParams({ name: 'echo', arguments: { message: 'x' } }), true);
  assert.equal(isPlainCallToolParams({ name: 'echo', arguments: {}, _meta: { progressToken: 1 } }), true);
  assert.equal(
    isPlainCallToolParams({ name: 'echo', task: { ttl: 5 } }),
    false,
    'task-augmented calls go to the schema',
  );
});
