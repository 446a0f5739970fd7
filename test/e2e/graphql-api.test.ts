import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/src/index.ts';
import type { TestSchema } from '../support/database.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { ADMIN_TOKEN, gql, gqlOk } from './control-plane-harness.ts';

const CREATE_UPSTREAM = `mutation ($input: CreateUpstreamInput!) {
  createUpstream(input: $input) {
    id name transport command args env { name isSet } url headers { name isSet } createdAt
    tools { name } status { nodeId }
  }
}`;
const CREATE_KEY = `mutation ($input: CreateVirtualKeyInput!) {
  createVirtualKey(input: $input) {
    secret key { id name prefix allowedTools revoked revokedAt createdAt team { id name } }
  }
}`;

describe('GraphQL API', () => {
  let env: TestEnv;
  let schema: TestSchema;
  let plane: ControlPlane;

  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'graphql', controlPlane: 'in-process' });
    ({ schema } = env);
    plane = env.plane!;
  });
  after(async () => {
    await env?.dispose();
  });

  it('creates, lists and deletes upstreams without returning secret values', async () => {
    const stdio = await gqlOk(plane, CREATE_UPSTREAM, {
      input: {
        name: 'files',
        transport: 'STDIO',
        command: 'npx',
        args: ['-y', 'server'],
        env: [{ name: 'API_TOKEN', value: 'super-secret-env' }],
      },
    });
    assert.equal(stdio.createUpstream.name, 'files');
    assert.deepEqual(stdio.createUpstream.env, [{ name: 'API_TOKEN', isSet: true }]);
    assert.match(stdio.createUpstream.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const http = await gqlOk(plane, CREATE_UPSTREAM, {
      input: {
        name: 'remote',
        transport: 'STREAMABLE_HTTP',
        url: 'https://mcp.example.com/mcp',
        headers: [{ name: 'Authorization', value: 'Bearer hdr-secret' }],
      },
    });
    assert.deepEqual(http.createUpstream.headers, [{ name: 'Authorization', isSet: true }]);

    const listed = await gql(
      plane,
      `{ upstreams { id name transport url env { name } headers { name } } upstream(id: ` +
        `"${stdio.createUpstream.id}") { name } }`,
    );
    assert.equal(listed.errors, undefined);
    assert.deepEqual(
      listed.data.upstreams.map((u: { name: string }) => u.name),
      ['files', 'remote'],
    );
    assert.equal(listed.data.upstream.name, 'files');
    const raw = JSON.stringify(listed);
    assert.ok(!raw.includes('super-secret-env') && !raw.includes('hdr-secret'), 'secret values must never be returned');

    const before = (await gqlOk(plane, '{ config { version } }')).config.version;
    assert.equal(
      (await gqlOk(plane, `mutation { deleteUpstream(id: "${http.createUpstream.id}") }`)).deleteUpstream,
      true,
    );
    assert.equal(
      (await gqlOk(plane, `mutation { deleteUpstream(id: "${http.createUpstream.id}") }`)).deleteUpstream,
      false,
    );
    const afterDelete = (await gqlOk(plane, '{ config { version } }')).config.version;
    assert.equal(
      BigInt(afterDelete),
      BigInt(before) + 1n,
      'one delete bumps the revision once; a no-op delete does not',
    );
    assert.deepEqual((await gqlOk(plane, '{ upstreams { name } }')).upstreams, [{ name: 'files' }]);
  });

  it('shows a virtual key secret once and stores only its SHA-256', async () => {
    const team = (await gqlOk(plane, 'mutation { createTeam(input: { name: "platform" }) { id name createdAt } }'))
      .createTeam;
    const created = (
      await gqlOk(plane, CREATE_KEY, {
        input: { name: 'ci-bot', teamId: team.id, allowedTools: ['files__*', 'files__read_file', 'files__*'] },
      })
    ).createVirtualKey;
    assert.match(created.secret, /^pcs_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.key.prefix, created.secret.slice(0, 12));
    assert.deepEqual(created.key.allowedTools, ['files__*', 'files__read_file']);
    assert.deepEqual(created.key.team, { id: team.id, name: 'platform' });
    assert.equal(created.key.revoked, false);

    const rows = await schema.query<{ secret_sha256: Buffer; prefix: string }>(
      'SELECT * FROM virtual_keys WHERE id = $1',
      [created.key.id],
    );
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0]!.secret_sha256, createHash('sha256').update(created.secret).digest());
    assert.ok(!JSON.stringify(rows).includes(created.secret.slice(12)), 'the secret itself must not be stored');

    const listed = await gqlOk(plane, '{ virtualKeys { id name prefix allowedTools team { name } } teams { name } }');
    const key = listed.virtualKeys.find((k: { id: string }) => k.id === created.key.id);
    assert.deepEqual(key, {
      id: created.key.id,
      name: 'ci-bot',
      prefix: created.key.prefix,
      allowedTools: ['files__*', 'files__read_file'],
      team: { name: 'platform' },
    });
    assert.ok(!JSON.stringify(listed).includes(created.secret), 'the secret is shown only at creation');
    assert.deepEqual(listed.teams, [{ name: 'platform' }]);

    const defaulted = (await gqlOk(plane, CREATE_KEY, { input: { name: 'everything' } })).createVirtualKey;
    assert.deepEqual(defaulted.key.allowedTools, ['*']);
    assert.equal(defaulted.key.team, null);
  });

  it('creates many keys in one call and one configuration revision, all or none', async () => {
    const CREATE_KEYS =
      'mutation ($inputs: [CreateVirtualKeyInput!]!) { createVirtualKeys(inputs: $inputs) { secret key { id name ' +
      'allowedTools } } }';
    const versionBefore = BigInt((await gqlOk(plane, '{ config { version } }')).config.version);
    const keysBefore = (await gqlOk(plane, '{ virtualKeys { id } }')).virtualKeys.length;
    const inputs = Array.from({ length: 750 }, (_, i) => ({ name: `bulk-${i}`, allowedTools: ['files__*'] }));
    const created = (await gqlOk(plane, CREATE_KEYS, { inputs })).createVirtualKeys as {
      secret: string;
      key: { name: string; allowedTools: string[] };
    }[];
    assert.equal(created.length, 750);
    assert.equal(new Set(created.map((c) => c.secret)).size, 750, 'every key has its own secret');
    assert.equal(created[749]!.key.name, 'bulk-749');
    assert.deepEqual(created[749]!.key.allowedTools, ['files__*']);
    assert.equal(
      BigInt((await gqlOk(plane, '{ config { version } }')).config.version),
      versionBefore + 1n,
      'one revision for the whole batch',
    );

    const refused = await gql(plane, CREATE_KEYS, {
      inputs: [{ name: 'fine' }, { name: 'bad', allowedTools: ['no-prefix'] }],
    });
    assert.equal(refused.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(refused.errors?.[0]?.message ?? '', /inputs\.1\.allowedTools/);
    assert.equal(
      (await gqlOk(plane, '{ virtualKeys { id } }')).virtualKeys.length,
      keysBefore + 750,
      'nothing of a refused batch is created',
    );
  });

  it('revokes a key idempotently', async () => {
    const created = (await gqlOk(plane, CREATE_KEY, { input: { name: 'to-revoke' } })).createVirtualKey;
    const version = (await gqlOk(plane, '{ config { version } }')).config.version;
    const revoked = (
      await gqlOk(plane, `mutation ($id: ID!) { revokeVirtualKey(id: $id) { id revoked revokedAt } }`, {
        id: created.key.id,
      })
    ).revokeVirtualKey;
    assert.equal(revoked.revoked, true);
    assert.ok(revoked.revokedAt);
    const again = (
      await gqlOk(plane, `mutation ($id: ID!) { revokeVirtualKey(id: $id) { revoked revokedAt } }`, {
        id: created.key.id,
      })
    ).revokeVirtualKey;
    assert.deepEqual(again, { revoked: true, revokedAt: revoked.revokedAt });
    assert.equal((await gqlOk(plane, '{ config { version } }')).config.version, String(BigInt(version) + 1n));
    const missing = await gql(
      plane,
      `mutation { revokeVirtualKey(id: "00000000-0000-4000-8000-000000000000") { id } }`,
    );
    assert.equal(missing.errors?.[0]?.extensions?.['code'], 'NOT_FOUND');
    assert.equal(missing.errors?.[0]?.extensions?.['field'], 'id');
  });

  it('lists nodes (none yet) and answers /healthz', async () => {
    assert.deepEqual((await gqlOk(plane, '{ nodes { id } }')).nodes, []);
    const health = await fetch(plane.graphqlUrl.replace(/\/graphql$/, '/healthz'));
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
  });

  it('refuses requests without the admin token with 401 UNAUTHENTICATED', async () => {
    for (const token of [null, 'wrong-token', `${ADMIN_TOKEN}x`]) {
      const result = await gql(plane, '{ upstreams { id } }', {}, token);
      assert.equal(result.status, 401, `token ${token}`);
      assert.equal(result.errors?.[0]?.extensions?.['code'], 'UNAUTHENTICATED');
      assert.equal(result.data ?? null, null);
    }
    const mutation = await gql(plane, 'mutation { createTeam(input: { name: "sneaky" }) { id } }', {}, 'nope');
    assert.equal(mutation.status, 401);
    assert.equal((await schema.query('SELECT * FROM teams WHERE name = $1', ['sneaky'])).length, 0);
  });

  describe('bad input', () => {
    async function expectError(
      query: string,
      variables: Record<string, unknown>,
      code: string,
      field: string | undefined,
      pattern: RegExp,
    ) {
      const result = await gql(plane, query, variables);
      const error = result.errors?.[0];
      assert.ok(error, `expected an error, got ${JSON.stringify(result)}`);
      assert.equal(error.extensions?.['code'], code, error.message);
      if (field !== undefined) assert.equal(error.extensions?.['field'], field, error.message);
      assert.match(error.message, pattern);
      return result;
    }

    it('refuses a duplicate upstream name with CONFLICT naming the field', async () => {
      await gqlOk(plane, CREATE_UPSTREAM, { input: { name: 'dup', transport: 'SSE', url: 'http://127.0.0.1:9/sse' } });
      await expectError(
        CREATE_UPSTREAM,
        { input: { name: 'dup', transport: 'SSE', url: 'http://127.0.0.1:9/sse' } },
        'CONFLICT',
        'input.name',
        /input\.name: an upstream named "dup" already exists; choose another name/,
      );
    });

    it('refuses bad upstream names', async () => {
      for (const name of ['a__b', 'has space', '', 'x'.repeat(33), 'dot.ted']) {
        await expectError(
          CREATE_UPSTREAM,
          { input: { name, transport: 'STDIO', command: 'x' } },
          'BAD_USER_INPUT',
          'input.name',
          /^input\.name: /,
        );
      }
    });

    it('refuses a STDIO upstream without a command, and transport-foreign fields', async () => {
      await expectError(
        CREATE_UPSTREAM,
        { input: { name: 'nocmd', transport: 'STDIO' } },
        'BAD_USER_INPUT',
        'input.command',
        /required for a STDIO upstream/,
      );
      await expectError(
        CREATE_UPSTREAM,
        { input: { name: 'mixed', transport: 'STDIO', command: 'x', url: 'http://x' } },
        'BAD_USER_INPUT',
        'input.url',
        /only for STREAMABLE_HTTP and SSE/,
      );
      await expectError(
        CREATE_UPSTREAM,
        { input: { name: 'nourl', transport: 'STREAMABLE_HTTP' } },
        'BAD_USER_INPUT',
        'input.url',
        /required for a STREAMABLE_HTTP upstream/,
      );
    });

    it('refuses bad URLs', async () => {
      for (const url of ['not a url', 'ftp://example.com/mcp', '/relative']) {
        await expectError(
          CREATE_UPSTREAM,
          { input: { name: 'badurl', transport: 'SSE', url } },
          'BAD_USER_INPUT',
          'input.url',
          /http:\/\/ or https:\/\//,
        );
      }
    });

    it('refuses an unknown transport, naming the allowed values', async () => {
      await expectError(
        CREATE_UPSTREAM,
        { input: { name: 'enum', transport: 'CARRIER_PIGEON', command: 'x' } },
        'BAD_USER_INPUT',
        'input.transport',
        /CARRIER_PIGEON.*Use one of: STDIO, STREAMABLE_HTTP, SSE/,
      );
      await expectError(
        'mutation { createUpstream(input: { name: "enum", transport: CARRIER_PIGEON, command: "x" }) { id } }',
        {},
        'GRAPHQL_VALIDATION_FAILED',
        undefined,
        /Use one of: STDIO, STREAMABLE_HTTP, SSE/,
      );
    });

    it('refuses bad allowedTools patterns', async () => {
      for (const [pattern, message] of [
        ['files', /no "<upstream>__" prefix/],
        ['files__', /not a valid tool name or wildcard/],
        ['fi les__x', /not a valid upstream name/],
        ['files__a*', /not a valid tool name or wildcard/],
        ['files__has space', /not a valid tool name/],
      ] as const) {
        await expectError(
          CREATE_KEY,
          { input: { name: 'k', allowedTools: ['*', pattern] } },
          'BAD_USER_INPUT',
          'input.allowedTools.1',
          message,
        );
      }
    });

    it('refuses an unknown team and malformed ids', async () => {
      await expectError(
        CREATE_KEY,
        { input: { name: 'k', teamId: '00000000-0000-4000-8000-000000000000' } },
        'BAD_USER_INPUT',
        'input.teamId',
        /create one with createTeam/,
      );
      await expectError('mutation { deleteUpstream(id: "42") }', {}, 'BAD_USER_INPUT', 'id', /is not an id/);
    });

    it('refuses a duplicate team name with CONFLICT', async () => {
      await gqlOk(plane, 'mutation { createTeam(input: { name: "twice" }) { id } }');
      await expectError(
        'mutation { createTeam(input: { name: "twice" }) { id } }',
        {},
        'CONFLICT',
        'input.name',
        /already exists/,
      );
    });
  });
});
