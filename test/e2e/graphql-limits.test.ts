// Finding 3 of issue 12 (GraphQL has no depth or cost limit): a shallow 149-byte query nesting
// upstreams { tools { upstream { tools … } } } drove the control plane to 4.5 GB and a heap OOM, and
// 20,000 aliases ran ~10k database queries. Real Postgres, the real GraphQL server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import { controlPlaneOptionTable } from '../../cli/src/commands/control-plane.ts';
import { graphqlLimits } from '../../cli/src/commands/settings.ts';
import { readOptions } from '../../cli/src/options.ts';
import type { ControlPlane } from '../../control-plane/src/index.ts';
import { InProcessChangeBus } from '../../control-plane/src/config/change-bus.ts';
import { ENTITIES } from '../../control-plane/src/db/entities.ts';
import { startGraphqlServer, type GraphqlServerHandle } from '../../control-plane/src/graphql/server.ts';
import { loadSecretBox } from '../../control-plane/src/secrets/index.ts';
import { createServices } from '../../control-plane/src/services/index.ts';
import type { TestSchema } from '../support/database.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { ADMIN_TOKEN, SECRET_KEY, gql, gqlOk, testLogger } from './control-plane-harness.ts';

const UPSTREAMS = 3;
const TOOLS_PER_UPSTREAM = 30;

/** The shape of the reported attack: five upstream→tools round trips. */
const DEEP = '{upstreams{tools{upstream{tools{upstream{tools{upstream{tools{upstream{tools{name}}}}}}}}}}}';

