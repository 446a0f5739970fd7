import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { DataPlaneMetrics } from '../../data-plane/src/observability/metrics.ts';
import { GatewayError } from '../../data-plane/src/pipeline/gateway-error.ts';
import { refused, type Operation, type Outcome, type Step } from '../../data-plane/src/pipeline/operation.ts';
import { insertBefore } from '../../data-plane/src/pipeline/pipeline.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, testKey, listenGateway } from '../support/mcp-server-harness.ts';
import { legacyAgent, modernAgent, sseAgent } from '../support/protocol-agents.ts';

const MAX_ARGUMENT_BYTES = 64;

/**
 * A capability added as one step, written here and nowhere else: calls whose arguments exceed
 * `maxBytes` of JSON are refused. It knows nothing of eras or transports; it records what it saw.
 */
function argumentSizeLimit(maxBytes: number, seen: Operation[]): Step {
  return {
    name: 'argument-size',
    run(operation, next) {
      seen.push(operation);
      if (operation.method !== 'tools/call') return next(operation);
      const bytes = Buffer.byteLength(JSON.stringify(operation.params['arguments'] ?? {}));
      if (bytes <= maxBytes) return next(operation);
      return Promise.resolve(
        refused(
          new GatewayError(
            RpcErrorCode.InvalidParams,
            `Arguments of ${String(operation.params['name'])} are ${bytes} bytes, more than the ${maxBytes} allowed`,
            { limit: maxBytes, bytes },
          ),
        ),
      );
    },
  };
}

/** What an agent (or a nested caller) got: the error code and message, or the result text. */
type Got = { code: unknown; message: string } | { text: string };

function fromError(error: unknown): Got {
  const { code, message } = error as { code?: unknown; message: string };
  // The SDK clients prefix the server's message ("MCP error -32602: …"); compare the server's own.
  return { code, message: message.replace(/^MCP error -?\d+: /, '') };
}

function fromResult(result: unknown): Got {
  const content = (result as { content?: { text?: string }[] }).content;
  return { text: content?.[0]?.text ?? '' };
}

test(`13 a step inserted into the pipeline, without editing any other module, applies identically to a 2025 agent, a \
2026-07-28 agent, a legacy SSE agent and a nested call`, async () => {
  const key = testKey('k1', ['everything__*']);
  const config = buildConfig([key]);
  const router = new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]);
  const metrics = new DataPlaneMetrics();
  const seen: Operation[] = [];
  const { gateway: server, url } = await listenGateway({
    getConfig: () => config,
    upstreams: router,
    metrics,
    steps: (defaults) => insertBefore(defaults, 'policy', argumentSizeLimit(MAX_ARGUMENT_BYTES, seen)),
  });
  const small = { text: 'hi' };
  const large = { text: 'x'.repeat(200) };
  try {
    const legacy = await legacyAgent(url, key.secret);
    const modern = await modernAgent(url, key.secret);
    const sse = await sseAgent(url, key.secret);
    const callers: ReadonlyArray<readonly [string, (args: Record<string, string>) => Promise<Got>]> = [
      [
        '2025 agent (SDK v1, Streamable HTTP)',
        (args) => legacy.client.callTool({ name: 'everything__echo', arguments: args }).then(fromResult, fromError),
      ],
      [
        '2026-07-28 agent (SDK v2, pinned)',
        (args) => modern.callTool({ name: 'everything__echo', arguments: args }).then(fromResult, fromError),
      ],
      [
        'legacy SSE agent (SDK v1, HTTP+SSE)',
        (args) => sse.client.callTool({ name: 'everything__echo', arguments: args }).then(fromResult, fromError),
      ],
      [
        'nested call (a script, straight into the pipeline)',
        async (args) => {
          const outcome: Outcome = await server.run({
            id: 'nested-1',
            method: 'tools/call',
            params: { name: 'everything__echo', arguments: args },
            principal: undefined,
            keyId: key.id,
            parentId: 'run_script-call-1',
            sessionKeys: config.sessionKeys,
            cancellation: signalCancellation(new AbortController().signal),
            receivedAt: performance.now(),
          });
          if (outcome.kind === 'error') return { code: outcome.error.code, message: outcome.error.message };
          assert.equal(outcome.kind, 'result');
          return fromResult(outcome.kind === 'result' ? outcome.result : undefined);
        },
      ],
    ];
    const refusal = {
      code: RpcErrorCode.InvalidParams,
      message:
        `Arguments of everything__echo are ${JSON.stringify(large).length} bytes, more than the ` +
        `${MAX_ARGUMENT_BYTES} allowed`,
    };
    for (const [who, call] of callers) {
      assert.deepEqual(await call(small), { text: 'Echo: hi' }, who);
      assert.deepEqual(await call(large), refusal, who);
    }
    // The refused calls never reached the upstream; the small ones did, once per caller.
    assert.equal(router.calls.length, callers.length);
    // The step saw every call, the nested one with its parent (and its principal, resolved by authenticate from its
    // key).
    const calls = seen.filter((operation) => operation.method === 'tools/call');
    assert.equal(calls.length, 2 * callers.length);
    assert.deepEqual(
      calls
        .filter((operation) => operation.parentId !== undefined)
        .map((operation) => [operation.parentId, operation.principal?.keyId]),
      [
        ['run_script-call-1', key.id],
        ['run_script-call-1', key.id],
      ],
    );
    // Record wraps the steps: it saw the four refusals too.
    const exposition = (await metrics.exposition()).body;
    assert.match(
      exposition,
      /portcullis_tool_call_duration_seconds_count\{upstream="everything",outcome="refused"\} 4/,
    );
    assert.match(exposition, /portcullis_tool_call_duration_seconds_count\{upstream="everything",outcome="ok"\} 4/);
    await legacy.client.close();
    await modern.close();
    await sse.client.close();
  } finally {
    await server.close();
  }
});
