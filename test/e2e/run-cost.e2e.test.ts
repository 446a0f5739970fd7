/**
 * Cost per agent run on real PostgreSQL: an application tags its tool calls (direct, and a code-mode
 * script's nested ones) with one parent id and reports its model cost beside them
 * (`x-portcullis-model-cost-micros` or `_meta["dev.portcullis/modelCostMicros"]`); the audit records
 * carry `modelCostMicros` and `runCost(parentId)` adds the run up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { eventually } from '../support/eventually.ts';
import { everythingUpstream, startTestEnv, type CreatedKey, type TestEnv } from '../support/test-env.ts';
import type { RunCost } from '../../control-plane/src/services/audit-queries.ts';

const RUN = 'run-7';
const ECHO_PRICE = 1_500;

describe('cost per agent run', () => {
  let env: TestEnv;
  let mcpUrl: string;
  let direct: CreatedKey;
  let scripted: CreatedKey;

  before(async () => {
    env = await startTestEnv({
      schemaPrefix: 'run_cost',
      nodes: ['cost-node'],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'direct' }, { name: 'scripted', codeMode: 'ON' }],
    });
    [direct, scripted] = env.keys as [CreatedKey, CreatedKey];
    mcpUrl = env.node('cost-node').mcpUrl;
    await env.gqlOk(`mutation ($input: SetToolPriceInput!) { setToolPrice(input: $input) { priceMicros } }`, {
      input: { upstreamId: env.upstreams[0]!.id, tool: 'echo', priceMicros: ECHO_PRICE },
    });
    await env.keysReachedNodes();
  });
  after(() => env?.dispose());

  async function agent(key: CreatedKey, headers: Record<string, string>): Promise<ClientV1> {
    const client = new ClientV1({ name: 'run-cost-agent', version: '1.0.0' });
    await client.connect(
      new TransportV1(new URL(mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${key.secret}`, ...headers } },
      }),
    );
    return client;
  }

  async function runCost(parentId: string): Promise<RunCost> {
    const data = await env.gqlOk<{ runCost: RunCost }>(
      `query ($p: String!) { runCost(parentId: $p) { parentId toolCostMicros modelCostMicros totalCostMicros calls
        errors } }`,
      { p: parentId },
    );
    return data.runCost;
  }

  it('adds up a run’s tool cost, model cost, calls and errors, nested script calls included', async () => {
    // The price reaches the node with the next snapshot: wait until an echo is priced.
    const probe = await agent(direct, { 'x-portcullis-parent-request': 'price-probe' });
    await eventually('the echo price reaches the node', async () => {
      await probe.callTool({ name: 'ev__echo', arguments: { message: 'probe' } });
      return (await runCost('price-probe')).toolCostMicros > 0;
    });
    await probe.close();

    const tagged = await agent(direct, { 'x-portcullis-parent-request': RUN });
    await tagged.callTool({ name: 'ev__echo', arguments: { message: 'one' } });
    await tagged.callTool({ name: 'ev__echo', arguments: { message: 'two' } });
    const failed = await tagged.callTool({ name: 'ev__get-sum', arguments: { a: 'not a number', b: 1 } });
    assert.equal(failed.isError, true);
    await tagged.close();

    const withModelCost = await agent(direct, {
      'x-portcullis-parent-request': RUN,
      'x-portcullis-model-cost-micros': '1000',
    });
    await withModelCost.callTool({ name: 'ev__get-sum', arguments: { a: 1, b: 2 } });
    await withModelCost.close();

    const viaMeta = await agent(direct, {});
    await viaMeta.callTool({
      name: 'ev__echo',
      arguments: { message: 'meta' },
      _meta: { 'io.portcullis/parent-request': RUN, 'dev.portcullis/modelCostMicros': 250 },
    });
    // A model cost on a request that names no run is not recorded.
    const untagged = await agent(direct, { 'x-portcullis-model-cost-micros': '999' });
    await untagged.callTool({ name: 'ev__get-sum', arguments: { a: 5, b: 5 } });
    await untagged.close();
    await viaMeta.close();

    const script = await agent(scripted, { 'x-portcullis-parent-request': RUN });
    const ran = await script.callTool({
      name: 'run_script',
      arguments: { code: 'await tools.ev.echo({ message: "s1" }); return await tools.ev.echo({ message: "s2" });' },
    });
    assert.notEqual(ran.isError, true, JSON.stringify(ran));
    await script.close();

    // 3 + 1 + 1 direct tool calls, run_script and its 2 nested echoes: 8 calls, 5 echoes priced, 1 error.
    let cost: RunCost | undefined;
    await eventually('every record of the run is stored', async () => {
      cost = await runCost(RUN);
      return cost.calls === 8;
    });
    assert.deepEqual(cost, {
      parentId: RUN,
      toolCostMicros: 5 * ECHO_PRICE,
      modelCostMicros: 1_250,
      totalCostMicros: 5 * ECHO_PRICE + 1_250,
      calls: 8,
      errors: 1,
    });

    const events = await env.gqlOk<{
      auditEvents: { edges: { node: { tool: string; modelCostMicros: number | null } }[] };
    }>(`{ auditEvents(filter: { parentId: "${RUN}" }) { edges { node { tool modelCostMicros } } } }`);
    const reported = events.auditEvents.edges.map((e) => e.node).filter((n) => n.modelCostMicros !== null);
    assert.deepEqual(reported.map((n) => [n.tool, n.modelCostMicros]).sort(), [
      ['ev__echo', 250],
      ['ev__get-sum', 1000],
    ]);
    const [outside] = await env.schema.query<{ model_cost_micros: string | null }>(
      `SELECT model_cost_micros FROM audit_events WHERE tool = 'ev__get-sum' AND parent_id IS NULL`,
    );
    assert.equal(outside?.model_cost_micros, null);
    assert.deepEqual(await runCost('no-such-run'), {
      parentId: 'no-such-run',
      toolCostMicros: 0,
      modelCostMicros: 0,
      totalCostMicros: 0,
      calls: 0,
      errors: 0,
    });
    const bad = await env.gql(`{ runCost(parentId: "  ") { calls } }`);
    assert.equal(bad.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT');
  });
});
