// Not on startTestEnv: it runs migrations by hand on a bare schema and on the embedded database (PGlite).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { buildSnapshot } from '../../control-plane/src/config/snapshot-builder.ts';
import { MIGRATIONS, openDatabase } from '../../control-plane/src/db/data-source.ts';
import { startEmbeddedDatabase } from '../../control-plane/src/db/embedded.ts';
import { startControlPlane } from '../../control-plane/src/index.ts';
import { SecretBox, parseSecretKey } from '../../control-plane/src/secrets/index.ts';
import { ensureSessionKeys } from '../../control-plane/src/services/settings.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { UpstreamReport, UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { NODE_TOKEN, TestNode, gql, gqlOk, testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

const TABLES = [
  'admin_tokens',
  'approvals',
  'audit_chain_anchor',
  'audit_chain_gaps',
  'audit_chain_head',
  'audit_events',
  'budget_leases',
  'budgets',
  'config_revision',
  'customers',
  'data_plane_nodes',
  'ended_sessions',
  'execution_policies',
  'migrations',
  'settings',
  'teams',
  'tool_definition_changes',
  'tool_prices',
  'tools',
  'upstream_catalog_lists',
  'upstream_node_status',
  'upstreams',
  'virtual_key_tombstones',
  'virtual_keys',
];

async function tablesOf(dataSource: DataSource, schema: string): Promise<string[]> {
  const rows: Array<{ table_name: string }> = await dataSource.query(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
    [schema],
  );
  return rows.map((row) => row.table_name);
}

describe('migrations on the real PostgreSQL', () => {
  let schema: TestSchema;
  before(async () => {
    schema = await createTestSchema('migrate');
  });
  after(async () => {
    await schema?.drop();
  });

  it('creates every table in the given schema, once, and generates ids in the database', async () => {
    const first = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
    try {
      assert.deepEqual(await tablesOf(first, schema.name), TABLES);
      assert.deepEqual(await first.query(`SELECT version FROM config_revision`), [{ version: '1' }]);
      const [team] = await first.query(`INSERT INTO teams (name) VALUES ('db-default') RETURNING id`);
      assert.match(team.id, /^[0-9a-f-]{36}$/);
    } finally {
      await first.destroy();
    }
    // Two replicas starting together: the advisory lock makes the second find everything applied.
    const [a, b] = await Promise.all(
      [0, 1].map(() => openDatabase({ url: schema.url, schema: schema.name, poolSize: 1, embedded: false })),
    );
    try {
      assert.equal((await a!.query(`SELECT * FROM migrations`)).length, MIGRATIONS.length);
      assert.equal((await b!.query(`SELECT count(*)::int AS n FROM teams`))[0].n, 1, 'reopening keeps the data');
    } finally {
      await Promise.all([a!.destroy(), b!.destroy()]);
    }
  });

  it('creates a missing schema and refuses unsafe schema names', async () => {
    const name = `${schema.name}_new`;
    const dataSource = await openDatabase({ url: schema.url, schema: name, poolSize: 1, embedded: false });
    try {
      assert.deepEqual(await tablesOf(dataSource, name), TABLES);
    } finally {
      await dataSource.query(`DROP SCHEMA "${name}" CASCADE`);
      await dataSource.destroy();
    }
    await assert.rejects(
      openDatabase({ url: schema.url, schema: 'x"; DROP TABLE y; --', poolSize: 1, embedded: false }),
      /databaseSchema .* is not a plain lower-case identifier/,
    );
  });

  it('builds a snapshot of 10,000 keys quickly, with only the keys not revoked', async () => {
    const dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
    try {
      await ensureSessionKeys(dataSource);
      await dataSource.query(
        `INSERT INTO virtual_keys (name, prefix, secret_sha256, allowed_tools, revoked_at)
         SELECT 'k' || i, 'pcs_' || i, sha256(('secret' || i)::bytea), '["*"]', CASE WHEN i % 10 = 0 THEN now() END
         FROM generate_series(1, 10000) AS i`,
      );
      const box = new SecretBox(parseSecretKey('11'.repeat(32), 'secretKey'));
      await buildSnapshot(dataSource, box); // warm up
      const started = performance.now();
      const snapshot = await buildSnapshot(dataSource, box);
      const elapsed = performance.now() - started;
      assert.equal(snapshot.virtualKeys.length, 9000);
      assert.ok(snapshot.virtualKeys.every((key) => key.secretSha256.length === 32));
      assert.ok(elapsed < 1000, `snapshot of 10k keys took ${elapsed.toFixed(1)} ms`);
      console.log(`snapshot build, 9,000 live keys of 10,000: ${elapsed.toFixed(1)} ms`);
    } finally {
      await dataSource.destroy();
    }
  });
});

