import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/src/index.ts';
import type { Snapshot, UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import type { TestSchema } from '../support/database.ts';
import { type TestNode, gql, gqlOk } from './control-plane-harness.ts';
import { useTestEnv } from '../support/test-env.ts';

const FIELDS = `id name transport command args env { name isSet } cwd url headers { name isSet } hasBearerToken
  connectTimeoutMs callTimeoutMs
  healthIntervalMs healthFailureThreshold enabled pinToolDefinitions exposeUnprefixed createdAt updatedAt`;
const CREATE = `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { ${FIELDS} } }`;
const UPDATE_VARIABLES = '($id: ID!, $input: UpdateUpstreamInput!)';
const UPDATE = `mutation ${UPDATE_VARIABLES} { updateUpstream(id: $id, input: $input) { ${FIELDS} } }`;
const ENABLE =
  'mutation ($id: ID!, $enabled: Boolean!) { setUpstreamEnabled(id: $id, enabled: $enabled) { id enabled } }';

describe('upstream settings (GraphQL → snapshot)', () => {
  let schema: TestSchema;
  let plane: ControlPlane;
  let node: TestNode;
  const version = async () => (await gqlOk(plane, '{ config { version } }')).config.version as string;
  /** The upstream as the node receives it in the snapshot of the current revision. */
  const configOf = async (id: string): Promise<UpstreamConfig> => {
    const current = await version();
    const snapshot: Snapshot = await node.snapshot((s) => s.version === current);
    return snapshot.upstreams.find((u) => u.id === id)!;
  };
  async function expectError(
    query: string,
    variables: Record<string, unknown>,
    code: string,
    field: string,
    pattern: RegExp,
  ) {
    const result = await gql(plane, query, variables);
    const error = result.errors?.[0];
    assert.ok(error, `expected an error, got ${JSON.stringify(result)}`);
    assert.equal(error.extensions?.['code'], code, error.message);
    assert.equal(error.extensions?.['field'], field, error.message);
    assert.match(error.message, pattern);
  }

  useTestEnv(
    { schemaPrefix: 'settings', controlPlane: 'in-process', configStreams: ['settings-node'] },
    (env) => {
      ({ schema } = env);
      plane = env.plane!;
      node = env.configStreams[0]!;
    },
    ['upstreams'],
  );

  it('creates an upstream with every setting and sends them to nodes', async () => {
    const created = (
      await gqlOk(plane, CREATE, {
        input: {
          name: 'full',
          transport: 'STDIO',
          command: 'node',
          args: ['server.js'],
          cwd: '/srv/mcp',
          env: [{ name: 'K', value: 'v' }],
          connectTimeoutMs: 5000,
          callTimeoutMs: 120000,
          healthIntervalMs: 10000,
          healthFailureThreshold: 5,
          pinToolDefinitions: false,
          exposeUnprefixed: true,
        },
      })
    ).createUpstream;
    assert.deepEqual(
      { ...created, id: undefined, createdAt: undefined, updatedAt: undefined },
      {
        id: undefined,
        name: 'full',
        transport: 'STDIO',
        command: 'node',
        args: ['server.js'],
        env: [{ name: 'K', isSet: true }],
        cwd: '/srv/mcp',
        url: null,
        headers: [],
        hasBearerToken: false,
        connectTimeoutMs: 5000,
        callTimeoutMs: 120000,
        healthIntervalMs: 10000,
        healthFailureThreshold: 5,
        enabled: true,
        pinToolDefinitions: false,
        exposeUnprefixed: true,
        createdAt: undefined,
        updatedAt: undefined,
      },
    );
    const config = await configOf(created.id);
    assert.equal(config.cwd, '/srv/mcp');
    assert.equal(config.connectTimeoutMs, 5000);
    assert.equal(config.callTimeoutMs, 120000);
    assert.equal(config.healthIntervalMs, 10000);
    assert.equal(config.healthFailureThreshold, 5);
    assert.equal(config.pinToolDefinitions, false);
    assert.equal(config.exposeUnprefixed, true);
    assert.equal(config.disabled, false);

    const defaults = (
      await gqlOk(plane, CREATE, {
        input: { name: 'defaults', transport: 'SSE', url: 'http://127.0.0.1:9/sse', bearerToken: 'tok' },
      })
    ).createUpstream;
    assert.equal(defaults.pinToolDefinitions, true, 'pinning is on by default');
    assert.equal(defaults.exposeUnprefixed, false);
    assert.equal(defaults.connectTimeoutMs, null);
    const defaultConfig = await configOf(defaults.id);
    assert.equal(defaultConfig.connectTimeoutMs, 0, '0 = the node default');
    assert.equal(defaultConfig.pinToolDefinitions, true);
    assert.deepEqual(defaultConfig.headers, [{ name: 'Authorization', value: 'Bearer tok' }]);
  });

  it(`updates only the given fields, keeps omitted secrets, and moves the revision and config hash only when \
needed`, async () => {
    const created = (
      await gqlOk(plane, CREATE, {
        input: {
          name: 'patched',
          transport: 'STREAMABLE_HTTP',
          url: 'http://127.0.0.1:9/mcp',
          headers: [{ name: 'X-Key', value: 'h1' }],
          bearerToken: 'b1',
        },
      })
    ).createUpstream;
    const initial = await configOf(created.id);

    // Timeouts: applied in place, the connection settings (and so the hash) stay.
    let before = await version();
    const timed = (
      await gqlOk(plane, UPDATE, { id: created.id, input: { callTimeoutMs: 3000, healthFailureThreshold: 2 } })
    ).updateUpstream;
    assert.equal(timed.callTimeoutMs, 3000);
    assert.deepEqual(timed.headers, [{ name: 'X-Key', isSet: true }]);
    assert.equal(timed.hasBearerToken, true, 'an omitted bearer token is kept');
    assert.ok(new Date(timed.updatedAt) > new Date(created.updatedAt));
    assert.equal(BigInt(await version()), BigInt(before) + 1n);
    const timedConfig = await configOf(created.id);
    assert.equal(timedConfig.callTimeoutMs, 3000);
    assert.equal(timedConfig.configHash, initial.configHash);
    assert.deepEqual(timedConfig.headers, initial.headers, 'secrets kept');

    // The same values again: nothing changes, no revision.
    before = await version();
    await gqlOk(plane, UPDATE, {
      id: created.id,
      input: { callTimeoutMs: 3000, headers: [{ name: 'X-Key', value: 'h1' }], bearerToken: 'b1' },
    });
    assert.equal(await version(), before, 're-sending the same values is no change');

    // A new secret value: the hash moves (nodes reconnect) although no name changed.
    const rekeyed = await gqlOk(plane, UPDATE, {
      id: created.id,
      input: { headers: [{ name: 'X-Key', value: 'h2' }] },
    });
    assert.deepEqual(rekeyed.updateUpstream.headers, [{ name: 'X-Key', isSet: true }]);
    const rekeyedConfig = await configOf(created.id);
    assert.notEqual(rekeyedConfig.configHash, initial.configHash);
    assert.deepEqual(rekeyedConfig.headers, [
      { name: 'X-Key', value: 'h2' },
      { name: 'Authorization', value: 'Bearer b1' },
    ]);

    // null clears: the bearer token, a timeout (back to the node default); [] empties the header list.
    const cleared = (
      await gqlOk(plane, UPDATE, { id: created.id, input: { bearerToken: null, callTimeoutMs: null, headers: [] } })
    ).updateUpstream;
    assert.equal(cleared.hasBearerToken, false);
    assert.equal(cleared.callTimeoutMs, null);
    assert.deepEqual(cleared.headers, []);
    const clearedConfig = await configOf(created.id);
    assert.deepEqual(clearedConfig.headers, []);
    assert.equal(clearedConfig.callTimeoutMs, 0);

    // Changing transport: fields of the old transport must be cleared in the same update.
    await expectError(
      UPDATE,
      { id: created.id, input: { transport: 'STDIO', command: 'node' } },
      'BAD_USER_INPUT',
      'input.url',
      /only for STREAMABLE_HTTP and SSE upstreams; remove it \(null\)/,
    );
    const switched = (
      await gqlOk(plane, UPDATE, {
        id: created.id,
        input: { transport: 'STDIO', command: 'node', url: null, cwd: '/tmp' },
      })
    ).updateUpstream;
    assert.equal(switched.transport, 'STDIO');
    assert.equal(switched.url, null);
    assert.equal((await configOf(created.id)).cwd, '/tmp');
  });

  it(`PROTOCOL-VERSION-SETTING: protocolVersion (auto by default) is set, validated, and reaches nodes with a new \
config hash`, async () => {
    const created = (
      await gqlOk(plane, CREATE.replace('updatedAt }', 'updatedAt protocolVersion }'), {
        input: { name: 'pinned', transport: 'STDIO', command: 'node' },
      })
    ).createUpstream;
    assert.equal(created.protocolVersion, 'auto');
    const auto = await configOf(created.id);
    assert.equal(auto.protocolVersion, 'auto');
    const pinned = (
      await gqlOk(plane, UPDATE.replace('updatedAt }', 'updatedAt protocolVersion }'), {
        id: created.id,
        input: { protocolVersion: '2025-06-18' },
      })
    ).updateUpstream;
    assert.equal(pinned.protocolVersion, '2025-06-18');
    const pinnedConfig = await configOf(created.id);
    assert.equal(pinnedConfig.protocolVersion, '2025-06-18');
    assert.notEqual(
      pinnedConfig.configHash,
      auto.configHash,
      'reports of the connection made before the pin are stale',
    );
    await expectError(
      UPDATE,
      { id: created.id, input: { protocolVersion: '2026' } },
      'BAD_USER_INPUT',
      'input.protocolVersion',
      /must be one of auto, legacy, modern, 2024-11-05/,
    );
    await expectError(
      CREATE,
      { input: { name: 'bad', transport: 'STDIO', command: 'node', protocolVersion: 'newest' } },
      'BAD_USER_INPUT',
      'input.protocolVersion',
      /must be one of/,
    );
  });

  it('switches an upstream off and on (snapshot disabled), idempotently', async () => {
    const created = (await gqlOk(plane, CREATE, { input: { name: 'switchable', transport: 'STDIO', command: 'node' } }))
      .createUpstream;
    const enabledHash = (await configOf(created.id)).configHash;
    const before = await version();
    assert.deepEqual((await gqlOk(plane, ENABLE, { id: created.id, enabled: false })).setUpstreamEnabled, {
      id: created.id,
      enabled: false,
    });
    const disabled = await configOf(created.id);
    assert.equal(disabled.disabled, true);
    assert.notEqual(disabled.configHash, enabledHash, 'reports made before the switch are stale');
    assert.equal(BigInt(await version()), BigInt(before) + 1n);
    await gqlOk(plane, ENABLE, { id: created.id, enabled: false });
    assert.equal(BigInt(await version()), BigInt(before) + 1n, 'disabling a disabled upstream changes nothing');
    await gqlOk(plane, ENABLE, { id: created.id, enabled: true });
    const enabled = await configOf(created.id);
    assert.equal(enabled.disabled, false);
    assert.equal(enabled.configHash, enabledHash);
    assert.equal((await gqlOk(plane, `{ upstream(id: "${created.id}") { enabled } }`)).upstream.enabled, true);
  });

  it('refuses bad settings naming the field and the fix', async () => {
    const stdio = { name: 'bad', transport: 'STDIO', command: 'node' };
    const http = { name: 'bad', transport: 'STREAMABLE_HTTP', url: 'http://127.0.0.1:9/mcp' };
    await expectError(
      CREATE,
      { input: { ...stdio, connectTimeoutMs: 5 } },
      'BAD_USER_INPUT',
      'input.connectTimeoutMs',
      /must be at least 100 ms .*node's default/,
    );
    await expectError(
      CREATE,
      { input: { ...stdio, callTimeoutMs: 100_000_000 } },
      'BAD_USER_INPUT',
      'input.callTimeoutMs',
      /at most 86400000 ms/,
    );
    await expectError(
      CREATE,
      { input: { ...stdio, healthIntervalMs: 10 } },
      'BAD_USER_INPUT',
      'input.healthIntervalMs',
      /at least 1000 ms/,
    );
    await expectError(
      CREATE,
      { input: { ...stdio, healthFailureThreshold: 0 } },
      'BAD_USER_INPUT',
      'input.healthFailureThreshold',
      /at least 1/,
    );
    await expectError(
      CREATE,
      { input: { ...stdio, cwd: 'relative/dir' } },
      'BAD_USER_INPUT',
      'input.cwd',
      /absolute directory path/,
    );
    await expectError(
      CREATE,
      { input: { ...stdio, bearerToken: 'x' } },
      'BAD_USER_INPUT',
      'input.bearerToken',
      /only for STREAMABLE_HTTP and SSE.*env instead/,
    );
    await expectError(
      CREATE,
      { input: { ...http, cwd: '/srv' } },
      'BAD_USER_INPUT',
      'input.cwd',
      /only for STDIO upstreams/,
    );
    await expectError(
      CREATE,
      { input: { ...http, bearerToken: 'has space' } },
      'BAD_USER_INPUT',
      'input.bearerToken',
      /printable ASCII without spaces/,
    );
    await expectError(
      CREATE,
      { input: { ...http, bearerToken: 't', headers: [{ name: 'authorization', value: 'Basic x' }] } },
      'BAD_USER_INPUT',
      'input.headers',
      /names Authorization while a bearerToken is set/,
    );
    await expectError(
      CREATE,
      { input: { ...http, headers: [{ name: 'Mcp-Session-Id', value: 'x' }] } },
      'BAD_USER_INPUT',
      'input.headers.0.name',
      /set by the gateway's MCP transport itself/,
    );
    await expectError(
      CREATE,
      { input: { ...http, headers: [{ name: 'X-A', value: 'a\r\nInjected: 1' }] } },
      'BAD_USER_INPUT',
      'input.headers.0.value',
      /line breaks/,
    );
    await expectError(
      UPDATE,
      { id: '00000000-0000-4000-8000-000000000000', input: { callTimeoutMs: 1000 } },
      'NOT_FOUND',
      'id',
      /no upstream has id/,
    );
    await expectError(ENABLE, { id: 'nope', enabled: true }, 'BAD_USER_INPUT', 'id', /is not an id/);
    const created = (await gqlOk(plane, CREATE, { input: http })).createUpstream;
    await expectError(
      UPDATE,
      { id: created.id, input: { connectTimeoutMs: 1.5 } },
      'BAD_USER_INPUT',
      'input.connectTimeoutMs',
      /Int cannot represent|whole number/,
    );
    await expectError(
      UPDATE,
      { id: created.id, input: { bearerToken: '' } },
      'BAD_USER_INPUT',
      'input.bearerToken',
      /is empty; give the token, or null to remove it/,
    );
    assert.equal(
      (await schema.query('SELECT * FROM upstreams')).length,
      1,
      'nothing was stored by the refused requests',
    );
  });
});
