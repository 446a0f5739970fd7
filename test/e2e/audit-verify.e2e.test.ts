/**
 * `portcullis audit verify` and `portcullis audit export` against a real trail: records made by an
 * SDK agent through a node, then altered, inserted and deleted directly in PostgreSQL by the table
 * owner (disabling the append-only trigger), and each named by id.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { connectLegacyAgent } from '../support/agents.ts';
import { TEST_DATABASE_URL } from '../support/database.ts';
import { cliArgs } from '../support/processes.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

const run = promisify(execFile);

async function cli(args: readonly string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, cliArgs(args), { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

describe('audit verify and export', () => {
  let env: TestEnv;
  let database: string[];
  const CALLS = 12;

  before(async () => {
    env = await startTestEnv({
      schemaPrefix: 'audit_verify',
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'k' }],
    });
    const node = await env.startNode('verify-node');
    await env.keysReachedNodes();
    database = ['--database-url', TEST_DATABASE_URL, '--database-schema', env.schema.name];
    const { client } = await connectLegacyAgent(node.mcpUrl, env.key.secret);
    try {
      for (let i = 0; i < CALLS; i++) await client.callTool({ name: 'ev__echo', arguments: { message: `m${i}` } });
    } finally {
      await client.close();
    }
    await eventually('every call stored', async () => {
      const [row] = await env.schema.query<{ n: string }>(
        `SELECT count(*) AS n FROM audit_events WHERE kind = 'tool_call'`,
      );
      return Number(row!.n) === CALLS;
    });
  });
  after(() => env?.dispose());

  it('exports the records as NDJSON, filtered', async () => {
    const { code, stdout } = await cli(['audit', 'export', ...database, '--kind', 'tool_call', '--tool', 'ev__echo']);
    assert.equal(code, 0, stdout);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; arguments: string });
    assert.equal(lines.length, CALLS);
    assert.deepEqual(JSON.parse(lines[0]!.arguments), { message: 'm0' });
    assert.ok(lines.every((l) => l.kind === 'tool_call'));
  });

  it('finds an intact chain intact, then names each altered, inserted and deleted row by id', async () => {
    const intact = await cli(['audit', 'verify', ...database]);
    assert.equal(intact.code, 0, intact.stdout);
    assert.match(intact.stdout, /^OK: checked \d+ rows/m);

    const rows = await env.schema.query<{ id: string; seq: string }>(
      `SELECT id::text AS id, seq::text AS seq FROM audit_events WHERE kind = 'tool_call' ORDER BY seq`,
    );
    const altered = rows[2]!;
    const deleted = rows[5]!;
    const inserted = '0190a000-0000-7000-8000-000000000001';
    // As the table owner, bypassing the append-only guard.
    await env.schema.query(`ALTER TABLE audit_events DISABLE TRIGGER USER`);
    await env.schema.query(`UPDATE audit_events SET arguments = '{"message":"forged"}' WHERE id = $1`, [altered.id]);
    await env.schema.query(`DELETE FROM audit_events WHERE id = $1`, [deleted.id]);
    await env.schema.query(
      `INSERT INTO audit_events (id, time, seq, prev_id, hash, node_id, kind, status, latency_us, gateway_latency_us)
       SELECT $1, time, seq, prev_id, hash, node_id, kind, status, latency_us, gateway_latency_us
         FROM audit_events WHERE id = $2`,
      [inserted, rows[8]!.id],
    );
    await env.schema.query(`ALTER TABLE audit_events ENABLE TRIGGER USER`);

    const broken = await cli(['audit', 'verify', ...database]);
    assert.equal(broken.code, 1, broken.stdout);
    const problems = broken.stdout
      .split('\n')
      .filter((l) => /^(ALTERED|INSERTED|MISSING) /.test(l))
      .sort();
    assert.deepEqual(problems, [
      `ALTERED seq=${altered.seq} id=${altered.id}`,
      `INSERTED seq=${rows[8]!.seq} id=${inserted}`,
      `MISSING seq=${deleted.seq} id=${deleted.id}`,
    ]);
  });
});
