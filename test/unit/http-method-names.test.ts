import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmptyResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, postModern, startServer, testKey } from '../support/mcp-server-harness.ts';
import { legacyAgent, sseAgent } from '../support/protocol-agents.ts';

/** Method names that are members of every plain object: a lookup in an object literal finds them. */
const PROTOTYPE_NAMES = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'] as const;

async function refusedAsUnknown(request: Promise<unknown>, method: string, transport: string): Promise<void> {
  await assert.rejects(request, (error: unknown) => {
    assert.ok(error instanceof McpError, `${transport} ${method}: expected an McpError, got ${String(error)}`);
    assert.equal(error.code, RpcErrorCode.MethodNotFound, `${transport} ${method}: ${error.message}`);
    return true;
  });
}

test(`12.8 JSON-RPC methods named toString, constructor, __proto__ are unknown methods (-32601), never HTTP 500, on \
both eras and on /messages`, async () => {
  const key = testKey('k1', ['*']);
  const server = await startServer(
    new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]),
    buildConfig([key]),
  );
  try {
    const streamable = await legacyAgent(server.url, key.secret);
    const sse = await sseAgent(server.url, key.secret);
    for (const method of PROTOTYPE_NAMES) {
      await refusedAsUnknown(
        streamable.client.request({ method, params: {} }, EmptyResultSchema),
        method,
        '2025 Streamable HTTP',
      );
      await refusedAsUnknown(
        sse.client.request({ method, params: {} }, EmptyResultSchema),
        method,
        'legacy SSE /messages',
      );
      const modern = await postModern(server.url, key.secret, method, {});
      const body = modern.body as unknown as { error?: { code: number } };
      assert.notEqual(modern.status, 500, `2026-07-28 ${method}: HTTP 500`);
      assert.equal(body.error?.code, RpcErrorCode.MethodNotFound, `2026-07-28 ${method}: ${JSON.stringify(body)}`);
    }
    // The sessions still work: nothing was left broken by the refusals.
    assert.equal((await streamable.client.listTools()).tools[0]?.name, 'everything__echo');
    assert.equal((await sse.client.listTools()).tools[0]?.name, 'everything__echo');
    await streamable.client.close();
    await sse.client.close();
  } finally {
    await server.close();
  }
});

test('12: on 2026-07-28, tasks/list and tasks/result (removed from the revision) answer -32601', async () => {
  const key = testKey('k1', ['*']);
  const router = new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]);
  router.setCapabilities('everything', { tools: {}, tasks: { list: {}, requests: { tools: { call: {} } } } });
  const server = await startServer(router, buildConfig([key]));
  try {
    for (const method of ['tasks/list', 'tasks/result']) {
      const reply = await postModern(server.url, key.secret, method, method === 'tasks/result' ? { taskId: 'x' } : {});
      const body = reply.body as unknown as { error?: { code: number } };
      assert.equal(body.error?.code, RpcErrorCode.MethodNotFound, `${method}: ${JSON.stringify(body)}`);
      assert.equal(reply.status, 404, method);
    }
    // The 2025 era keeps both (the Tasks utility of 2025-11-25).
    const { client } = await legacyAgent(server.url, key.secret);
    await assert.rejects(
      client.request({ method: 'tasks/result', params: { taskId: 'not-a-task' } }, EmptyResultSchema),
      (error: unknown) => error instanceof McpError && error.code === RpcErrorCode.InvalidParams,
    );
    await client.close();
  } finally {
    await server.close();
  }
});
