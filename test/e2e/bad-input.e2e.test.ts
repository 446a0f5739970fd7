import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectLegacyAgent, firstText } from '../support/agents.ts';
import { postMcp, type DataPlaneProcess } from '../support/gateway.ts';
import { CREATE_UPSTREAM } from '../support/graphql.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

const MAX_BODY = 4096;

describe('bad input is refused clearly and breaks nothing', () => {
  let env: TestEnv;
  let node: DataPlaneProcess;
  let secret: string;

  before(async () => {
    env = await startTestEnv({
      nodes: [{ id: 'node-bad-input', args: ['--max-body-bytes', String(MAX_BODY)] }],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'k' }],
    });
    secret = env.key.secret;
    node = env.node('node-bad-input');
  });

  after(async () => {
    await env?.dispose();
  });

  const auth = () => ({ authorization: `Bearer ${secret}` });

  test('malformed JSON gets HTTP 400 with a JSON-RPC parse error', async () => {
    const response = await postMcp(node.mcpUrl, '{"jsonrpc": "2.0", "id": 1, "method": ', auth());
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, -32700);
  });

  test('a JSON body that is not a JSON-RPC message gets HTTP 400 with invalid request', async () => {
    const response = await postMcp(node.mcpUrl, { hello: 'world' }, auth());
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: number } };
    assert.equal(body.error.code, -32600);
  });

  test('a wrong content type gets HTTP 415', async () => {
    const response = await fetch(node.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', accept: 'application/json, text/event-stream', ...auth() },
      body: '{}',
    });
    assert.equal(response.status, 415);
    await response.body?.cancel();
  });

  test('a body over --max-body-bytes gets HTTP 413 naming the limit', async () => {
    const big = { jsonrpc: '2.0', id: 1, method: 'ping', params: { padding: 'x'.repeat(MAX_BODY * 2) } };
    const response = await postMcp(node.mcpUrl, big, auth());
    assert.equal(response.status, 413);
    assert.match(await response.text(), new RegExp(String(MAX_BODY)));
  });

  test('a duplicate upstream name is a CONFLICT naming the field', async () => {
    const result = await env.gql(CREATE_UPSTREAM, {
      input: { name: 'ev', transport: 'STDIO', command: 'node' },
    });
    assert.equal(result.errors?.[0]?.extensions?.code, 'CONFLICT');
    assert.match(result.errors?.[0]?.message ?? '', /name/);
  });

  test('an unknown enum value is refused by GraphQL validation', async () => {
    const result = await env.gql('mutation { createUpstream(input: {name: "x", transport: CARRIER_PIGEON}) { id } }');
    assert.equal(result.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.match(result.errors?.[0]?.message ?? '', /CARRIER_PIGEON/);
  });

  test(`an upstream whose command does not exist shows DOWN with the reason; the node and other upstreams carry \
on`, async () => {
    const created = await env.gqlOk<{ createUpstream: { id: string } }>(CREATE_UPSTREAM, {
      input: { name: 'ghost', transport: 'STDIO', command: '/nonexistent/portcullis-no-such-server' },
    });
    const query = 'query ($id: ID!) { upstream(id: $id) { status { nodeId state error } } }';
    let status: { nodeId: string; state: string; error: string | null } | undefined;
    await eventually('the node reports the ghost upstream as down', async () => {
      const data = await env.gqlOk<{ upstream: { status: NonNullable<typeof status>[] } }>(query, {
        id: created.createUpstream.id,
      });
      status = data.upstream.status.find((s) => s.nodeId === 'node-bad-input');
      return status?.state === 'DOWN';
    });
    assert.match(status?.error ?? '', /ENOENT|no such file/i);

    const health = await fetch(node.mcpUrl.replace('/mcp', '/healthz'));
    assert.equal(health.status, 200);
    const { client } = await connectLegacyAgent(node.mcpUrl, secret);
    try {
      await eventually('the good upstream is listed', async () =>
        (await client.listTools()).tools.some((t) => t.name === 'ev__echo'),
      );
      assert.equal(
        firstText(await client.callTool({ name: 'ev__echo', arguments: { message: 'still here' } })),
        'Echo: still here',
      );
    } finally {
      await client.close();
    }
  });
});
