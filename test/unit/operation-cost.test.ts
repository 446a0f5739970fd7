import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import type { Operation, Step } from '../../data-plane/src/pipeline/operation.ts';
import { insertBefore } from '../../data-plane/src/pipeline/pipeline.ts';
import { REPORTED_COST_META_KEY } from '../../data-plane/src/policy/prices.ts';
import { Transport, UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { sessionKey, testKey, listenGateway, virtualKeyConfig } from '../support/mcp-server-harness.ts';
import { modernAgent } from '../support/protocol-agents.ts';

/** What `record` would see: the operations as they come back out of the other steps. */
function recorded(seen: Operation[]): Step {
  return {
    name: 'probe',
    async run(operation, next) {
      const outcome = await next(operation);
      seen.push(operation);
      return outcome;
    },
  };
}

test(`operation.costMicros: the tool price (or the upstream default) plus the cost the upstream \
reported in _meta`, async () => {
  const key = testKey('k1', ['*']);
  const upstream = UpstreamConfig.fromPartial({
    id: 'u1',
    name: 'shop',
    transport: Transport.TRANSPORT_STDIO,
    command: 'x',
  });
  const config = AppliedConfig.fromSnapshot({
    version: '1',
    upstreams: [upstream],
    virtualKeys: [virtualKeyConfig(key)],
    sessionKeys: [sessionKey('s1')],
    prices: [
      { upstreamId: 'u1', tool: '', priceMicros: 100 },
      { upstreamId: 'u1', tool: 'buy', priceMicros: 2_500 },
    ],
  });
  const router = new MemoryToolRouter([
    { upstream: 'shop', name: 'buy', handler: () => ({ content: [], _meta: { [REPORTED_COST_META_KEY]: 40 } }) },
    { upstream: 'shop', name: 'look', handler: () => ({ content: [{ type: 'text', text: 'ok' }] }) },
    { upstream: 'shop', name: 'bad', handler: () => ({ content: [], _meta: { [REPORTED_COST_META_KEY]: -5 } }) },
    { upstream: 'shop', name: 'away', available: false },
  ]);
  const seen: Operation[] = [];
  const { gateway: server, url } = await listenGateway({
    getConfig: () => config,
    upstreams: router,
    steps: (defaults) => insertBefore(defaults, 'authenticate', recorded(seen)),
  });
  try {
    const agent = await modernAgent(url, key.secret);
    const cost = async (name: string) => {
      seen.length = 0;
      await agent.callTool({ name, arguments: {} }).catch(() => undefined);
      return seen.find((operation) => operation.method === 'tools/call')?.costMicros;
    };
    assert.equal(await cost('shop__buy'), 2_540, 'its own price plus the reported 40');
    assert.equal(await cost('shop__look'), 100, "the upstream's default");
    assert.equal(await cost('shop__bad'), 100, 'a malformed reported cost is ignored');
    assert.equal(await cost('shop__away'), undefined, 'an unreachable upstream costs nothing');
    assert.equal(await cost('shop__nothing'), undefined, 'a refusal costs nothing');
    seen.length = 0;
    await agent.listTools();
    assert.equal(seen[0]?.costMicros, undefined, 'lists are free');
    await agent.close();
  } finally {
    server.server.closeAllConnections();
    server.server.close();
    await server.close?.();
  }
});