/** Counts the SQL statements a data source sends (TypeORM calls its logger for every one). */
class CountingLogger implements TypeOrmLogger {
  statements: string[] = [];
  logQuery(query: string): void {
    this.statements.push(query);
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

/**
 * What "fast" means on a shared machine: the time of a trivial query just before, times 5, plus
 * 500 ms (on a quiet machine the refusals take 60-250 ms; the unbounded query crashed the process).
 */
async function fastBound(target: { graphqlUrl: string }): Promise<number> {
  const { ms } = await timed(() => gql(target, '{ config { version } }'));
  return 500 + 5 * ms;
}

async function timed<T>(run: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await run();
  return { result, ms: performance.now() - started };
}

describe('finding 3: GraphQL depth, cost, alias, token, list and body limits', () => {
  let env: TestEnv | undefined;
  let schema: TestSchema;
  let plane: ControlPlane;
  /** A second GraphQL server on the same schema whose data source counts its SQL statements. */
  let countedServer: GraphqlServerHandle;
  let counted: { graphqlUrl: string };
  let countingSource: DataSource;
  const sql = new CountingLogger();

  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'gql_limits', controlPlane: 'in-process' });
    ({ schema } = env);
    plane = env.plane!;
    for (let u = 0; u < UPSTREAMS; u++) {
      await gqlOk(
        plane,
        `mutation { createUpstream(input: { name: "up${u}", transport: STDIO, command: "node" }) { id } }`,
      );
    }
    // Catalogs as nodes would have reported them: 30 tools an upstream, two history entries a tool.
    await schema.query(
      `INSERT INTO tools (upstream_id, name, definition, listed)
       SELECT u.id, 't' || n, jsonb_build_object('name', 't' || n), true FROM upstreams u, generate_series(1, $1) n`,
      [TOOLS_PER_UPSTREAM],
    );
    await schema.query(
      `INSERT INTO tool_definition_changes (upstream_id, tool_id, tool_name, kind, changed_at)
       SELECT t.upstream_id, t.id, t.name, k.kind, now() - k.age * interval '1 minute'
       FROM tools t, (VALUES ('ADDED', 2), ('CHANGED', 1)) AS k(kind, age)`,
    );

    countingSource = new DataSource({
      type: 'postgres',
      url: schema.url,
      schema: schema.name,
      entities: ENTITIES,
      extra: { options: `-c search_path="${schema.name}"` },
      logger: sql,
    });
    await countingSource.initialize();
    const { box } = await loadSecretBox({ secretKey: SECRET_KEY, dataDir: '/nonexistent-unused' });
    const services = createServices(
      { dataSource: countingSource, changes: new InProcessChangeBus() },
      box,
      testLogger(),
    );
    countedServer = await startGraphqlServer({
      host: '127.0.0.1',
      port: 0,
      adminToken: ADMIN_TOKEN,
      services,
      logger: testLogger(),
      limits: { maxDepth: 7 },
    });
    counted = { graphqlUrl: countedServer.url };
  });
  after(async () => {
    await countedServer?.close();
    await countingSource?.destroy();
    await env?.dispose();
  });

  it(`refuses the five-level upstreams/tools query before it runs: fast, QUERY_LIMIT_EXCEEDED, and the process stays \
small`, async () => {
    assert.ok(Buffer.byteLength(DEEP) < 149);
    const rssBefore = process.memoryUsage().rss;
    const bound = await fastBound(plane);
    const { result, ms } = await timed(() => gql(plane, DEEP));
    assert.equal(result.status, 400);
    assert.equal(result.data, undefined);
    assert.equal(result.errors?.[0]?.extensions?.['code'], 'QUERY_LIMIT_EXCEEDED', JSON.stringify(result.errors));
    assert.equal(result.errors?.[0]?.extensions?.['limit'], 'maxDepth');
    assert.match(result.errors![0]!.message, /Query depth limit of 8 exceeded, found 11\..*--graphql-max-depth/);
    assert.ok(ms < bound, `refused in ${ms.toFixed(0)} ms (bound ${bound.toFixed(0)} ms)`);
    const grownMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    assert.ok(grownMb < 64, `the process grew ${grownMb.toFixed(0)} MB`);
    // Not crashed, still serving.
    assert.match((await gqlOk(plane, '{ config { version } }')).config.version, /^\d+$/);
  });

  it(`refuses an answer over the list-item budget (a shallow query multiplying tools by tools) with \
RESULT_TOO_LARGE`, async () => {
    // Depth 7 passes the depth limit, but 3 + 90 + 2,700 + 81,000 tools are over the 50,000 items.
    const query = '{upstreams{tools{upstream{tools{upstream{tools{name}}}}}}}';
    const rssBefore = process.memoryUsage().rss;
    const { result, ms } = await timed(() => gql(plane, query));
    assert.equal(result.data, null, 'non-null lists: the refusal empties the answer');
    assert.equal(result.errors?.length, 1, 'one error, not one per list');
    assert.equal(result.errors?.[0]?.extensions?.['code'], 'RESULT_TOO_LARGE', JSON.stringify(result.errors));
    assert.equal(result.errors?.[0]?.extensions?.['limit'], 50_000);
    assert.match(result.errors![0]!.message, /more than 50000 list items .*first\/after.*--graphql-max-list-items/);
    // It builds up to 50,000 items first: 1.2-3.9 s here, more when the machine is shared.
    assert.ok(ms < 30_000, `refused in ${ms.toFixed(0)} ms`);
    // Up to the budget's 50,000 items are built before it runs out (measured: 84 MB of RSS here,
    // against 4.5 GB and a crash for the unbounded five-level query).
    const grownMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    assert.ok(grownMb < 256, `the process grew ${grownMb.toFixed(0)} MB`);
    // One level less fits: 3 + 90 + 2,700.
    const fits = await gqlOk(plane, '{upstreams{tools{upstream{tools{name}}}}}');
    assert.equal(
      fits.upstreams.flatMap((u: { tools: Array<{ upstream: { tools: unknown[] } }> }) =>
        u.tools.flatMap((t) => t.upstream.tools),
      ).length,
      2700,
    );
  });

  it(`refuses 20,000 aliases while parsing, fast and without one SQL statement; 31 aliases by the alias \
limit`, async () => {
    const aliases = Array.from({ length: 20_000 }, (_, i) => `a${i}: upstreams { id }`).join(' ');
    sql.statements = [];
    const bound = await fastBound(counted);
    sql.statements = [];
    const { result, ms } = await timed(() => gql(counted, `{ ${aliases} }`));
    assert.equal(
      result.errors?.[0]?.extensions?.['code'],
      'QUERY_LIMIT_EXCEEDED',
      JSON.stringify(result.errors).slice(0, 500),
    );
    assert.equal(result.errors?.[0]?.extensions?.['limit'], 'maxTokens');
    assert.equal(result.status, 400, 'a refusal of what the client sent, not a server failure');
    assert.match(result.errors![0]!.message, /Token limit of 2000 exceeded.*--graphql-max-tokens/);
    assert.ok(ms < bound, `refused in ${ms.toFixed(0)} ms (bound ${bound.toFixed(0)} ms)`);
    assert.deepEqual(sql.statements, [], 'no database work for a refused query');

    const some = Array.from({ length: 31 }, (_, i) => `a${i}: config { version }`).join(' ');
    const refused = await gql(counted, `{ ${some} }`);
    assert.equal(refused.status, 400);
    assert.equal(refused.errors?.[0]?.extensions?.['limit'], 'maxAliases');
    assert.match(refused.errors![0]!.message, /Aliases limit of 30 exceeded, found 31\./);
    assert.deepEqual(sql.statements, []);
  });

  it('refuses a JSON batch of operations and a body over 1 MiB (413 PAYLOAD_TOO_LARGE)', async () => {
    const batch = await fetch(plane.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify([{ query: '{ config { version } }' }, { query: '{ config { version } }' }]),
    });
    assert.equal(batch.status, 400);
    const big = await fetch(plane.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ query: `{ config { version } } # ${'x'.repeat(1024 * 1024)}` }),
    });
    assert.equal(big.status, 413);
    const body = (await big.json()) as { errors: Array<{ message: string; extensions: Record<string, unknown> }> };
    assert.equal(body.errors[0]?.extensions['code'], 'PAYLOAD_TOO_LARGE');
    assert.equal(body.errors[0]?.extensions['limit'], 1024 * 1024);
    assert.match(body.errors[0]!.message, /--graphql-max-body-bytes/);
  });

  it('a nested query issues one SQL statement per level, and a level asked again issues none', async () => {
    const query =
      `{ upstreams { name status { nodeId } tools { name upstream { name tools { name changes(first: ` +
      `1) { kind } } } } } }`;
    sql.statements = [];
    const data = await gqlOk(counted, query);
    assert.equal(data.upstreams.length, UPSTREAMS);
    const deepest = data.upstreams[0].tools[0].upstream.tools;
    assert.equal(deepest.length, TOOLS_PER_UPSTREAM);
    assert.deepEqual(deepest[0].changes, [{ kind: 'CHANGED' }], 'the newest change, as first: 1 asked');
    // upstreams; their statuses; their tools; the tools' changes. Tool.upstream and the second
    // tools level come from the request's loaders (the upstreams were just read).
    assert.equal(sql.statements.length, 4, sql.statements.join('\n---\n'));
    assert.ok(!sql.statements.some((statement) => /"u"\."id" IN/.test(statement)), 'no second read of the upstreams');
  });

  it('pages every top-level list with first/after (at most 1000) and refuses what is out of range', async () => {
    for (let i = 0; i < 3; i++)
      await gqlOk(plane, `mutation { createVirtualKey(input: { name: "k${i}" }) { key { id } } }`);
    const all = (await gqlOk(plane, '{ virtualKeys { id name } }')).virtualKeys;
    assert.deepEqual(
      all.map((k: { name: string }) => k.name),
      ['k0', 'k1', 'k2'],
    );
    const first = (await gqlOk(plane, '{ virtualKeys(first: 2) { id name } }')).virtualKeys;
    assert.deepEqual(
      first.map((k: { name: string }) => k.name),
      ['k0', 'k1'],
    );
    const rest = (
      await gqlOk(plane, 'query ($after: ID) { virtualKeys(first: 2, after: $after) { name } }', { after: first[1].id })
    ).virtualKeys;
    assert.deepEqual(rest, [{ name: 'k2' }]);

    const upstreams = (await gqlOk(plane, '{ upstreams(first: 1) { id name } }')).upstreams;
    assert.deepEqual(
      upstreams.map((u: { name: string }) => u.name),
      ['up0'],
    );
    const next = (
      await gqlOk(plane, 'query ($after: ID) { upstreams(after: $after) { name } }', { after: upstreams[0].id })
    ).upstreams;
    assert.deepEqual(next, [{ name: 'up1' }, { name: 'up2' }]);
    const tools = (await gqlOk(plane, '{ tools(first: 5) { id name } }')).tools;
    assert.equal(tools.length, 5);
    const moreTools = (
      await gqlOk(plane, 'query ($after: ID) { tools(first: 1000, after: $after) { id } }', { after: tools[4].id })
    ).tools;
    assert.equal(moreTools.length, UPSTREAMS * TOOLS_PER_UPSTREAM - 5);
    assert.deepEqual(await gqlOk(plane, '{ teams(first: 1) { id } nodes(first: 1, after: "a") { id } }'), {
      teams: [],
      nodes: [],
    });

    const tooMany = await gql(plane, '{ upstreams(first: 1001) { id } }');
    assert.equal(tooMany.errors?.[0]?.extensions?.['code'], 'BAD_USER_INPUT');
    assert.equal(tooMany.errors?.[0]?.extensions?.['field'], 'first');
    assert.match(tooMany.errors![0]!.message, /at most 1000; fetch further pages with after/);
    const gone = await gql(plane, '{ virtualKeys(after: "00000000-0000-4000-8000-000000000000") { id } }');
    assert.equal(gone.errors?.[0]?.extensions?.['code'], 'NOT_FOUND');
    assert.equal(gone.errors?.[0]?.extensions?.['field'], 'after');
    const changes = await gql(plane, '{ tools(first: 1) { changes(first: 0) { kind } } }');
    assert.equal(changes.errors?.[0]?.extensions?.['field'], 'first');
  });

  it('takes its limits from the command line and environment, and applies them', async () => {
    const options = readOptions(controlPlaneOptionTable, ['--graphql-max-depth', '12'], {
      PORTCULLIS_GRAPHQL_MAX_LIST_ITEMS: '200',
    });
    assert.deepEqual(graphqlLimits(options), {
      maxDepth: 12,
      maxCost: 5000,
      maxAliases: 30,
      maxDirectives: 20,
      maxTokens: 2000,
      maxListItems: 200,
      maxBodyBytes: 1024 * 1024,
    });
    assert.throws(
      () => readOptions(controlPlaneOptionTable, ['--graphql-max-depth', '1'], {}),
      /--graphql-max-depth: must be at least 2/,
    );
    // The counting server was started with maxDepth 7: depth 8 passes the default, not it.
    const refused = await gql(counted, '{upstreams{tools{upstream{tools{upstream{tools{upstream{name}}}}}}}}');
    assert.equal(refused.errors?.[0]?.extensions?.['limit'], 'maxDepth');
    assert.match(refused.errors![0]!.message, /limit of 7 exceeded, found 8/);
  });
});
