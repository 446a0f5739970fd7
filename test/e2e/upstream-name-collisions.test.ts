// Issue 12, "Upstreams the project did not write": name collisions with unprefixed upstreams were
// silent (the first registered wins, the other's tools vanish), and a disabled upstream still
// counted as colliding. Real Postgres; catalogs as nodes store them.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { useTestEnv, type TestEnv } from '../support/test-env.ts';
import { gql, gqlOk, startOnSchema } from './control-plane-harness.ts';

const CREATE = `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }`;
const UPDATE =
  `mutation ($id: ID!, $input: UpdateUpstreamInput!) { updateUpstream(id: $id, input: $input) { ` +
  `enabled exposeUnprefixed } }`;
const ENABLE = `mutation ($id: ID!, $enabled: Boolean!) { setUpstreamEnabled(id: $id, enabled: $enabled) { enabled } }`;
const STATE = `query ($id: ID!) { upstream(id: $id) { enabled catalogError collidingNames } }`;

describe(`upstream name collisions: refused where the catalog is known, visible where not, disabled upstreams claim \
none`, () => {
  let env: TestEnv;

  async function upstream(name: string, tools: string[], input: Record<string, unknown> = {}): Promise<string> {
    const id = (await gqlOk(env, CREATE, { input: { name, transport: 'STDIO', command: 'node', ...input } }))
      .createUpstream.id as string;
    // The catalog a node reported (as CatalogService.applyReport stores it).
    for (const tool of tools) {
      await env.schema.query(`INSERT INTO tools (upstream_id, name, definition, listed) VALUES ($1, $2, $3, true)`, [
        id,
        tool,
        { name: tool },
      ]);
    }
    return id;
  }
  const state = async (id: string) => (await gqlOk(env, STATE, { id })).upstream;

  useTestEnv({ schemaPrefix: 'name_collisions', controlPlane: 'in-process' }, (started) => (env = started), [
    'upstreams',
  ]);

  it(`charges a later-reported collision to the upstream created later, and a disabled upstream claims no \
name`, async () => {
    const first = await upstream('first', ['echo', 'add'], { exposeUnprefixed: true });
    const second = await upstream('second', ['echo', 'sum'], { exposeUnprefixed: true });
    const flagged = await state(second);
    assert.deepEqual(flagged.collidingNames, ['echo']);
    assert.match(flagged.catalogError, /"echo" \(also upstream "first"\).*the upstream created first keeps a name/);
    assert.equal((await state(first)).catalogError, null);

    await gqlOk(env, ENABLE, { id: first, enabled: false });
    assert.equal((await state(second)).catalogError, null, 'a disabled upstream does not take the name');
    assert.deepEqual((await state(second)).collidingNames, []);
  });

  it('refuses to enable an upstream whose tools would collide, naming both upstreams and the tool', async () => {
    const first = await upstream('alpha', ['echo'], { exposeUnprefixed: true, enabled: false });
    const second = await upstream('beta', ['echo', 'other'], { exposeUnprefixed: true });
    const refused = await gql(env, ENABLE, { id: first, enabled: true });
    const error = refused.errors?.[0];
    assert.equal(error?.extensions?.['code'], 'CONFLICT', JSON.stringify(refused));
    assert.equal(error?.extensions?.['field'], 'enabled');
    assert.match(
      error!.message,
      new RegExp(
        'upstream "alpha" would expose tool names another enabled upstream already exposes: ' +
          String.raw`"echo" \(also upstream "beta"\)`,
      ),
    );
    assert.ok(!error!.message.includes('"other"'));
    assert.equal((await state(first)).enabled, false, 'still disabled');
    const viaUpdate = await gql(env, UPDATE, { id: first, input: { enabled: true } });
    assert.equal(viaUpdate.errors?.[0]?.extensions?.['field'], 'input.enabled');
    // Prefixed, "alpha__echo" collides with nothing: enabling is fine.
    assert.equal(
      (await gqlOk(env, UPDATE, { id: first, input: { enabled: true, exposeUnprefixed: false } })).updateUpstream
        .enabled,
      true,
    );
    assert.equal((await state(second)).catalogError, null);
  });

  it('lets an upstream expose names unprefixed when only a disabled upstream has them', async () => {
    const off = await upstream('off', ['sum'], { exposeUnprefixed: true, enabled: false });
    const on = await upstream('on', ['sum']);
    assert.equal(
      (await gqlOk(env, UPDATE, { id: on, input: { exposeUnprefixed: true } })).updateUpstream.exposeUnprefixed,
      true,
    );
    // …and then the disabled one cannot come back without colliding.
    assert.equal((await gql(env, ENABLE, { id: off, enabled: true })).errors?.[0]?.extensions?.['code'], 'CONFLICT');
  });

  it('warns at startup about every upstream losing names', async () => {
    await upstream('older', ['echo'], { exposeUnprefixed: true });
    await upstream('newer', ['echo'], { exposeUnprefixed: true });
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    const again = await startOnSchema(env.schema, { logger: pino({ level: 'warn' }, sink) });
    await again.close();
    const warnings = lines
      .map((line) => JSON.parse(line) as { msg: string; upstream?: string; collisions?: string[] })
      .filter((line) => line.collisions);
    assert.equal(warnings.length, 1, lines.join('\n'));
    assert.equal(warnings[0]!.upstream, 'newer');
    assert.deepEqual(warnings[0]!.collisions, ['echo']);
    assert.match(warnings[0]!.msg, /upstream newer: .*"echo" \(also upstream "older"\)/);
  });
});
