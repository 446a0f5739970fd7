import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectModernAgent } from '../support/agents.ts';
import { accepts } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

const CREATE_CUSTOMER = `mutation ($input: CreateCustomerInput!) { createCustomer(input: $input) { id name } }`;
const CREATE_TEAM =
  `mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id customer { id name } ` + `deniedTools } }`;
const UPDATE_TEAM =
  `mutation ($id: ID!, $input: UpdateTeamInput!) { updateTeam(id: $id, input: $input) { id ` + `deniedTools } }`;
const CREATE_KEY = `mutation ($input: CreateVirtualKeyInput!) {
  createVirtualKey(input: $input) { secret key { id team { id customer { name } } deniedTools expiresAt enabled } } }`;
const UPDATE_KEY =
  `mutation ($id: ID!, $input: UpdateVirtualKeyInput!) { updateVirtualKey(id: $id, input: $input) ` +
  `{ id expiresAt } }`;
const ROTATE = `mutation ($id: ID!, $grace: Int) { rotateVirtualKey(id: $id, gracePeriodSeconds: $grace) {
  secret key { id rotatedAt previousSecretExpiresAt } } }`;
const SET_ENABLED =
  `mutation ($id: ID!, $enabled: Boolean!) { setVirtualKeyEnabled(id: $id, enabled: $enabled) { ` + `id enabled } }`;

interface Created {
  createVirtualKey: { secret: string; key: { id: string } };
}

/** The error a call is refused with, its name replaced by "NAME" (to compare refusals of different names). */
async function refusal(mcpUrl: string, secret: string, name: string): Promise<string> {
  const agent = await connectModernAgent(mcpUrl, secret);
  try {
    await agent.callTool({ name, arguments: { message: 'hi' } });
  } catch (error) {
    return String((error as Error).message).replaceAll(name, 'NAME');
  } finally {
    await agent.close();
  }
  return 'not refused';
}

async function toolNames(mcpUrl: string, secret: string): Promise<string[]> {
  const agent = await connectModernAgent(mcpUrl, secret);
  try {
    return (await agent.listTools()).tools.map((tool) => tool.name).sort();
  } finally {
    await agent.close();
  }
}

