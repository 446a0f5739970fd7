import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { INITIALIZE, accepts, postMcp } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

const CREATE_CUSTOMER = `mutation ($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`;
const CREATE_TEAM = `mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id } }`;
const CREATE_KEY = `mutation ($input: CreateVirtualKeyInput!) {
  createVirtualKey(input: $input) { secret key { id rateLimits { toolCallsPerMinute burst } } } }`;

/** A 2025-era session on one node: initialize, then raw tools/call requests (to see status and headers). */
async function session(mcpUrl: string, secret: string) {
  const auth = { authorization: `Bearer ${secret}` };
  const init = await postMcp(mcpUrl, INITIALIZE, auth);
  assert.equal(init.status, 200);
  const sessionId = init.headers.get('mcp-session-id')!;
  await init.body?.cancel();
  const headers = { ...auth, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
  await (await postMcp(mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).body?.cancel();
  let id = 10;
  return async function call(): Promise<{ status: number; retryAfter: string | null; body: string }> {
    const response = await postMcp(
      mcpUrl,
      { jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name: 'ev__echo', arguments: { message: 'x' } } },
      headers,
    );
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.text() };
  };
}

describe('rate limits on two data-plane nodes, each enforcing its share', () => {
  let env: TestEnv;

  before(async () => {
    env = await startTestEnv({
      nodes: ['node-a', 'node-b'],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'unlimited' }],
    });
    // Limited keys must not spend tokens on calls made while the upstream is still connecting.
    for (const node of env.nodes) {
      const call = await session(node.mcpUrl, env.key.secret);
      await eventually(`ev__echo served on ${node.nodeId}`, async () => (await call()).body.includes('Echo: x'));
    }
  });

  after(async () => {
    await env?.dispose();
  });

  async function createKey(input: Record<string, unknown>): Promise<string> {
    const created = await env.gqlOk<{ createVirtualKey: { secret: string } }>(CREATE_KEY, { input });
    const secret = created.createVirtualKey.secret;
    for (const node of env.nodes) await eventually(`key on ${node.nodeId}`, () => accepts(node.mcpUrl, secret));
    return secret;
  }

  test(`a key's tool-call limit holds across both nodes: each admits half, then 429 with Retry-After \
naming the limit`, async () => {
    const secret = await createKey({ name: 'limited', rateLimits: { toolCallsPerMinute: 4 } });
    const results: Array<{ node: string; status: number; retryAfter: string | null; body: string }> = [];
    for (const node of env.nodes) {
      const call = await session(node.mcpUrl, secret);
      for (let i = 0; i < 4; i++) results.push({ node: node.nodeId, ...(await call()) });
    }
    const admitted = results.filter((r) => r.status === 200 && r.body.includes('Echo: x'));
    const refused = results.filter((r) => r.status === 429);
    assert.equal(admitted.length, 4, JSON.stringify(results, null, 1));
    for (const node of ['node-a', 'node-b'])
      assert.equal(admitted.filter((r) => r.node === node).length, 2, `${node} admits its share of 2`);
    assert.equal(refused.length, results.length - admitted.length);
    for (const refusal of refused) {
      const body = JSON.parse(refusal.body) as {
        error: { code: number; message: string; data: Record<string, unknown> };
      };
      assert.equal(body.error.code, -32049);
      assert.match(body.error.message, /the key "limited" may make 4 tool calls per minute; retry after \d+ s/);
      assert.deepEqual((body.error.data['limit'] as Record<string, unknown>)['scope'], 'key');
      const seconds = Number(refusal.retryAfter);
      assert.ok(seconds >= 1 && seconds <= 30, `Retry-After ${refusal.retryAfter}: one token per 30 s on each node`);
      assert.equal(body.error.data['retryAfterSeconds'], seconds);
    }
  });

  test("a customer's limit applies to every key of its teams, and the refusal names the customer", async () => {
    const customer = await env.gqlOk<{ createCustomer: { id: string } }>(CREATE_CUSTOMER, {
      input: { name: 'acme', rateLimits: { requestsPerMinute: 2 } },
    });
    const team = await env.gqlOk<{ createTeam: { id: string } }>(CREATE_TEAM, {
      input: { name: 'ops', customerId: customer.createCustomer.id },
    });
    // Two nodes: one request per node per 60 s (initialize is the gateway's own answer, not an operation).
    const secret = await createKey({ name: 'ops-agent', teamId: team.createTeam.id });
    const call = await session(env.nodes[0]!.mcpUrl, secret);
    const first = await call();
    assert.equal(first.status, 200, first.body);
    const refused = await call();
    assert.equal(refused.status, 429, refused.body);
    assert.match(refused.body, /the customer \\"acme\\" may make 2 requests per minute/);
  });

  test('absurd and negative limits are refused with extensions.code', async () => {
    for (const rateLimits of [{ requestsPerMinute: -5 }, { toolCallsPerMinute: 1e12 }, { burst: 1.5 }]) {
      const response = await env.gql(CREATE_KEY, { input: { name: 'bad', rateLimits } });
      assert.equal(response.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT', JSON.stringify(response.errors));
      assert.match(response.errors?.[0]?.message ?? '', /input\.rateLimits\./);
    }
  });
});
