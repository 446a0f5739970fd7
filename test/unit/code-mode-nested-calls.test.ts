import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SANDBOX_LIMITS, SandboxPool } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { DataPlaneMetrics } from '../../data-plane/src/observability/metrics.ts';
import { GatewayError } from '../../data-plane/src/pipeline/gateway-error.ts';
import { refused, type Operation, type Step } from '../../data-plane/src/pipeline/operation.ts';
import { insertBefore } from '../../data-plane/src/pipeline/pipeline.ts';
import { CodeMode } from '../../proto/gen/portcullis/v1/config.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, testKey, listenGateway } from '../support/mcp-server-harness.ts';
import { legacyAgent } from '../support/protocol-agents.ts';

const sandbox = new SandboxPool({
  workers: 1,
  limits: { ...DEFAULT_SANDBOX_LIMITS, timeMs: 5_000, maxToolCalls: 50 },
  maxQueued: 4,
});
after(() => sandbox.close());

/** A policy-like step: sees every operation, refuses calls whose arguments say `deny`. */
function denyStep(seen: Operation[]): Step {
  return {
    name: 'deny',
    run(operation, next) {
      seen.push(operation);
      const args = operation.params['arguments'] as Record<string, unknown> | undefined;
      if (operation.method === 'tools/call' && args?.['deny'] === true)
        return Promise.resolve(refused(GatewayError.invalidParams('Refused by policy: deny')));
      return next(operation);
    },
  };
}

test(`a script's tool calls go through the whole pipeline, as the script caller's key, with the run_script call as \
parent`, async () => {
  const key = testKey('k1', ['up__echo', 'up__add'], CodeMode.CODE_MODE_ON);
  const config = buildConfig([key]);
  const router = new MemoryToolRouter([
    { upstream: 'up', name: 'echo' },
    {
      upstream: 'up',
      name: 'add',
      handler: (args) => ({
        content: [{ type: 'text', text: String(Number(args?.['a']) + Number(args?.['b'])) }],
        structuredContent: { sum: Number(args?.['a']) + Number(args?.['b']) },
      }),
    },
    { upstream: 'up', name: 'secret' },
  ]);
  const seen: Operation[] = [];
  const metrics = new DataPlaneMetrics();
  const { gateway: server, url } = await listenGateway({
    getConfig: () => config,
    upstreams: router,
    metrics,
    sandbox,
    steps: (defaults) => insertBefore(defaults, 'policy', denyStep(seen)),
  });
  try {
    const { client } = await legacyAgent(url, key.secret);
    const listed = (await client.listTools()).tools.map((t) => t.name);
    assert.deepEqual(listed, ['search_tools', 'list_tool_files', 'read_tool_file', 'run_script']);
    // One page: a cursor is not one this key was given (classic pages would list the hidden tools).
    await assert.rejects(client.listTools({ cursor: 'cGMxOjE' }), /unknown cursor/);
    const result = (await client.callTool({
      name: 'run_script',
      arguments: {
        code: [
          'const e = await tools.up.echo({ text: "a" });',
          'const s = await tools.up.add({ a: 2, b: 3 });',
          'let denied; try { await tools.up.echo({ deny: true }); } catch (err) { denied = err.message; }',
          'let hidden; try { await tools.up.secret({}); } catch (err) { hidden = err.message; }',
          'return { e, s, denied, hidden };',
        ].join('\n'),
      },
    })) as { content: Array<{ text: string }>; isError?: boolean };
    assert.equal(result.isError, undefined, result.content[0]?.text);
    assert.deepEqual(JSON.parse(result.content[0]!.text), {
      e: 'Echo: a',
      s: { sum: 5 },
      denied: 'tools.up.echo: Refused by policy: deny',
      hidden: 'Tool tools.up.secret not found; find tools with search_tools',
    });
    // The step saw the three nested calls (the hidden tool never became one), each with the key's principal and one
    // parent.
    const nested = seen.filter((operation) => operation.parentId !== undefined);
    assert.deepEqual(
      nested.map((operation) => [operation.params['name'], operation.principal?.keyId]),
      [
        ['up__echo', 'k1'],
        ['up__add', 'k1'],
        ['up__echo', 'k1'],
      ],
    );
    assert.equal(new Set(nested.map((operation) => operation.parentId)).size, 1);
    // The run_script call itself was answered by code mode before the policy step; the upstream got the two allowed
    // calls.
    assert.equal(seen.filter((operation) => operation.params['name'] === 'run_script').length, 0);
    assert.equal(router.calls.length, 2);
    // record wraps nested calls too (one refused, two ok, plus the run_script call).
    const exposition = (await metrics.exposition()).body;
    assert.match(exposition, /portcullis_tool_call_duration_seconds_count\{upstream="up",outcome="ok"\} 2/);
    assert.match(exposition, /portcullis_tool_call_duration_seconds_count\{upstream="up",outcome="refused"\} 1/);

    // A script past its tool-call limit ends as a limit error; its worker is clean and kept (not replaced).
    const spawned = sandbox.spawned;
    const flood = (await client.callTool({
      name: 'run_script',
      arguments: { code: 'await Promise.all(Array.from({ length: 1000 }, () => tools.up.echo({ text: "x" })));' },
    })) as { content: Array<{ text: string }>; isError?: boolean };
    assert.equal(flood.isError, true);
    assert.equal(flood.content[0]!.text, 'limit error: the script made more than 50 tool calls');
    const after = (await client.callTool({ name: 'run_script', arguments: { code: 'return 7' } })) as {
      content: Array<{ text: string }>;
    };
    assert.equal(after.content[0]!.text, '7');
    assert.equal(sandbox.spawned, spawned, 'no worker was replaced');
    await client.close();
  } finally {
    await server.close();
  }
});
