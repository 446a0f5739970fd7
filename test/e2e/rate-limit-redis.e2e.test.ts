import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectModernAgent } from '../support/agents.ts';
import { eventually } from '../support/eventually.ts';
import { INITIALIZE, accepts, postMcp, type DataPlaneProcess } from '../support/gateway.ts';
import { OwnRedis, SHARED_REDIS_URL, deleteRedisKeys, redisKeys, uniqueRedisPrefix } from '../support/redis.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';

const CREATE_KEY = `mutation ($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { secret } }`;
const PASSWORD = 'redis-secret-5d1e7c';

/** A 2025-era session on one node, making raw tools/call requests (to see the status and Retry-After). */
async function rawCaller(mcpUrl: string, secret: string) {
  const auth = { authorization: `Bearer ${secret}` };
  const init = await postMcp(mcpUrl, INITIALIZE, auth);
  assert.equal(init.status, 200);
  const headers = {
    ...auth,
    'mcp-session-id': init.headers.get('mcp-session-id')!,
    'mcp-protocol-version': '2025-11-25',
  };
  await init.body?.cancel();
  await (await postMcp(mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).body?.cancel();
  let id = 10;
  return async () => {
    const body = {
      jsonrpc: '2.0',
      id: id++,
      method: 'tools/call',
      params: { name: 'ev__echo', arguments: { message: 'x' } },
    };
    const response = await postMcp(mcpUrl, body, headers);
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.text() };
  };
}

/** The backend a node's /metrics says it counts rate limits in. */
async function backendOf(node: DataPlaneProcess): Promise<string | undefined> {
  const text = await (await fetch(node.metricsUrl!)).text();
  return /portcullis_rate_limit_backend\{backend="(redis|local)"\} 1/.exec(text)?.[1];
}

/** Calls one tool by an SDK agent: 'ok', or 'limited' for a rate-limit refusal (anything else fails the test). */
async function call(agent: Awaited<ReturnType<typeof connectModernAgent>>, limit: RegExp): Promise<'ok' | 'limited'> {
  try {
    const result = await agent.callTool({ name: 'ev__echo', arguments: { message: 'hi' } });
    assert.notEqual(result.isError, true, JSON.stringify(result));
    return 'ok';
  } catch (error) {
    const message = String((error as Error).message);
    assert.match(message, /Rate limit exceeded/, message);
    assert.match(message, limit, message);
    return 'limited';
  }
}

