// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import type { DataPlaneServer } from '../../data-plane/src/http/server.ts';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { sessionKey, testKey, type TestKey, listenGateway, virtualKeyConfig } from '../support/mcp-server-harness.ts';
import { legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';
import { PoolHarness, httpUpstream, stdioUpstream } from '../support/upstream-pool-harness.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Issue 12, "Tool not found while an upstream restarts or a node starts": a call to a tool the node
 * knows, whose upstream is away (reconnecting, down, still connecting), is answered with a
 * retryable isError result, not `-32602 Tool … not found`; unknown and forbidden names still are.
 */

const key = testKey('k1', ['web__*', 'slow__*']);
const outsider = testKey('k2', ['slow__*']);
let fixture: SdkHttpFixture;
let harness: PoolHarness;
let server: DataPlaneServer;
let url: URL;

const upstreams = () => [
  // Pinged every 100 ms, DOWN at the first failure: the test sees the restart at once.
  httpUpstream('web', fixture.url, { healthIntervalMs: 100, healthFailureThreshold: 1 }),
  // Never answers initialize: connecting (then down, and connecting again), as an upstream can be for
  // seconds after a node starts. A short connect timeout: a pending connect outlives pool.close() by it.
  stdioUpstream('slow', process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { connectTimeoutMs: 3_000 }),
];

before(async () => {
  fixture = await SdkHttpFixture.start('sessionful-2025');
  const configs = upstreams();
  harness = PoolHarness.start(configs);
  const config = AppliedConfig.fromSnapshot({
    version: '1',
    upstreams: configs,
    virtualKeys: [key, outsider].map(virtualKeyConfig),
    sessionKeys: [sessionKey('s1')],
    executionPolicies: [],
  });
  ({ gateway: server, url } = await listenGateway({
    getConfig: () => config,
    upstreams: harness.pool,
  }));
  await harness.waitForState('web', UpstreamState.UPSTREAM_STATE_READY);
});

after(async () => {
  await server.close();
  await harness.close();
  await fixture.stop();
});

type Call = (name: string, args: Record<string, unknown>) => Promise<Record<string, unknown>>;

async function agents(k: TestKey): Promise<{ calls: ReadonlyArray<readonly [string, Call]>; close(): Promise<void> }> {
  const legacy = await legacyAgent(url, k.secret);
  const modern = await modernAgent(url, k.secret);
  return {
    calls: [
      [
        '2025 agent',
        async (name, args) => (await legacy.client.callTool({ name, arguments: args })) as Record<string, unknown>,
      ],
      [
        '2026-07-28 agent',
        async (name, args) => (await modern.callTool({ name, arguments: args })) as unknown as Record<string, unknown>,
      ],
    ],
    close: async () => {
      await legacy.client.close();
      await modern.close();
    },
  };
}

function assertUnavailable(result: Record<string, unknown>, upstream: string, who: string): void {
  assert.equal(result['isError'], true, `${who}: ${JSON.stringify(result)}`);
  assert.match(JSON.stringify(result['content']), /temporarily unavailable/, who);
  assert.deepEqual(
    (result['_meta'] as Record<string, unknown>)['dev.portcullis/error'],
    { reason: 'UPSTREAM_UNAVAILABLE', upstream, retryable: true },
    who,
  );
}

async function assertNotFound(call: Call, name: string, who: string): Promise<void> {
  await assert.rejects(call(name, {}), (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, RpcErrorCode.InvalidParams, `${who}: ${String(error)}`);
    assert.match(String((error as Error).message), new RegExp(`Tool ${name} not found`), who);
    return true;
  });
}

test(`12 tool not found while an upstream restarts: a known tool of an upstream that is away gets a retryable isError \
result on both eras; unknown and forbidden names stay -32602`, async () => {
  const mine = await agents(key);
  const theirs = await agents(outsider);
  try {
    for (const [who, call] of mine.calls)
      assert.equal(
        JSON.stringify((await call('web__echo', { message: 'up' }))['content']),
        JSON.stringify([{ type: 'text', text: 'echo: up' }]),
        who,
      );

    await fixture.stop();
    await eventually(
      'web is away',
      () =>
        harness.state('web') !== UpstreamState.UPSTREAM_STATE_READY &&
        harness.state('web') !== UpstreamState.UPSTREAM_STATE_DEGRADED,
    );
    for (const [who, call] of mine.calls) {
      assertUnavailable(await call('web__echo', { message: 'away' }), 'web', who);
      // The node knows what web offered: a name it never offered is still unknown.
      await assertNotFound(call, 'web__no_such_tool', who);
      // A node that has never seen an upstream's catalog (still connecting) answers for its prefix.
      assertUnavailable(await call('slow__anything', {}), 'slow', who);
    }
    // A key that may not use web learns nothing from web being away.
    for (const [who, call] of theirs.calls) await assertNotFound(call, 'web__echo', who);

    await fixture.restart();
    await harness.waitForState('web', UpstreamState.UPSTREAM_STATE_READY, 30_000);
    for (const [who, call] of mine.calls)
      assert.equal(
        JSON.stringify((await call('web__echo', { message: 'back' }))['content']),
        JSON.stringify([{ type: 'text', text: 'echo: back' }]),
        who,
      );
  } finally {
    await mine.close();
    await theirs.close();
  }
});
