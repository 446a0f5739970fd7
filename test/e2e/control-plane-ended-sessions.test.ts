// The control plane's table of ended 2025-era sessions (EndedSessionStore) on the real PostgreSQL:
// background writes that survive a failing database, and pruning of rows past their expiry.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { EndedSessionStore } from '../../control-plane/src/services/ended-sessions.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

describe('DN-RELAY-SESSION-ENDED-DURABLE: the ended-sessions table', () => {
  let env: TestEnv;
  let dataSource: DataSource;

  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'ended', controlPlane: 'none' });
    dataSource = await env.openDatabase();
  });
  after(async () => {
    await env?.dispose();
  });

  async function start(options: Parameters<typeof EndedSessionStore.start>[2] = {}): Promise<EndedSessionStore> {
    const store = await EndedSessionStore.start(dataSource, testLogger(), options);
    env.defer(() => store.close());
    return store;
  }

  const count = async (sessionId: string) =>
    Number(
      (
        await env.schema.query<{ n: string }>(`SELECT count(*) AS n FROM ended_sessions WHERE session_id = $1`, [
          sessionId,
        ])
      )[0]!.n,
    );

  it(`writes in the background, keeps what a failing database refused and writes it once the database answers \
again`, async () => {
    const store = await start({ retryDelayMs: 20, maxRetryDelayMs: 40 });
    const expiresAt = Date.now() + 60_000;
    store.record({ sessionId: 'first.sig', keyId: 'k1', fromNodeId: 'node-a', expiresAt });
    await eventually('the first ended session is written', async () => (await count('first.sig')) === 1, 5_000);

    // The table is unreachable (as during an outage): the write fails and is retried, nothing is lost.
    await env.schema.query(`ALTER TABLE ended_sessions RENAME TO ended_sessions_away`);
    try {
      store.record({ sessionId: 'second.sig', keyId: 'k1', fromNodeId: 'node-a', expiresAt });
      await eventually('the write failed and is pending', () => store.pendingCount === 1, 5_000);
      // A fixed time on purpose: nothing is to change in it while several retries (every 20-40 ms) fail.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(store.pendingCount, 1, 'still pending while the table is away');
    } finally {
      await env.schema.query(`ALTER TABLE ended_sessions_away RENAME TO ended_sessions`);
    }
    await eventually(
      'the retried write landed',
      async () => (await count('second.sig')) === 1 && store.pendingCount === 0,
      5_000,
    );
    const live = (await store.live()).map((entry) => entry.sessionId).sort();
    assert.deepEqual(live, ['first.sig', 'second.sig']);
    // Idempotent: the same session recorded again (a node re-announcing it) stays one row.
    store.record({ sessionId: 'first.sig', keyId: 'k1', fromNodeId: 'node-b', expiresAt });
    await eventually('the duplicate was handled', () => store.pendingCount === 0, 5_000);
    assert.equal(await count('first.sig'), 1);
  });

  it('prunes rows past their expiry periodically, and never returns them', async () => {
    let now = Date.now();
    const store = await start({ pruneIntervalMs: 30, readFreshnessMs: 0, now: () => now });
    store.record({ sessionId: 'soon.sig', keyId: 'k1', fromNodeId: 'node-a', expiresAt: now + 1_000 });
    store.record({ sessionId: 'later.sig', keyId: 'k1', fromNodeId: 'node-a', expiresAt: now + 3_600_000 });
    await eventually(
      'both are written',
      async () => (await count('soon.sig')) === 1 && (await count('later.sig')) === 1,
      5_000,
    );
    now += 2_000;
    assert.ok(!(await store.live()).some((entry) => entry.sessionId === 'soon.sig'), 'an expired row is not read back');
    await eventually('the periodic prune removed the expired row', async () => (await count('soon.sig')) === 0, 5_000);
    assert.equal(await count('later.sig'), 1, 'the live row is kept');
  });
});
