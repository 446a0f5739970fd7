import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { everythingUpstream, startTestEnv, type CreatedKey, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Execution policy set through GraphQL reaches the node in its snapshot and is applied by the
 * pipeline's policy step: DENY hides a tool from lists and refuses it exactly as one outside the
 * allow-list; rules per upstream (default and per tool), per team and per key; the strictest wins.
 */

const SET = /* GraphQL */ `
  mutation ($scope: PolicyScopeInput!, $rules: [ToolPolicyInput!]!) {
    setToolPolicies(scope: $scope, rules: $rules) { id tool policy argument pattern approvalTimeoutMs }
  }
`;

describe('execution policy (GraphQL → snapshot → policy step)', () => {
  let env: TestEnv;
  let base: string;
  let upstreamId: string;
  let teamId: string;
  let member: CreatedKey;
  let loner: CreatedKey;

  before(async () => {
    env = await startTestEnv({ nodes: ['policy-node'], upstreams: [everythingUpstream('ev')] });
    base = `http://127.0.0.1:${env.node('policy-node').port}`;
    upstreamId = env.upstreams[0]!.id;
    const team = await env.gqlOk<{ createTeam: { id: string } }>(
      'mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id } }',
      { input: { name: 'ops' } },
    );
    teamId = team.createTeam.id;
    member = await env.createKey({ name: 'member', teamId, allowedTools: ['ev__*'] });
    loner = await env.createKey({ name: 'loner', allowedTools: ['ev__*'] });
    await env.keysReachedNodes();
    await eventually('the node lists server-everything’s tools', async () => (await tools(loner)).includes('ev__echo'));
  });
  after(() => env?.dispose());

  async function tools(key: CreatedKey): Promise<string[]> {
    const response = await fetch(`${base}/v1/mcp/tools`, { headers: { authorization: `Bearer ${key.secret}` } });
    if (!response.ok) return [];
    return ((await response.json()) as { tools: { name: string }[] }).tools.map((tool) => tool.name);
  }

  async function call(key: CreatedKey, name: string): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${base}/v1/mcp/tool/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, arguments: name === 'ev__echo' ? { message: 'hi' } : { a: 1, b: 2 } }),
    });
    return { status: response.status, body: await response.json() };
  }

  /** What an MCP agent gets for the call (the JSON-RPC error or the result). */
  async function mcpCall(key: CreatedKey, name: string): Promise<unknown> {
    const response = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key.secret}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': name,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: {
          name,
          arguments: { a: 1, b: 2 },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });
    const body = (await response.json()) as { error?: unknown };
    return body.error;
  }

  function set(scope: Record<string, string>, rules: unknown[]) {
    return env.gqlOk<{ setToolPolicies: { tool: string; policy: string }[] }>(SET, { scope, rules });
  }

  test('an upstream rule DENY hides the tool and refuses it exactly as one that does not exist', async () => {
    const unknownOverMcp = await mcpCall(loner, 'ev__no-such-tool');
    await set({ upstreamId }, [{ tool: 'get-sum', policy: 'DENY' }]);
    await eventually('get-sum is hidden', async () => !(await tools(loner)).includes('ev__get-sum'));
    assert.ok(!(await tools(member)).includes('ev__get-sum'));
    assert.ok((await tools(loner)).includes('ev__echo'), 'other tools stay');
    assert.deepEqual(await call(loner, 'ev__get-sum'), {
      status: 404,
      body: { error: { code: 'TOOL_NOT_FOUND', message: 'Tool ev__get-sum not found' } },
    });
    // Over MCP: the same JSON-RPC error as for a tool that does not exist, but for its name.
    assert.deepEqual(
      JSON.stringify(await mcpCall(loner, 'ev__get-sum')),
      JSON.stringify(unknownOverMcp).replace('ev__no-such-tool', 'ev__get-sum'),
    );
    const shown = await env.gqlOk<{ upstream: { policies: { tool: string; policy: string }[] } }>(
      'query ($id: ID!) { upstream(id: $id) { policies { tool policy } } }',
      { id: upstreamId },
    );
    assert.deepEqual(shown.upstream.policies, [{ tool: 'get-sum', policy: 'DENY' }]);
    // An empty list removes the rules: the tool is back.
    await set({ upstreamId }, []);
    await eventually('get-sum is back', async () => (await tools(loner)).includes('ev__get-sum'));
    assert.equal((await call(loner, 'ev__get-sum')).status, 200);
  });

  test('a team rule applies to its keys only; a key rule to that key; the strictest wins', async () => {
    await set({ teamId }, [{ tool: 'ev__echo', policy: 'DENY' }]);
    await eventually('echo is hidden from the team’s key', async () => !(await tools(member)).includes('ev__echo'));
    assert.ok((await tools(loner)).includes('ev__echo'), 'a key outside the team still sees it');
    assert.equal((await call(member, 'ev__echo')).status, 404);
    // A key rule saying AUTO does not relax its team's DENY.
    await set({ keyId: member.id }, [{ tool: 'ev__*', policy: 'AUTO' }]);
    const keyRules = await env.gqlOk<{ virtualKeys: { id: string; policies: { tool: string }[] }[] }>(
      '{ virtualKeys { id policies { tool } } }',
    );
    assert.deepEqual(keyRules.virtualKeys.find((k) => k.id === member.id)?.policies, [{ tool: 'ev__*' }]);
    assert.equal((await call(member, 'ev__echo')).status, 404);
    // A key rule on another key denies there alone (an upstream default DENY would do it for all).
    await set({ keyId: loner.id }, [{ tool: 'ev__*', policy: 'DENY' }]);
    await eventually('the loner sees nothing of ev', async () => (await tools(loner)).length === 0);
    assert.ok((await tools(member)).includes('ev__get-sum'));
    await set({ teamId }, []);
    await set({ keyId: loner.id }, []);
    await set({ keyId: member.id }, []);
    await eventually('everything is back', async () => (await tools(loner)).includes('ev__echo'));
  });

  test('an upstream default DENY ("*") hides all of its tools', async () => {
    await set({ upstreamId }, [{ tool: '*', policy: 'DENY' }]);
    await eventually('ev is hidden', async () => (await tools(member)).length === 0);
    assert.equal((await call(member, 'ev__echo')).status, 404);
    await set({ upstreamId }, []);
    await eventually('ev is back', async () => (await tools(member)).includes('ev__echo'));
  });

  test('rules are validated, the error naming the field and the fix', async () => {
    const cases: [Record<string, string>, unknown[], RegExp][] = [
      [
        { upstreamId },
        [{ tool: 'echo', policy: 'DENY', argument: 'message', pattern: 'x' }],
        /rules\.0\.argument: only an APPROVE rule/,
      ],
      [
        { upstreamId },
        [{ tool: 'echo', policy: 'APPROVE', argument: 'message', pattern: '(' }],
        /rules\.0\.pattern: is not a valid/,
      ],
      [{ upstreamId }, [{ tool: 'echo', policy: 'APPROVE', argument: 'message' }], /argument and pattern go together/],
      [
        { upstreamId },
        [{ tool: 'echo', policy: 'DENY', approvalVia: 'CLIENT' }],
        /rules\.0\.approvalVia: only an APPROVE/,
      ],
      [{ teamId }, [{ tool: 'no spaces', policy: 'DENY' }], /rules\.0\.tool: "no spaces" is not a tool pattern/],
      [{}, [], /scope: give exactly one of upstreamId, teamId and keyId/],
      [{ upstreamId, teamId }, [], /scope: give exactly one/],
      [{ teamId: '00000000-0000-0000-0000-000000000000' }, [], /scope: no team with id/],
    ];
    for (const [scope, rules, message] of cases) {
      const response = await env.gql(SET, { scope, rules });
      const messages = (response.errors ?? []).map((error) => error.message).join('\n');
      assert.match(messages, message, JSON.stringify(response.errors));
      assert.equal(response.errors?.[0]?.extensions?.code, /no team/.test(messages) ? 'NOT_FOUND' : 'BAD_USER_INPUT');
    }
  });
});