describe('exact global rate limits in Redis across data-plane nodes', () => {
  let env: TestEnv;
  let ownRedis: OwnRedis;
  const sharedPrefix = uniqueRedisPrefix('e2e-exact');
  const ownPrefix = uniqueRedisPrefix('e2e-outage');

  before(async () => {
    ownRedis = await OwnRedis.start(PASSWORD);
    const metrics = ['--metrics-listen', '127.0.0.1:0'];
    const shared = ['--rate-limit-redis', SHARED_REDIS_URL, '--rate-limit-redis-prefix', sharedPrefix];
    // A generous timeout: the counts of this test must not depend on the machine's load.
    const slowOk = ['--rate-limit-redis-timeout-ms', '2000'];
    env = await startTestEnv({
      nodes: [
        { id: 'node-a', args: [...metrics, ...shared, ...slowOk] },
        { id: 'node-b', args: [...metrics, ...shared, ...slowOk] },
        // The password comes through the environment, as --help advises.
        {
          id: 'node-c',
          args: [...metrics, '--rate-limit-redis-prefix', ownPrefix, ...slowOk],
          env: { PORTCULLIS_RATE_LIMIT_REDIS_URL: ownRedis.url },
        },
        {
          id: 'node-d',
          args: [...metrics, '--rate-limit-redis-prefix', ownPrefix, ...slowOk],
          env: { PORTCULLIS_RATE_LIMIT_REDIS_URL: ownRedis.url },
        },
      ],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'unlimited' }],
    });
    for (const node of env.nodes) {
      await eventually(`${node.nodeId} counts in Redis`, async () => (await backendOf(node)) === 'redis');
      const raw = await rawCaller(node.mcpUrl, env.key.secret);
      await eventually(`ev__echo served on ${node.nodeId}`, async () => (await raw()).body.includes('Echo: x'));
    }
  });

  after(async () => {
    await env?.dispose();
    await ownRedis?.kill();
    await deleteRedisKeys(SHARED_REDIS_URL, sharedPrefix);
  });

  async function createKey(name: string, rateLimits: Record<string, number>): Promise<string> {
    const created = await env.gqlOk<{ createVirtualKey: { secret: string } }>(CREATE_KEY, {
      input: { name, rateLimits },
    });
    const secret = created.createVirtualKey.secret;
    for (const node of env.nodes) await eventually(`key on ${node.nodeId}`, () => accepts(node.mcpUrl, secret));
    return secret;
  }

  test(`two nodes admit exactly the limit of 6 per minute in total under concurrent SDK agents, and refuse \
with 429 and Retry-After`, async () => {
    const secret = await createKey('exact', { toolCallsPerMinute: 6 });
    const nodes = [env.node('node-a'), env.node('node-b')];
    const agents = await Promise.all([0, 1, 2, 3].map((i) => connectModernAgent(nodes[i % 2]!.mcpUrl, secret)));
    try {
      // 4 agents x 5 concurrent calls; a token returns every 10 s, far longer than this burst takes.
      const outcomes = await Promise.all(
        agents.flatMap((agent) => [0, 1, 2, 3, 4].map(() => call(agent, /key \\?"exact\\?" may make 6 tool calls/))),
      );
      assert.equal(outcomes.filter((o) => o === 'ok').length, 6, `exactly 6 admitted of ${outcomes.length}`);
    } finally {
      await Promise.all(agents.map((agent) => agent.close()));
    }
    const refusal = await (await rawCaller(nodes[1]!.mcpUrl, secret))();
    assert.equal(refusal.status, 429, refusal.body);
    const seconds = Number(refusal.retryAfter);
    assert.ok(seconds >= 1 && seconds <= 10, `Retry-After ${refusal.retryAfter}: one token per 10 s for all nodes`);
    assert.equal((JSON.parse(refusal.body) as { error: { code: number } }).error.code, -32049);
    assert.deepEqual(await redisKeys(SHARED_REDIS_URL, sharedPrefix), [
      `${sharedPrefix}key:`.concat(await keyIdOf('exact'), ':toolCalls'),
    ]);
  });

  test('all traffic on one node still gets the whole limit (local shares would give it a quarter)', async () => {
    const secret = await createKey('one-node', { toolCallsPerMinute: 8 });
    const agent = await connectModernAgent(env.node('node-a').mcpUrl, secret);
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 16 }, () => call(agent, /key \\?"one-node\\?" may make 8 tool calls/)),
      );
      assert.equal(outcomes.filter((o) => o === 'ok').length, 8);
    } finally {
      await agent.close();
    }
  });

  test(`Redis killed mid-traffic: calls go on under each node's local share, /metrics says local, the switch is \
logged once without the password; Redis back: counted there again`, async () => {
    const nodes = [env.node('node-c'), env.node('node-d')];
    // 40 per minute on 4 live nodes: a local share of 10 per node.
    const secret = await createKey('outage', { toolCallsPerMinute: 40 });
    const limit = /key \\?"outage\\?" may make 40 tool calls per minute/;
    const agents = await Promise.all(nodes.map((node) => connectModernAgent(node.mcpUrl, secret)));
    try {
      for (const agent of agents) assert.equal(await call(agent, limit), 'ok');
      assert.equal((await redisKeys(ownRedis.url, ownPrefix)).length, 1, 'the bucket lives in Redis');
      let calls = 0;
      let killed = false;
      const afterKill = [0, 0];
      const traffic = agents.map(async (agent, i) => {
        for (;;) {
          const outcome = await call(agent, limit);
          calls++;
          if (killed && outcome === 'ok') afterKill[i]!++;
          // Until the node's local share is spent (the Redis bucket of 40 holds enough until the kill).
          if (killed && outcome === 'limited') return;
        }
      });
      await eventually('traffic under way', () => calls >= 6);
      await ownRedis.kill();
      killed = true;
      await Promise.all(traffic);
      for (const [i, node] of nodes.entries()) {
        assert.ok(
          afterKill[i]! >= 1 && afterKill[i]! <= 12,
          `${node.nodeId} admitted ${afterKill[i]} on its share of 10`,
        );
        assert.equal(await backendOf(node), 'local');
        const log = node.process.log;
        assert.equal(log.match(/fall back to local shares/g)?.length, 1, log);
        assert.ok(!log.includes(PASSWORD), 'the Redis password is never logged');
      }
      await ownRedis.start();
      for (const node of nodes)
        await eventually(`${node.nodeId} back on Redis`, async () => (await backendOf(node)) === 'redis');
      // Both local shares are spent: an admitted call is counted in the new (empty) Redis.
      for (const agent of agents) assert.equal(await call(agent, limit), 'ok');
      assert.equal((await redisKeys(ownRedis.url, ownPrefix)).length, 1, 'the bucket lives in Redis again');
    } finally {
      await Promise.all(agents.map((agent) => agent.close()));
    }
  });

  async function keyIdOf(name: string): Promise<string> {
    const { virtualKeys } = await env.gqlOk<{ virtualKeys: Array<{ id: string; name: string }> }>(
      '{ virtualKeys { id name } }',
    );
    return virtualKeys.find((key) => key.name === name)!.id;
  }
});
