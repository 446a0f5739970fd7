import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_DATABASE_URL } from '../support/database.ts';
import { FaultProxy, simpleQueryBytes } from '../support/fault-proxy.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { ADMIN_TOKEN } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Faults finding of issue 12: a database that hangs (rather than refusing connections) stalled every
 * mutation indefinitely, and the mutations committed when it came back, long after their callers
 * gave up (79 of 79 timed out client-side; all applied 12 minutes later).
 */

const STATEMENT_TIMEOUT_MS = 1_500;
const CONNECT_TIMEOUT_MS = 1_000;
const CREATE_TEAM = 'mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id name } }';

interface Answer {
  status: number | 'no answer';
  code: string | undefined;
  message: string | undefined;
  ms: number;
}

/** One GraphQL request that gives up (as the reported callers did) after `giveUpMs`. */
async function ask(
  plane: { graphqlUrl: string },
  query: string,
  variables: Record<string, unknown>,
  giveUpMs = 20_000,
): Promise<Answer> {
  const started = performance.now();
  try {
    const response = await fetch(plane.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(giveUpMs),
    });
    const body = (await response.json()) as { errors?: Array<{ message: string; extensions?: { code?: string } }> };
    return {
      status: response.status,
      code: body.errors?.[0]?.extensions?.code,
      message: body.errors?.[0]?.message,
      ms: performance.now() - started,
    };
  } catch {
    return { status: 'no answer', code: undefined, message: undefined, ms: performance.now() - started };
  }
}

describe('a database that hangs stalls every mutation indefinitely', () => {
  let proxy: FaultProxy;
  let plane: TestEnv;

  before(async () => {
    proxy = await FaultProxy.start({ host: '127.0.0.1', port: Number(new URL(TEST_DATABASE_URL).port || 5432) });
    plane = await startTestEnv({
      schemaPrefix: 'db_hang',
      controlPlane: 'in-process',
      overrides: {
        databaseUrl: proxy.urlFor(TEST_DATABASE_URL),
        databaseStatementTimeoutMs: STATEMENT_TIMEOUT_MS,
        databaseConnectTimeoutMs: CONNECT_TIMEOUT_MS,
        // Nothing but the mutations under test touches the database while it hangs.
        snapshotPollIntervalMs: 0,
      },
    });
  });

  after(async () => {
    await plane?.dispose();
    await proxy?.close();
  });

  test('mutations fail fast with DATABASE_TIMEOUT or DATABASE_UNAVAILABLE, none applied when it is back', async () => {
    proxy.hang();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ask(plane, CREATE_TEAM, { input: { name: `hang-${i}` } })),
    );
    const slowest = Math.max(...answers.map((a) => a.ms));
    console.log(
      `20 mutations while the database hung: codes ${[...new Set(answers.map((a) => a.code))].join(', ')}, ` +
        `slowest answer ${slowest.toFixed(0)} ms`,
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200, 'each mutation is answered');
      assert.ok(
        answer.code === 'DATABASE_TIMEOUT' || answer.code === 'DATABASE_UNAVAILABLE',
        `a clear code, not ${answer.code}: ${answer.message}`,
      );
      assert.match(answer.message ?? '', /not applied/);
    }
    // Each waits for a connection (connect timeout) and then for its statement (statement timeout) at most.
    assert.ok(
      slowest < 2 * (CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS) + 2_000,
      `answered within the timeouts (${slowest.toFixed(0)} ms)`,
    );

    // The database comes back and processes everything it was sent meanwhile.
    await proxy.resume();
    await eventually(
      'the control plane writes again',
      async () => (await ask(plane, CREATE_TEAM, { input: { name: 'after-hang' } })).code === undefined,
      15_000,
    );
    const applied = await plane.schema.query<{ name: string }>(`SELECT name FROM teams WHERE name LIKE 'hang-%'`);
    assert.deepEqual(applied, [], 'no mutation that failed was applied later');
  });

  test('a COMMIT the database reaches only after the deadline is refused by it', async () => {
    // The database hangs at the exact moment it receives the COMMIT: the change reached the server.
    proxy.hangWhenSent(simpleQueryBytes('COMMIT'));
    const answer = await ask(plane, CREATE_TEAM, { input: { name: 'late-commit' } });
    assert.equal(answer.code, 'DATABASE_TIMEOUT', answer.message);
    assert.match(answer.message ?? '', /applied only if the database committed it within/);
    // Past the deadline the database gets the COMMIT (the client gave up and closed meanwhile). A fixed time on
    // purpose: the COMMIT is to arrive late, and nothing happens in between that could be waited on.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await proxy.resume();
    const applied = await plane.schema.query<{ name: string }>(`SELECT name FROM teams WHERE name = 'late-commit'`);
    assert.deepEqual(applied, [], 'the late COMMIT was refused');
  });
});
