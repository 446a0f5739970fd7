// Finding 9 of issue 12: updating an upstream's url or command kept its stored credentials, so an
// admin who changed only the URL sent the stored bearer token and headers to the new host. And URLs
// with user:password@ or credential-looking query parameters were stored and shown in clear.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/src/index.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { gql, gqlOk } from './control-plane-harness.ts';

const CREATE = `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateUpstreamInput!) {
  updateUpstream(id: $id, input: $input) { url command args hasBearerToken headers { name } env { name } }
}`;
const READ = `query ($id: ID!) { upstream(id: $id) { url command args hasBearerToken headers { name } env { name } } }`;

describe('finding 9: changing an upstream target needs its credentials again; no credentials in URLs', () => {
  let plane: ControlPlane;
  let n = 0;
  const http = async () =>
    (
      await gqlOk(plane, CREATE, {
        input: {
          name: `remote${n++}`,
          transport: 'STREAMABLE_HTTP',
          url: 'https://mcp.example.com/mcp',
          bearerToken: 'stored-bearer-secret',
          headers: [{ name: 'X-Api-Key', value: 'stored-header-secret' }],
        },
      })
    ).createUpstream.id as string;

  let env: TestEnv | undefined;
  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'upstream_target', controlPlane: 'in-process' });
    plane = env.plane!;
  });
  after(async () => {
    await env?.dispose();
  });

  it('refuses a url change that would send the stored bearer token and headers to the new host', async () => {
    const id = await http();
    const refused = await gql(plane, UPDATE, { id, input: { url: 'https://attacker.example.net/mcp' } });
    const error = refused.errors?.[0];
    assert.equal(error?.extensions?.['code'], 'BAD_USER_INPUT', JSON.stringify(refused));
    assert.equal(error?.extensions?.['field'], 'input.headers');
    assert.match(
      error!.message,
      /changes url, and this upstream's stored headers, bearer token would go to the new target/,
    );
    assert.match(
      error!.message,
      /give headers, bearerToken again in the same update, or clear headers: \[\], bearerToken: null/,
    );
    const kept = (await gqlOk(plane, READ, { id })).upstream;
    assert.equal(kept.url, 'https://mcp.example.com/mcp', 'nothing changed');
    // Naming only one of the two is not enough.
    const half = await gql(plane, UPDATE, { id, input: { url: 'https://attacker.example.net/mcp', headers: [] } });
    assert.equal(half.errors?.[0]?.extensions?.['field'], 'input.bearerToken');
  });

  it('accepts a target change that gives the credentials again or clears them', async () => {
    const id = await http();
    const given = (
      await gqlOk(plane, UPDATE, {
        id,
        input: {
          url: 'https://new.example.com/mcp',
          bearerToken: 'new-token',
          headers: [{ name: 'X-Api-Key', value: 'new' }],
        },
      })
    ).updateUpstream;
    assert.equal(given.url, 'https://new.example.com/mcp');
    assert.equal(given.hasBearerToken, true);
    const cleared = (
      await gqlOk(plane, UPDATE, {
        id,
        input: { url: 'https://other.example.com/mcp', bearerToken: null, headers: [] },
      })
    ).updateUpstream;
    assert.deepEqual(
      [cleared.url, cleared.hasBearerToken, cleared.headers],
      ['https://other.example.com/mcp', false, []],
    );
    // Without credentials stored, a target change needs nothing more; nor does a change that keeps the target.
    assert.equal(
      (await gqlOk(plane, UPDATE, { id, input: { url: 'https://third.example.com/mcp' } })).updateUpstream.url,
      'https://third.example.com/mcp',
    );
    const other = await http();
    assert.equal(
      (await gqlOk(plane, UPDATE, { id: other, input: { callTimeoutMs: 5000, url: 'https://mcp.example.com/mcp' } }))
        .updateUpstream.hasBearerToken,
      true,
    );
  });

  it('refuses a command or args change of a STDIO upstream with stored env unless env is given', async () => {
    const id = (
      await gqlOk(plane, CREATE, {
        input: {
          name: 'local',
          transport: 'STDIO',
          command: 'npx',
          args: ['server-a'],
          env: [{ name: 'API_TOKEN', value: 'env-secret' }],
        },
      })
    ).createUpstream.id;
    for (const input of [{ command: 'node' }, { args: ['server-b'] }]) {
      const refused = await gql(plane, UPDATE, { id, input });
      assert.equal(refused.errors?.[0]?.extensions?.['field'], 'input.env', JSON.stringify(refused));
      assert.match(
        refused.errors![0]!.message,
        /stored environment variables would go to the new target; give env again .* or clear env: \[\]/,
      );
    }
    const moved = (
      await gqlOk(plane, UPDATE, {
        id,
        input: { args: ['server-b'], env: [{ name: 'API_TOKEN', value: 'env-secret-b' }] },
      })
    ).updateUpstream;
    assert.deepEqual([moved.args, moved.env], [['server-b'], [{ name: 'API_TOKEN' }]]);
    assert.deepEqual(
      (await gqlOk(plane, UPDATE, { id, input: { cwd: '/srv' } })).updateUpstream.env,
      [{ name: 'API_TOKEN' }],
      'not a target change',
    );
  });

  it(`refuses URLs carrying user:password@ or credential-looking query parameters, without echoing the \
secret`, async () => {
    const refusedUrls = [
      ['https://admin:hunter2-secret@mcp.example.com/mcp', /must not carry credentials \(user:password@host\)/],
      ['https://mcp.example.com/mcp?api_key=abc123-secret', /query parameter "api_key" that looks like a credential/],
      ['https://mcp.example.com/mcp?access_token=abc123-secret', /"access_token"/],
      ['https://mcp.example.com/mcp?tenant=acme&X-Amz-Signature=abc123-secret', /"X-Amz-Signature"/],
      ['https://mcp.example.com/mcp?sig=abc123-secret', /"sig"/],
      ['https://mcp.example.com/mcp?key=abc123-secret', /"key"/],
      ['https://mcp.example.com/mcp?client-secret=abc123-secret', /"client-secret"/],
    ] as const;
    for (const [url, message] of refusedUrls) {
      const refused = await gql(plane, CREATE, { input: { name: 'leaky', transport: 'SSE', url } });
      const error = refused.errors?.[0];
      assert.equal(error?.extensions?.['code'], 'BAD_USER_INPUT', url);
      assert.equal(error?.extensions?.['field'], 'input.url');
      assert.match(error!.message, message);
      assert.match(error!.message, /bearerToken|headers/);
      assert.ok(!/hunter2|abc123/.test(JSON.stringify(refused)), 'the secret is not echoed');
    }
    const id = await http();
    const update = await gql(plane, UPDATE, {
      id,
      input: { url: 'https://mcp.example.com/mcp?token=abc123-secret', bearerToken: null, headers: [] },
    });
    assert.equal(update.errors?.[0]?.extensions?.['field'], 'input.url');
    assert.ok(!/abc123/.test(JSON.stringify(update)));
    const fine = await gqlOk(plane, CREATE, {
      input: { name: 'plain', transport: 'SSE', url: 'https://mcp.example.com/sse?tenant=acme&version=2&keyword=x' },
    });
    assert.ok(fine.createUpstream.id);
  });
});
