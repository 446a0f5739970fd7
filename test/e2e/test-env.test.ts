import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestSchema, TEST_DATABASE_URL } from '../support/database.ts';
import type { TestNode } from './control-plane-harness.ts';
import { startTestEnv } from '../support/test-env.ts';

async function schemasLike(prefix: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ schema_name: string }>(
      'SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE $1',
      [`${prefix}%`],
    );
    return rows.map((row) => row.schema_name);
  } finally {
    await client.end();
  }
}

test('startTestEnv: leaving an `await using` block stops what it started and drops its schema', async () => {
  const prefix = `testenv_${randomBytes(3).toString('hex')}`;
  let graphqlUrl = '';
  let stream: TestNode | undefined;
  {
    await using env = await startTestEnv({
      schemaPrefix: prefix,
      controlPlane: 'in-process',
      configStreams: ['probe'],
    });
    graphqlUrl = env.graphqlUrl;
    stream = env.configStreams[0];
    assert.ok((await env.gqlOk<{ config: { version: string } }>('{ config { version } }')).config.version);
    assert.deepEqual(await schemasLike(prefix), [env.schema.name]);
  }
  assert.deepEqual(await schemasLike(prefix), [], 'the schema is dropped');
  await assert.rejects(fetch(graphqlUrl), 'the control plane no longer listens');
  assert.ok(await stream?.ended, 'the config stream ended');
});

test('startTestEnv: a start that fails part-way cleans up what it had started', async () => {
  const prefix = `testenv_${randomBytes(3).toString('hex')}`;
  await assert.rejects(
    startTestEnv({
      schemaPrefix: prefix,
      controlPlane: 'in-process',
      upstreams: [{ name: 'not a valid name!', transport: 'STDIO', command: 'node' }],
    }),
    /GraphQL failed/,
  );
  assert.deepEqual(await schemasLike(prefix), [], 'the schema is dropped');
});

test('createTestSchema: dropping goes through a deadlock with a statement still running in the schema', async () => {
  const schema = await createTestSchema('testenv_deadlock');
  await schema.query('CREATE TABLE first (a int); CREATE TABLE second (a int)');
  // A backend left from a killed process: in a transaction, holding the second table, and about to read the first.
  const left = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path="${schema.name}"` });
  await left.connect();
  try {
    await left.query('BEGIN');
    await left.query('SELECT * FROM second');
    const dropped = schema.drop();
    // The drop has locked the first table and waits for the second: reading the first closes the cycle, and
    // PostgreSQL aborts the drop (it waited first). Seen on this machine each time.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await left.query('SELECT * FROM first');
    await left.query('COMMIT');
    await dropped;
  } finally {
    await left.end();
  }
  assert.deepEqual(await schemasLike(schema.name), [], 'the schema is dropped');
});