describe('identities: customer → team → key, access lists, key lifecycle, on a real node', () => {
  let env: TestEnv;
  let mcpUrl: string;
  let teamId: string;
  let customerId: string;

  before(async () => {
    env = await startTestEnv({ nodes: ['node-a'], upstreams: [everythingUpstream('ev')] });
    mcpUrl = env.node('node-a').mcpUrl;
    const customer = await env.gqlOk<{ createCustomer: { id: string } }>(CREATE_CUSTOMER, { input: { name: 'acme' } });
    customerId = customer.createCustomer.id;
    const team = await env.gqlOk<{ createTeam: { id: string; customer: { id: string } } }>(CREATE_TEAM, {
      input: { name: 'payments', customerId, allowedTools: ['ev__*'], deniedTools: ['ev__get-sum'] },
    });
    assert.equal(team.createTeam.customer.id, customerId);
    teamId = team.createTeam.id;
  });

  after(async () => {
    await env?.dispose();
  });

  async function createKey(input: Record<string, unknown>): Promise<{ id: string; secret: string }> {
    const created = await env.gqlOk<Created>(CREATE_KEY, { input: { teamId, ...input } });
    const key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually('the key reached the node', () => accepts(mcpUrl, key.secret));
    return key;
  }

  test(`what the key or its team denies is hidden from lists and refused exactly as a tool that \
does not exist`, async () => {
    const key = await createKey({ name: 'agent', deniedTools: ['ev__echo'] });
    let names: string[] = [];
    await eventually('the upstream listed', async () => {
      names = await toolNames(mcpUrl, key.secret);
      return names.length > 0;
    });
    assert.ok(!names.includes('ev__echo'), 'denied by the key');
    assert.ok(!names.includes('ev__get-sum'), 'denied by the team');
    assert.ok(names.includes('ev__get-env'), `allowed by both: ${names.join(', ')}`);
    const hidden = await refusal(mcpUrl, key.secret, 'ev__echo');
    const teamHidden = await refusal(mcpUrl, key.secret, 'ev__get-sum');
    const missing = await refusal(mcpUrl, key.secret, 'ev__no-such-tool');
    assert.match(missing, /NAME not found/);
    assert.equal(hidden, missing);
    assert.equal(teamHidden, missing);
  });

  test("a change of the team's lists reaches the node's keys of that team", async () => {
    const key = await createKey({ name: 'agent-2' });
    await eventually('listed', async () => (await toolNames(mcpUrl, key.secret)).includes('ev__echo'));
    await env.gqlOk(UPDATE_TEAM, { id: teamId, input: { deniedTools: ['ev__echo', 'ev__get-sum'] } });
    await eventually(
      'the team now hides ev__echo',
      async () => !(await toolNames(mcpUrl, key.secret)).includes('ev__echo'),
    );
    await env.gqlOk(UPDATE_TEAM, { id: teamId, input: { deniedTools: ['ev__get-sum'] } });
  });

  test('a rotated key: the new secret works at once, the old one until its grace period ends', async () => {
    const key = await createKey({ name: 'rotating' });
    const rotated = await env.gqlOk<{
      rotateVirtualKey: { secret: string; key: { previousSecretExpiresAt: string } };
    }>(ROTATE, { id: key.id, grace: 3 });
    const fresh = rotated.rotateVirtualKey.secret;
    assert.notEqual(fresh, key.secret);
    await eventually('the new secret reached the node', () => accepts(mcpUrl, fresh));
    const graceEnds = Date.parse(rotated.rotateVirtualKey.key.previousSecretExpiresAt);
    if (Date.now() < graceEnds - 500) assert.equal(await accepts(mcpUrl, key.secret), true, 'the old secret in grace');
    await eventually(
      'the old secret stopped after the grace period',
      async () => !(await accepts(mcpUrl, key.secret)),
      10_000,
    );
    assert.ok(Date.now() >= graceEnds, 'not refused before the grace period ended');
    assert.equal(await accepts(mcpUrl, fresh), true);
    // Without a grace period the old secret stops with the revision.
    const again = await env.gqlOk<{ rotateVirtualKey: { secret: string } }>(ROTATE, { id: key.id });
    await eventually('the newest secret works', () => accepts(mcpUrl, again.rotateVirtualKey.secret));
    assert.equal(await accepts(mcpUrl, fresh), false);
  });

  test('a key expires at the time set, with no call to the control plane', async () => {
    const key = await createKey({ name: 'expiring' });
    const expiresAt = new Date(Date.now() + 2_000).toISOString();
    await env.gqlOk(UPDATE_KEY, { id: key.id, input: { expiresAt } });
    await eventually('refused once expired', async () => !(await accepts(mcpUrl, key.secret)), 10_000);
    assert.ok(Date.now() >= Date.parse(expiresAt), 'refused only from its expiry');
    await env.gqlOk(UPDATE_KEY, { id: key.id, input: { expiresAt: null } });
    await eventually('accepted again without an expiry', () => accepts(mcpUrl, key.secret));
  });

  test('a disabled key is refused until enabled again', async () => {
    const key = await createKey({ name: 'switch' });
    await env.gqlOk(SET_ENABLED, { id: key.id, enabled: false });
    await eventually('refused while disabled', async () => !(await accepts(mcpUrl, key.secret)));
    await env.gqlOk(SET_ENABLED, { id: key.id, enabled: true });
    await eventually('accepted once enabled', () => accepts(mcpUrl, key.secret));
  });

  test(`deleting a team or customer: refused while live keys or teams belong; then its rules and \
budget go`, async () => {
    const doomed = await env.gqlOk<{ createTeam: { id: string } }>(CREATE_TEAM, {
      input: { name: 'doomed', customerId, deniedTools: ['ev__echo'] },
    });
    const doomedId = doomed.createTeam.id;
    const solo = await env.gqlOk<{ createCustomer: { id: string } }>(CREATE_CUSTOMER, { input: { name: 'solo' } });
    const SET_BUDGET = `mutation ($input: SetBudgetInput!) { setBudget(input: $input) { id } }`;
    for (const [scope, ownerId] of [
      ['TEAM', doomedId],
      ['CUSTOMER', solo.createCustomer.id],
    ])
      await env.gqlOk(SET_BUDGET, { input: { scope, ownerId, period: 'MONTH', amountMicros: 1000 } });
    const revoked = await createKey({ name: 'revoked-one', teamId: doomedId });
    await env.gqlOk(`mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }`, { id: revoked.id });
    const key = await createKey({ name: 'mover', teamId: doomedId });
    await eventually('listed', async () => (await toolNames(mcpUrl, key.secret)).includes('ev__get-env'));
    assert.ok(!(await toolNames(mcpUrl, key.secret)).includes('ev__echo'), 'denied by team doomed');

    const DELETE_TEAM = `mutation ($id: ID!) { deleteTeam(id: $id) }`;
    const DELETE_CUSTOMER = `mutation ($id: ID!) { deleteCustomer(id: $id) }`;
    const unknown = '00000000-0000-4000-8000-000000000000';
    const cases: Array<[string, string, string, RegExp]> = [
      [DELETE_TEAM, doomedId, 'CONFLICT', /^id: team "doomed" is still used by 1 live key\(s\) \("mover"\); move/],
      [DELETE_CUSTOMER, customerId, 'CONFLICT', /^id: customer "acme" is still used by 2 team\(s\) \("doomed", "pay/],
      [DELETE_TEAM, unknown, 'NOT_FOUND', /^id: no team has id/],
      [DELETE_CUSTOMER, unknown, 'NOT_FOUND', /^id: no customer has id/],
      [DELETE_TEAM, 'not-an-id', 'BAD_USER_INPUT', /^id: "not-an-id" is not an id/],
    ];
    for (const [query, id, code, message] of cases) {
      const response = await env.gql(query, { id });
      assert.equal(response.errors?.[0]?.extensions?.['code'], code, JSON.stringify(response.errors));
      assert.match(response.errors?.[0]?.message ?? '', message);
    }

    // Moved out (its team's rules stop applying), the team can go; its revoked key is no obstacle.
    await env.gqlOk(UPDATE_KEY, { id: key.id, input: { teamId } });
    assert.equal((await env.gqlOk<{ deleteTeam: boolean }>(DELETE_TEAM, { id: doomedId })).deleteTeam, true);
    await env.gqlOk(DELETE_CUSTOMER, { id: solo.createCustomer.id });
    await eventually('the node follows', async () => (await toolNames(mcpUrl, key.secret)).includes('ev__echo'));
    const left = await env.gqlOk<{ teams: Array<{ name: string }>; budgets: Array<{ ownerId: string }> }>(
      `{ teams { name } budgets { ownerId } }`,
    );
    assert.deepEqual(
      left.teams.map((team) => team.name),
      ['payments'],
    );
    assert.deepEqual(left.budgets, [], 'the budgets of the deleted team and customer went with them');
    assert.equal(await accepts(mcpUrl, revoked.secret), false, 'a revoked key stays refused without its team');
  });

  test('bad input is refused naming the field, with extensions.code', async () => {
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      [
        CREATE_KEY,
        { input: { name: 'x', teamId: '00000000-0000-4000-8000-000000000000' } },
        'BAD_USER_INPUT',
        /no team has id/,
      ],
      [CREATE_KEY, { input: { name: 'x', teamId: 'not-an-id' } }, 'BAD_USER_INPUT', /is not an id/],
      [
        CREATE_KEY,
        { input: { name: 'x', deniedTools: ['echo'] } },
        'BAD_USER_INPUT',
        /deniedTools.0: .*no "<upstream>__" prefix/,
      ],
      [
        CREATE_KEY,
        { input: { name: 'x', allowedResources: ['docs'] } },
        'BAD_USER_INPUT',
        /allowedResources.0: .*URI prefix/,
      ],
      [
        CREATE_KEY,
        { input: { name: 'x', rateLimits: { requestsPerMinute: -1 } } },
        'BAD_USER_INPUT',
        /requestsPerMinute: must not be negative/,
      ],
      [
        CREATE_KEY,
        { input: { name: 'x', rateLimits: { toolCallsPerMinute: 2_000_000_000 } } },
        'BAD_USER_INPUT',
        /is above/,
      ],
      [
        CREATE_KEY,
        { input: { name: 'x', expiresAt: '2001-01-01T00:00:00Z' } },
        'BAD_USER_INPUT',
        /expiresAt: is in the past/,
      ],
      [
        CREATE_TEAM,
        { input: { name: 'y', customerId: '00000000-0000-4000-8000-000000000000' } },
        'BAD_USER_INPUT',
        /no customer has id/,
      ],
      [CREATE_TEAM, { input: { name: 'payments' } }, 'CONFLICT', /already exists/],
      [ROTATE, { id: '00000000-0000-4000-8000-000000000000', grace: 5 }, 'NOT_FOUND', /no virtual key/],
    ];
    for (const [query, variables, code, message] of cases) {
      const response = await env.gql(query, variables);
      const error = response.errors?.[0];
      assert.equal(
        error?.extensions?.['code'],
        code,
        `${JSON.stringify(variables)}: ${JSON.stringify(response.errors)}`,
      );
      assert.match(error?.message ?? '', message);
    }
    const key = await createKey({ name: 'checked' });
    for (const grace of [-1, 40 * 24 * 3600]) {
      const response = await env.gql(ROTATE, { id: key.id, grace });
      assert.equal(response.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT');
      assert.match(response.errors?.[0]?.message ?? '', /gracePeriodSeconds/);
    }
    await env.gqlOk(`mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }`, { id: key.id });
    const revoked = await env.gql(ROTATE, { id: key.id });
    assert.equal(revoked.errors?.[0]?.extensions?.['code'], 'CONFLICT');
  });

  test('tool prices: set, listed, removed; negative, absurd and orphan prices refused', async () => {
    const SET =
      `mutation ($input: SetToolPriceInput!) { setToolPrice(input: $input) { tool priceMicros upstream { ` +
      `name } } }`;
    const upstreamId = env.upstreams[0]!.id;
    const set = await env.gqlOk<{
      setToolPrice: { tool: string | null; priceMicros: number; upstream: { name: string } };
    }>(SET, { input: { upstreamId, tool: 'echo', priceMicros: 2_500 } });
    assert.deepEqual(set.setToolPrice, { tool: 'echo', priceMicros: 2_500, upstream: { name: 'ev' } });
    await env.gqlOk(SET, { input: { upstreamId, priceMicros: 100 } });
    const listed = await env.gqlOk<{ toolPrices: Array<{ tool: string | null; priceMicros: number }> }>(
      `{ toolPrices { tool priceMicros } }`,
    );
    assert.deepEqual(listed.toolPrices, [
      { tool: null, priceMicros: 100 },
      { tool: 'echo', priceMicros: 2_500 },
    ]);
    const removed = await env.gqlOk<{ setToolPrice: null }>(SET, {
      input: { upstreamId, tool: 'echo', priceMicros: null },
    });
    assert.equal(removed.setToolPrice, null);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ upstreamId, priceMicros: -1 }, /input.priceMicros: must not be negative/],
      [{ upstreamId, priceMicros: 2_000_000_000 }, /input.priceMicros: is above/],
      [{ upstreamId: '00000000-0000-4000-8000-000000000000', priceMicros: 1 }, /input.upstreamId: no upstream/],
    ];
    for (const [input, message] of cases) {
      const response = await env.gql(SET, { input });
      assert.equal(response.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT', JSON.stringify(response.errors));
      assert.match(response.errors?.[0]?.message ?? '', message);
    }
  });

  test('keys of the wrong format are refused with 401 like unknown ones', async () => {
    for (const presented of ['pcs_', 'not-a-key', `pcs_${'A'.repeat(43)}`, 'x'.repeat(5000)]) {
      assert.equal(await accepts(mcpUrl, presented), false, presented.slice(0, 20));
    }
  });
});
