import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Operation } from '../../data-plane/src/pipeline/operation.ts';
import { insertBefore } from '../../data-plane/src/pipeline/pipeline.ts';
import { mayBeConverted, mcpToolName, modelToolName } from '../../data-plane/src/rest/model-tool-names.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, testKey, listenGateway } from '../support/mcp-server-harness.ts';

const MODEL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

test('names a model API accepts are kept; others are converted to fit, distinctly, and map back', () => {
  assert.equal(modelToolName('github__create_issue'), 'github__create_issue');
  const dotted = 'fs__files.read';
  const slashed = 'fs__files/read';
  const long = `up__${'a'.repeat(80)}`;
  const converted = [dotted, slashed, long].map(modelToolName);
  for (const name of converted) {
    assert.match(name, MODEL_NAME);
    assert.ok(mayBeConverted(name));
  }
  assert.equal(new Set(converted).size, 3, 'names that differ only in a replaced character stay apart');
  assert.equal(modelToolName(dotted), converted[0], 'deterministic, so every node converts alike');
  const visible = ['github__create_issue', dotted, slashed, long];
  assert.deepEqual(
    converted.map((name) => mcpToolName(name, visible)),
    [dotted, slashed, long],
  );
  assert.equal(mcpToolName('github__create_issue', visible), 'github__create_issue');
  assert.equal(
    mcpToolName(converted[0]!, ['other__tool']),
    converted[0],
    'a name the caller cannot see maps to itself',
  );
});

test(`REST: a tool whose MCP name a model API would refuse is listed converted and callable by that name; calls enter \
the pipeline with their key and parent id`, async () => {
  const key = testKey('k1', ['fs__*']);
  const config = buildConfig([key]);
  const seen: Operation[] = [];
  const router = new MemoryToolRouter([
    { upstream: 'fs', name: 'files.read', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
  ]);
  const { gateway: server, url } = await listenGateway({
    getConfig: () => config,
    upstreams: router,
    steps: (defaults) =>
      insertBefore(defaults, 'policy', {
        name: 'spy',
        run: (operation, next) => {
          seen.push(operation);
          return next(operation);
        },
      }),
  });
  const base = url.origin;
  const auth = { authorization: `Bearer ${key.secret}` };
  try {
    const listed = (await (await fetch(`${base}/v1/mcp/tools?format=anthropic`, { headers: auth })).json()) as {
      tools: { name: string }[];
    };
    const name = listed.tools[0]!.name;
    assert.match(name, MODEL_NAME);
    assert.notEqual(name, 'fs__files.read');
    const response = await fetch(`${base}/v1/mcp/tool/execute?format=anthropic`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'tool_use', id: 'toolu_1', name, input: { text: 'via converted name' } }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      type: 'tool_result',
      tool_use_id: 'toolu_1',
      content: [{ type: 'text', text: 'Echo: via converted name' }],
    });
    // The MCP name works too, and the upstream saw its own name both times.
    const direct = await fetch(`${base}/v1/mcp/tool/execute`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'x-portcullis-parent-request': 'chatcmpl-42' },
      body: JSON.stringify({ name: 'fs__files.read', arguments: { text: 'direct' } }),
    });
    assert.equal(direct.status, 200);
    assert.equal(router.calls.length, 2);
    assert.deepEqual(
      seen.map((operation) => [operation.method, operation.principal?.keyId, operation.parentId]),
      [
        ['tools/list', key.id, undefined],
        ['tools/call', key.id, undefined],
        ['tools/call', key.id, 'chatcmpl-42'],
      ],
    );
  } finally {
    await server.close();
  }
});
