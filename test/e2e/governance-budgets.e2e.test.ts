import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectModernAgent } from '../support/agents.ts';
import { accepts, type DataPlaneProcess, eventually } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';

const PRICE = 1_000;
const BUDGET = 10 * PRICE;

const SET_BUDGET =
  `mutation ($input: SetBudgetInput!) { setBudget(input: $input) { id amountMicros remainingMicros ` + `} }`;
const BUDGETS = `{ budgets { id scope spentMicros grantedMicros remainingMicros } }`;

interface Budget {
  id: string;
  scope: string;
  spentMicros: number;
  grantedMicros: number;
  remainingMicros: number;
}

/** Four agents, spread over `nodes`, call until told their budget is spent for good. */
async function spendUntilRefused(
  env: TestEnv,
  nodes: readonly DataPlaneProcess[],
  secret: string,
): Promise<{ admitted: number; refusals: string[] }> {
  const refusals: string[] = [];
  let admitted = 0;
  const agents = [0, 1, 2, 3].map(async (i) => {
    const agent = await connectModernAgent(nodes[i % nodes.length]!.mcpUrl, secret);
    try {
      for (let attempt = 0; attempt < 400; attempt++) {
        try {
          const result = await agent.callTool({ name: 'ev__echo', arguments: { message: `a${i}` } });
          assert.notEqual(result.isError, true, JSON.stringify(result));
          admitted++;
        } catch (error) {
          const message = String((error as Error).message);
          refusals.push(message);
          assert.match(message, /-32050|Budget exceeded/, message);
          if (/is spent for this period/.test(message)) return;
          // A top-up of this node's lease is on its way: back off briefly, as Retry-After asks.
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      const state = JSON.stringify(await env.gql(BUDGETS));
      assert.fail(
        `${state} agent ${i} was never told the budget is spent: admitted ${admitted}, last ${refusals.at(-1)}`,
      );
    } finally {
      await agent.close();
    }
  });
  await Promise.all(agents);
  return { admitted, refusals };
}

/** Waits until `node` lists the upstream's tools to the key, so calls do not meet an upstream still connecting. */
async function upstreamReady(node: DataPlaneProcess, secret: string): Promise<void> {
  const agent = await connectModernAgent(node.mcpUrl, secret);
  await eventually(`ev__echo on ${node.nodeId}`, async () =>
    (await agent.listTools()).tools.some((tool) => tool.name === 'ev__echo'),
  );
  await agent.close();
}

describe('budgets with leases on two data-plane nodes under concurrent agents', () => {
  let env: TestEnv;

  before(async () => {
    env = await startTestEnv({
      nodes: ['node-a', 'node-b'],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'warm-up' }],
    });
    // Calls of the budgeted key must not meet an upstream still connecting.
    for (const node of env.nodes) await upstreamReady(node, env.key.secret);
  });

  after(async () => {
    await env?.dispose();
  });

  test('spending never exceeds the budget; calls go on while budget remains; refusals name the budget', async () => {
    const team = await env.gqlOk<{ createTeam: { id: string } }>(
      `mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id } }`,
      { input: { name: 'spenders' } },
    );
    const teamId = team.createTeam.id;
    await env.gqlOk(`mutation ($input: SetToolPriceInput!) { setToolPrice(input: $input) { priceMicros } }`, {
      input: { upstreamId: env.upstreams[0]!.id, priceMicros: PRICE },
    });
    await env.gqlOk(SET_BUDGET, { input: { scope: 'TEAM', ownerId: teamId, period: 'NONE', amountMicros: BUDGET } });
    const key = await env.createKey({ name: 'spender', teamId });
    for (const node of env.nodes) await eventually(`key on ${node.nodeId}`, () => accepts(node.mcpUrl, key.secret));

    const { admitted, refusals } = await spendUntilRefused(env, env.nodes, key.secret);
    assert.equal(admitted * PRICE, BUDGET, `admitted ${admitted} calls of ${PRICE}; refusals: ${refusals.slice(0, 3)}`);
    assert.ok(
      refusals.some((message) =>
        new RegExp(`the budget of the team \\\\?"${teamId}\\\\?" is spent for this period`).test(message),
      ),
      refusals.slice(0, 5).join('\n'),
    );
    let budget: Budget | undefined;
    await eventually('the nodes reported every spend', async () => {
      budget = (await env.gqlOk<{ budgets: Budget[] }>(BUDGETS)).budgets[0];
      return budget?.spentMicros === BUDGET;
    });
    assert.equal(budget?.remainingMicros, 0);
    assert.ok(budget!.grantedMicros <= BUDGET, `granted ${budget?.grantedMicros}`);
  });

  test('a node restarted under its own id does not spend again what its earlier process spent', async () => {
    const team = await env.gqlOk<{ createTeam: { id: string } }>(
      `mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id } }`,
      { input: { name: 'restarters' } },
    );
    const teamId = team.createTeam.id;
    const { setBudget } = await env.gqlOk<{ setBudget: { id: string } }>(SET_BUDGET, {
      input: { scope: 'TEAM', ownerId: teamId, period: 'NONE', amountMicros: BUDGET },
    });
    const key = await env.createKey({ name: 'restarter', teamId });
    const first = env.node('node-a');
    await eventually('the key on node-a', () => accepts(first.mcpUrl, key.secret));
    const agent = await connectModernAgent(first.mcpUrl, key.secret);
    for (let spent = 0; spent < 4; ) {
      // A lease smaller than four calls is topped up on the node's report: retry as Retry-After asks.
      const ok = await agent.callTool({ name: 'ev__echo', arguments: { message: `before ${spent}` } }).then(
        () => true,
        (error: Error) => (assert.match(error.message, /being topped up/), false),
      );
      if (ok) spent++;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await agent.close();
    await eventually('node-a reported what it spent', async () => {
      const { budgets } = await env.gqlOk<{ budgets: Budget[] }>(BUDGETS);
      return budgets.find((budget) => budget.id === setBudget.id)?.spentMicros === 4 * PRICE;
    });

    await first.stop();
    const again = await env.startNode('node-a');
    await eventually('the key on the restarted node-a', () => accepts(again.mcpUrl, key.secret));
    await upstreamReady(again, key.secret);
    const { admitted } = await spendUntilRefused(env, [again, env.node('node-b')], key.secret);
    assert.equal((4 + admitted) * PRICE, BUDGET, `4 calls before the restart, ${admitted} after`);
  });

  test('negative and absurd budgets and unknown owners are refused with extensions.code', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ scope: 'KEY', ownerId: env.key.id, period: 'DAY', amountMicros: -1 }, /amountMicros: must not be negative/],
      [{ scope: 'KEY', ownerId: env.key.id, period: 'DAY', amountMicros: 5e15 }, /amountMicros: is above/],
      [{ scope: 'KEY', ownerId: env.key.id, period: 'DAY', amountMicros: 1.5 }, /amountMicros: must be a whole number/],
      [
        { scope: 'TEAM', ownerId: '00000000-0000-4000-8000-000000000000', period: 'WEEK', amountMicros: 5 },
        /ownerId: no team has id/,
      ],
    ];
    for (const [input, message] of cases) {
      const response = await env.gql(SET_BUDGET, { input });
      assert.equal(response.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT', JSON.stringify(response.errors));
      assert.match(response.errors?.[0]?.message ?? '', message);
    }
  });
});
