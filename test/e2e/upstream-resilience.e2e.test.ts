// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PortcullisError } from '../../common/src/index.ts';
import { UpstreamErrorCode } from '../../data-plane/src/upstream/upstream-errors.ts';
import { freePort } from '../support/processes.ts';
import {
  DEGRADED,
  DOWN,
  PoolScope,
  READY,
  everythingStdio,
  firstText,
  httpUpstream,
} from '../support/upstream-pool-harness.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';
import { eventually } from '../support/eventually.ts';

describe('upstream resilience: crashes, restarts, expired sessions, health', () => {
  const scope = new PoolScope();
  const { cleanups, pool } = scope;
  after(() => scope.close());

  async function fixture(kind: 'sessionful-2025' | 'modern-2026', port?: number): Promise<SdkHttpFixture> {
    const started = await SdkHttpFixture.start(kind, port === undefined ? {} : { port });
    cleanups.push(() => started.stop());
    return started;
  }

  test(`UP-STDIO-KILL-INFLIGHT UP-STDIO-RESTART: killing a stdio upstream mid-call fails the call at once naming the \
upstream; others keep working; it restarts`, async (t) => {
    const other = await fixture('sessionful-2025');
    const h = pool([everythingStdio('crashy'), httpUpstream('other', other.url)]);
    await h.waitForState('crashy', READY);
    await h.waitForState('other', READY);
    const pid = h.connection('crashy').pid;
    assert.ok(pid, 'the server process is known');

    const call = h.pool.request('crashy', {
      method: 'tools/call',
      params: { name: 'trigger-long-running-operation', arguments: { duration: 10, steps: 10 } },
    });
    const outcome = call.then(
      () => ({ error: undefined, at: Date.now() }),
      (error: unknown) => ({ error, at: Date.now() }),
    );
    await eventually('the call is in flight', () => h.connection('crashy').inflightCount === 1);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const { error, at } = await outcome;
    assert.ok(error instanceof PortcullisError, `rejected with a PortcullisError: ${String(error)}`);
    assert.equal(error.code, UpstreamErrorCode.UNAVAILABLE);
    assert.match(error.message, /upstream "crashy"/);
    assert.ok(at - killedAt < 500, `failed ${at - killedAt} ms after the kill`);

    const meanwhile = await h.pool.request('other', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'still here' } },
    });
    assert.equal(firstText(meanwhile), 'echo: still here');

    const restartMs = await h.waitForState('crashy', READY, 10_000);
    assert.notEqual(h.connection('crashy').pid, pid, 'a new server process');
    const again = await h.pool.request('crashy', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'back' } },
    });
    assert.equal(firstText(again), 'Echo: back');
    t.diagnostic(`restart after a crash mid-call: ${restartMs} ms`);
  });

  test('UP-STDIO-RESTART: a stdio upstream that exits while idle shows DOWN with why, and is restarted', async (t) => {
    const h = pool([everythingStdio('idle')]);
    await h.waitForState('idle', READY);
    const pid = h.connection('idle').pid!;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await h.waitForState('idle', DOWN, 2_000);
    assert.match(h.connection('idle').current.error ?? '', /exited/);
    assert.ok(
      h.reports.some((r) => r.state === DOWN && /exited/.test(r.error)),
      'DOWN reported to the control plane',
    );
    await h.waitForState('idle', READY, 10_000);
    const restartMs = Date.now() - killedAt;
    assert.ok(restartMs < 5_000, `restarted within ${restartMs} ms`);
    t.diagnostic(`restart after an idle crash: ${restartMs} ms`);
  });

  test(`UP-HTTP-RECONNECT UP-HEALTH: an HTTP upstream that stops goes DOWN (pings fail), and READY again when it is \
back`, async (t) => {
    const port = await freePort();
    const server = await fixture('sessionful-2025', port);
    const h = pool([httpUpstream('flaky', server.url, { healthIntervalMs: 100, healthFailureThreshold: 2 })]);
    await h.waitForState('flaky', READY);
    await server.stop();
    await h.waitForState('flaky', DOWN, 5_000);
    await assert.rejects(
      h.pool.request('flaky', { method: 'tools/list' }),
      (e: PortcullisError) => e.code === UpstreamErrorCode.UNAVAILABLE && /"flaky"/.test(e.message),
    );
    await server.restart();
    const backMs = await h.waitForState('flaky', READY, 10_000);
    const result = await h.pool.request('flaky', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'again' } },
    });
    assert.equal(firstText(result), 'echo: again');
    t.diagnostic(`ready ${backMs} ms after the server came back`);
  });

  test(`UP-HEALTH: failing pings make an upstream DEGRADED, then DOWN at the threshold; it reconnects when pings \
pass`, async () => {
    const server = await fixture('sessionful-2025');
    const h = pool([httpUpstream('sick', server.url, { healthIntervalMs: 100, healthFailureThreshold: 3 })]);
    await h.waitForState('sick', READY);
    server.state.failPings = true;
    await h.waitForState('sick', DEGRADED, 3_000);
    assert.match(h.connection('sick').current.error ?? '', /health check failed 1\/3/);
    // Calls still go through while degraded.
    const during = await h.pool.request('sick', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'degraded' } },
    });
    assert.equal(firstText(during), 'echo: degraded');
    await h.waitForState('sick', DOWN, 3_000);
    assert.match(h.lastReport('sick')?.error ?? '', /health check failed 3\/3/);
    server.state.failPings = false;
    await h.waitForState('sick', READY, 10_000);
  });

  test(`UP-SESSION-REINIT: an HTTP upstream that forgot the session (404) is re-initialized transparently; safe calls \
are retried once, unsafe ones are not`, async () => {
    const port = await freePort();
    const server = await fixture('sessionful-2025', port);
    const h = pool([httpUpstream('amnesiac', server.url)]);
    await h.waitForState('amnesiac', READY);
    const before = h.connection('amnesiac').current;

    await server.restart();
    const safe = await h.pool.request('amnesiac', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'after restart' } },
    });
    assert.equal(firstText(safe), 'echo: after restart');
    assert.equal(h.state('amnesiac'), READY);
    assert.notEqual(h.connection('amnesiac').current, before, 'the connection was re-initialized');
    const list = await h.pool.request('amnesiac', { method: 'tools/list' });
    assert.ok(Array.isArray(list['tools']));

    await server.restart();
    await assert.rejects(
      h.pool.request('amnesiac', { method: 'tools/call', params: { name: 'bump', arguments: {} } }),
      (e: PortcullisError) =>
        e.code === UpstreamErrorCode.UNAVAILABLE && /"amnesiac"/.test(e.message) && /not safe/.test(e.message),
    );
    assert.equal(server.state.bumps, 0, 'the unsafe call never ran twice (nor once: its session was gone)');
    const bumped = await h.pool.request('amnesiac', { method: 'tools/call', params: { name: 'bump', arguments: {} } });
    assert.equal(firstText(bumped), 'bumps: 1');
    assert.equal(h.state('amnesiac'), READY);
  });

  test(`UP-ERA-2026 UP-HEALTH: a 2026-07-28 upstream is health-checked with server/discover (it has no ping) and \
stays READY`, async () => {
    const server = await fixture('modern-2026');
    const h = pool([httpUpstream('modern', server.url, { healthIntervalMs: 50, healthFailureThreshold: 1 })]);
    await h.waitForState('modern', READY);
    const discovers = () => server.state.headers.filter((hd) => hd['mcp-method'] === 'server/discover').length;
    const seen = discovers();
    await eventually('two more health probes', () => discovers() >= seen + 2, 3_000);
    assert.equal(h.state('modern'), READY);
  });
});
