// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PortcullisError } from '../../common/src/index.ts';
import { UpstreamErrorCode } from '../../data-plane/src/upstream/upstream-errors.ts';
import type { RpcMessage } from '../../data-plane/src/upstream/upstream-router.ts';
import { DeviantUpstream, WATCHED_URI, type Deviations } from '../fixtures/deviant-upstream.ts';
import { buildConfig, startServer, testKey } from '../support/mcp-server-harness.ts';
import { legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import { DEGRADED, DOWN, PoolScope, READY, firstText, httpUpstream } from '../support/upstream-pool-harness.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Issue 12, "Upstreams the project did not write": a 2026-07-28 server written independently of the
 * SDK deviated from the spec in ways that broke every call or held requests for a minute. The
 * deviant fixture (test/fixtures/deviant-upstream.ts, the SDK's server with the deviation applied on
 * the wire) reproduces each one; the gateway carries what a model can use and fails visibly, and in
 * time, where it cannot.
 */
describe('upstreams that deviate from the spec', () => {
  const scope = new PoolScope();
  after(() => scope.close());

  async function deviant(deviations: Deviations = {}): Promise<DeviantUpstream> {
    const server = await DeviantUpstream.start(deviations);
    scope.cleanups.push(() => server.stop());
    return server;
  }

  const echo = (message: string): RpcMessage => ({
    method: 'tools/call',
    params: { name: 'echo', arguments: { message } },
  });

  test(`STRICTNESS-RESULT-TYPE: results without resultType reach agents of both eras, logged once, \
counted`, async () => {
    const server = await deviant({ omitResultType: ['tools/call'] });
    const h = scope.pool([httpUpstream('dev', server.url)]);
    await h.waitForState('dev', READY);
    assert.equal(h.connection('dev').current.protocolVersion, '2026-07-28', 'the gateway speaks 2026-07-28 to it');

    const result = await h.pool.request('dev', echo('hi'));
    assert.equal(firstText(result), 'echo: hi');
    assert.deepEqual(h.deviations, ['dev:missing_result_type']);

    const key = testKey('k1', ['dev__*']);
    const gateway = await startServer(h.pool, buildConfig([key]));
    scope.cleanups.push(() => gateway.close());
    const modern = await modernAgent(gateway.url, key.secret);
    const viaModern = await modern.callTool({ name: 'dev__echo', arguments: { message: 'modern' } });
    assert.equal(viaModern.isError, undefined, JSON.stringify(viaModern));
    assert.deepEqual(viaModern.content, [{ type: 'text', text: 'echo: modern' }]);
    const { client: legacy } = await legacyAgent(gateway.url, key.secret);
    const viaLegacy = await legacy.callTool({ name: 'dev__echo', arguments: { message: 'legacy' } });
    assert.deepEqual(viaLegacy.content, [{ type: 'text', text: 'echo: legacy' }]);
    await Promise.all([modern.close(), legacy.close()]);
    assert.equal(h.deviations.length, 3, 'each deviation is counted');
    assert.equal(h.state('dev'), READY);
  });

  test('STRICTNESS-HEALTH: an upstream whose calls all fail is DEGRADED, not READY, until one succeeds', async () => {
    const server = await deviant({ omitResultType: [], malformedTools: ['broken'] });
    const h = scope.pool([httpUpstream('sick', server.url, { healthFailureThreshold: 3 })]);
    await h.waitForState('sick', READY);
    for (let call = 1; call <= 3; call += 1) {
      await assert.rejects(
        h.pool.request('sick', { method: 'tools/call', params: { name: 'broken', arguments: {} } }),
        (error: unknown) => {
          assert.ok(error instanceof PortcullisError && error.code === UpstreamErrorCode.ERROR, String(error));
          return true;
        },
      );
      if (call < 3) assert.equal(h.state('sick'), READY, `one failure in a row (${call}) is no verdict`);
    }
    assert.equal(h.state('sick'), DEGRADED, 'three failed calls in a row, though it answers pings');
    assert.match(h.connection('sick').current.error ?? '', /the last 3 requests relayed to it failed/);
    assert.equal(h.lastReport('sick')?.state, DEGRADED, 'the control plane (GraphQL) is told');

    assert.equal(
      firstText(await h.pool.request('sick', echo('well again'))),
      'echo: well again',
      'a DEGRADED upstream is still served',
    );
    assert.equal(h.state('sick'), READY, 'a call that succeeds makes it READY again');
  });

  test(`FRAMING-NDJSON-LISTEN: a listen acked as NDJSON labelled application/json is read; ready, subscribed at \
once`, async () => {
    const server = await deviant({ omitResultType: [], ndjsonListen: true, announceListChanged: true });
    const h = scope.pool([httpUpstream('nd', server.url)], { connectTimeoutMs: 10_000, callTimeoutMs: 10_000 });
    const readyMs = await h.waitForState('nd', READY, 20_000);
    assert.ok(readyMs < 3_000, `ready in ${readyMs} ms (the connect timeout is 10 s)`);
    const updates: unknown[] = [];
    h.pool.onUpstreamNotification((upstream, notification) => {
      if (upstream === 'nd' && notification.method === 'notifications/resources/updated')
        updates.push(notification.params?.['uri']);
    });
    const started = Date.now();
    await h.pool.request('nd', { method: 'resources/subscribe', params: { uri: WATCHED_URI } });
    const subscribeMs = Date.now() - started;
    assert.ok(subscribeMs < 3_000, `subscribed in ${subscribeMs} ms (the call timeout is 10 s)`);
    server.touch();
    await eventually('the resource update', () => updates.length === 1, 5_000);
    assert.deepEqual(updates, [WATCHED_URI]);
    assert.ok(h.deviations.includes('nd:ndjson_body'), `counted: ${h.deviations.join(', ')}`);
  });

  test(`FRAMING-UNANSWERED: an unacknowledged listen holds neither readiness nor a subscribe past its \
timeout`, async () => {
    const server = await deviant({ omitResultType: [], silentListen: true, announceListChanged: true });
    const h = scope.pool([httpUpstream('mute', server.url, { callTimeoutMs: 1_500 })], { connectTimeoutMs: 10_000 });
    const readyMs = await h.waitForState('mute', READY, 20_000);
    assert.ok(
      readyMs < 5_000,
      `ready in ${readyMs} ms although its listen is never acknowledged (the connect timeout is 10 s)`,
    );
    assert.equal(firstText(await h.pool.request('mute', echo('still served'))), 'echo: still served');

    const started = Date.now();
    await assert.rejects(
      h.pool.request('mute', { method: 'resources/subscribe', params: { uri: WATCHED_URI } }),
      (error: unknown) => {
        assert.ok(error instanceof PortcullisError && error.code === UpstreamErrorCode.TIMEOUT, String(error));
        assert.match(error.message, /within 1500 ms/);
        return true;
      },
    );
    const failedMs = Date.now() - started;
    assert.ok(failedMs >= 1_400 && failedMs < 4_000, `the subscribe failed after ${failedMs} ms (its timeout: 1.5 s)`);

    const second = Date.now();
    await assert.rejects(
      h.pool.request('mute', { method: 'resources/subscribe', params: { uri: WATCHED_URI } }, { timeoutMs: 500 }),
    );
    assert.ok(Date.now() - second < 2_000, 'a subscribe queued behind an unanswered one still ends at its own timeout');
  });

  test(`PROTOCOL-VERSION-SETTING: protocolVersion pins what the node speaks to a server whose 2026-07-28 is \
broken`, async () => {
    const server = await deviant({ omitResultType: ['tools/call'] });
    const h = scope.pool([
      httpUpstream('auto', server.url),
      httpUpstream('legacy', server.url, { protocolVersion: 'legacy' }),
      httpUpstream('rev', server.url, { protocolVersion: '2025-06-18' }),
      httpUpstream('modern', server.url, { protocolVersion: 'modern' }),
      httpUpstream('bogus', server.url, { protocolVersion: '2019-01-01' }),
    ]);
    for (const name of ['auto', 'legacy', 'rev', 'modern']) await h.waitForState(name, READY);
    assert.equal(h.connection('auto').current.protocolVersion, '2026-07-28');
    assert.equal(
      h.connection('legacy').current.protocolVersion,
      '2025-11-25',
      'the 2025 handshake, newest 2025 revision',
    );
    assert.equal(h.connection('rev').current.protocolVersion, '2025-06-18', 'exactly the pinned revision');
    assert.equal(h.connection('modern').current.protocolVersion, '2026-07-28');
    for (const name of ['legacy', 'rev'])
      assert.equal(firstText(await h.pool.request(name, echo(name))), `echo: ${name}`);
    assert.deepEqual(h.deviations, [], 'a 2025-era connection never meets the missing resultType');

    await h.waitForState('bogus', DOWN);
    assert.match(h.connection('bogus').current.error ?? '', /protocolVersion "2019-01-01" is not one this node speaks/);
  });
});
