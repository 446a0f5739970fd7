import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seedKeys } from '../../bench/src/scenarios/tools-list.ts';
import { startTestEnv } from '../support/test-env.ts';

/** The bench's tools/list rows run with thousands of keys configured, created through GraphQL in batches of 1,000. */
test('bench: seedKeys creates keys in batches of 1,000 within the control plane’s default GraphQL limits', async () => {
  await using env = await startTestEnv({ controlPlane: 'in-process' });
  const created = await seedKeys(env, 1_200, 60_000);
  assert.equal(created, 1_200);
  const database = await env.openDatabase(1);
  const rows: { name: string }[] = await database.query(
    "SELECT name FROM virtual_keys WHERE name LIKE 'seed-%' ORDER BY name",
  );
  const seeded = rows.map((r) => r.name);
  assert.equal(seeded.length, 1_200);
  assert.ok(seeded.includes('seed-0') && seeded.includes('seed-1199'), 'both batches arrived');
});
