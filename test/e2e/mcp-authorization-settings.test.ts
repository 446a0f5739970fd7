import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

const SET = /* GraphQL */ `
  mutation ($input: McpAuthorizationInput) {
    setMcpAuthorization(input: $input) {
      resource metadataUrl
      identityProviders {
        issuer jwksUri subjectClaim teamClaim teams { claimValue team { name } customerId allowedTools }
      }
    }
  }
`;

describe('MCP authorization settings in GraphQL', () => {
  let env: TestEnv;
  let teamId: string;

  before(async () => {
    env = await startTestEnv({ controlPlane: 'in-process', configStreams: ['stream-a'] });
    teamId = (await env.gqlOk<{ createTeam: { id: string } }>('mutation { createTeam(input: { name: "eng" }) { id } }'))
      .createTeam.id;
  });

  after(async () => {
    await env?.dispose();
  });

  const provider = (fields: Record<string, unknown> = {}) => ({
    issuer: 'https://idp.example.com',
    teams: [{ claimValue: 'engineering', teamId }],
    ...fields,
  });

  test('bad input is refused naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ resource: 'not a url', identityProviders: [provider()] }, 'input.resource'],
      [{ resource: 'https://gw.example.com/mcp', identityProviders: [] }, 'input.identityProviders'],
      [
        { resource: 'https://gw.example.com/mcp', identityProviders: [provider({ teams: [] })] },
        'input.identityProviders.0.teams',
      ],
      [
        {
          resource: 'https://gw.example.com/mcp',
          identityProviders: [provider({ teams: [{ claimValue: 'x', allowedTools: ['nope'] }] })],
        },
        'input.identityProviders.0.teams.0.allowedTools.0',
      ],
      [
        {
          resource: 'https://gw.example.com/mcp',
          identityProviders: [
            provider({ teams: [{ claimValue: 'x', teamId: '00000000-0000-4000-8000-000000000000' }] }),
          ],
        },
        'input.identityProviders.0.teams.0.teamId',
      ],
      [
        { resource: 'https://gw.example.com/mcp', identityProviders: [provider(), provider()] },
        'input.identityProviders',
      ],
    ];
    for (const [input, field] of cases) {
      const result = await env.gql(SET, { input });
      assert.equal(result.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(input));
      assert.equal(result.errors?.[0]?.extensions?.field, field, result.errors?.[0]?.message);
    }
  });

  test('settings are stored with defaults, streamed to nodes, and cleared with null', async () => {
    const set = await env.gqlOk<{ setMcpAuthorization: Record<string, unknown> }>(SET, {
      input: { resource: 'https://gw.example.com/mcp', identityProviders: [provider({ teamClaim: 'groups' })] },
    });
    assert.deepEqual(set.setMcpAuthorization, {
      resource: 'https://gw.example.com/mcp',
      metadataUrl: 'https://gw.example.com/.well-known/oauth-protected-resource/mcp',
      identityProviders: [
        {
          issuer: 'https://idp.example.com',
          jwksUri: null,
          subjectClaim: 'sub',
          teamClaim: 'groups',
          teams: [{ claimValue: 'engineering', team: { name: 'eng' }, customerId: null, allowedTools: ['*'] }],
        },
      ],
    });
    const stream = env.configStreams[0]!;
    // Sent whole in a snapshot or a delta, whichever the stream is at.
    const sent = () => [...stream.snapshots, ...stream.deltas].map((m) => m.mcpAuthorization);
    await eventually('the settings reach the config stream', () => sent().some((a) => a !== undefined));
    assert.equal(sent().find((a) => a !== undefined)?.identityProviders[0]?.teams[0]?.teamId, teamId);
    const DELETE_TEAM = 'mutation ($id: ID!) { deleteTeam(id: $id) }';
    const refused = await env.gql(DELETE_TEAM, { id: teamId });
    assert.equal(refused.errors?.[0]?.extensions?.['code'], 'CONFLICT');
    assert.match(refused.errors?.[0]?.message ?? '', /^id: team "eng" is still used by the MCP authorization settings/);
    const before = stream.snapshots.length + stream.deltas.length;
    assert.equal((await env.gqlOk<{ setMcpAuthorization: null }>(SET, { input: null })).setMcpAuthorization, null);
    assert.equal(
      (await env.gqlOk<{ mcpAuthorization: null }>('{ mcpAuthorization { resource } }')).mcpAuthorization,
      null,
    );
    await eventually(
      'a revision without the settings reaches the config stream',
      () => stream.snapshots.length + stream.deltas.length > before && sent().at(-1) === undefined,
    );
    // Unmapped, the team can go: the next revision's team list (whole, in a snapshot or delta) lacks it.
    await env.gqlOk(DELETE_TEAM, { id: teamId });
    const teams = () => [...stream.snapshots, ...stream.deltas].at(-1)?.teams.map((team) => team.id);
    await eventually(
      'a revision without the team reaches the config stream',
      () => teams()?.includes(teamId) === false,
    );
  });
});