describe('embedded database (PGlite)', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-cp-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('runs the migrations on PGlite over an in-process connection', async () => {
    const database = await startEmbeddedDatabase({ dataDir: join(dataDir, 'pg') });
    try {
      const dataSource = await openDatabase({ ...database.connection, poolSize: 1, embedded: true });
      try {
        assert.deepEqual(await tablesOf(dataSource, 'public'), TABLES);
        const [team] = await dataSource.query(`INSERT INTO teams (name) VALUES ('pglite') RETURNING id`);
        assert.match(team.id, /^[0-9a-f-]{36}$/);
      } finally {
        await dataSource.destroy();
      }
    } finally {
      await database.close();
      await database.close();
    }
  });

  it('starts the control plane on it, generates and keeps the admin token, and pushes changes in-process', async () => {
    const options = {
      dataDir,
      graphqlHost: '127.0.0.1',
      graphqlPort: 0,
      grpcHost: '127.0.0.1',
      grpcPort: 0,
      nodeToken: NODE_TOKEN,
      logger: testLogger(),
    };
    const started = performance.now();
    const plane = await startControlPlane(options);
    const startupMs = performance.now() - started;
    let node: TestNode | undefined;
    try {
      console.log(`control plane startup on an existing embedded database: ${startupMs.toFixed(0)} ms`);
      assert.match(plane.adminToken, /^pca_[A-Za-z0-9_-]{43}$/);
      const tokenFile = join(dataDir, 'admin-token');
      assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
      assert.equal(
        (await stat(join(dataDir, 'secret-key'))).mode & 0o777,
        0o600,
        'the development secret key is generated beside it',
      );
      assert.equal((await readFile(tokenFile, 'utf8')).trim(), plane.adminToken);
      assert.equal((await gql(plane, '{ teams { name } }', {}, 'wrong')).status, 401);
      assert.deepEqual((await gqlOk(plane, '{ teams { name } }', {}, plane.adminToken)).teams, [{ name: 'pglite' }]);

      node = new TestNode(plane.grpcAddress, NODE_TOKEN);
      node.hello('embedded-node');
      const first = await node.snapshot();
      const name = `up${randomBytes(3).toString('hex')}`;
      await gqlOk(
        plane,
        'mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }',
        { input: { name, transport: 'STDIO', command: 'node' } },
        plane.adminToken,
      );
      const pushed = await node.snapshot((s) => s.upstreams.some((u) => u.name === name), 2000);
      assert.ok(BigInt(pushed.version) > BigInt(first.version));

      // Sealed credentials, catalog reports with pins and an accepted change, in PGlite's single session.
      const sealed = (
        await gqlOk(
          plane,
          'mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }',
          {
            input: {
              name: `${name}s`,
              transport: 'STDIO',
              command: 'node',
              env: [{ name: 'T', value: 'embedded-secret' }],
            },
          },
          plane.adminToken,
        )
      ).createUpstream;
      const withSealed = await node.snapshot((s) => s.upstreams.some((u) => u.id === sealed.id), 2000);
      const config = withSealed.upstreams.find((u) => u.id === sealed.id)!;
      assert.deepEqual(config.env, [{ name: 'T', value: 'embedded-secret' }]);
      const definition = (description: string) =>
        JSON.stringify({ name: 'echo', description, inputSchema: { type: 'object' } });
      const sha = (text: string) => createHash('sha256').update(text).digest('hex');
      const send = (description: string) =>
        node!.send({
          kind: {
            $case: 'upstream',
            value: UpstreamReport.fromPartial({
              upstreamId: sealed.id,
              configHash: config.configHash,
              state: UpstreamState.UPSTREAM_STATE_READY,
              error: '',
              hasCatalog: true,
              tools: [
                {
                  name: 'echo',
                  definitionJson: definition(description),
                  definitionSha256: sha(definition(description)),
                },
              ],
              serverName: '',
              serverVersion: '',
              protocolVersion: '',
            }),
          },
        });
      send('v1');
      await node.snapshot((s) => s.upstreams.some((u) => u.id === sealed.id && u.pinnedTools.length === 1), 2000);
      send('v2');
      const toolQuery = `{ upstream(id: "${sealed.id}") { tools { id heldBack pendingSha256 } } }`;
      const held = await eventually('held back', async () =>
        (await gqlOk(plane, toolQuery, {}, plane.adminToken)).upstream.tools.find(
          (t: { heldBack: boolean }) => t.heldBack,
        ),
      );
      await gqlOk(
        plane,
        'mutation ($id: ID!) { acceptToolDefinition(toolId: $id) { id } }',
        { id: held.id },
        plane.adminToken,
      );
      await node.snapshot(
        (s) =>
          s.upstreams.some((u) => u.id === sealed.id && u.pinnedTools[0]?.definitionSha256 === sha(definition('v2'))),
        2000,
      );
      assert.equal((await gqlOk(plane, 'mutation { rotateSecrets }', {}, plane.adminToken)).rotateSecrets, 0);
    } finally {
      node?.close();
      await plane.close();
      await plane.close();
    }

    const again = await startControlPlane(options);
    try {
      assert.equal(again.adminToken, plane.adminToken, 'the generated admin token is reused');
      assert.equal(again.secretKeyId, plane.secretKeyId, 'and so is the generated secret key');
      const upstreams = await gqlOk(again, '{ upstreams { name } nodes { id connected } }', {}, again.adminToken);
      assert.equal(upstreams.upstreams.length, 2);
      assert.deepEqual(upstreams.nodes, [{ id: 'embedded-node', connected: false }]);
    } finally {
      await again.close();
    }
  });
});
