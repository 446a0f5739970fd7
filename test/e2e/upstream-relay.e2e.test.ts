// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PortcullisError } from '../../common/src/index.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';
import { UpstreamErrorCode } from '../../data-plane/src/upstream/upstream-errors.ts';
import type { CatalogKind, RpcMessage } from '../../data-plane/src/upstream/upstream-router.ts';
import type { RunningProcess } from '../support/processes.ts';
import { startEverythingHttp } from '../support/processes.ts';
import { conformanceFixtureStdioCommand, startConformanceFixtureHttp } from '../support/conformance.ts';
import {
  PoolScope,
  READY,
  everythingStdio,
  firstText,
  httpUpstream,
  stdioUpstream,
} from '../support/upstream-pool-harness.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';
import { eventually } from '../support/eventually.ts';

describe('upstream relay: progress, cancellation, server requests, notifications, list changes, pinning, names', () => {
  const scope = new PoolScope();
  const { cleanups, pool } = scope;
  let everythingHttp: { process: RunningProcess; url: string };

  before(async () => {
    everythingHttp = await startEverythingHttp();
    cleanups.push(() => everythingHttp.process.stop());
  });

  after(() => scope.close());

  async function fixture(kind: 'sessionful-2025' | 'modern-2026' = 'sessionful-2025'): Promise<SdkHttpFixture> {
    const started = await SdkHttpFixture.start(kind);
    cleanups.push(() => started.stop());
    return started;
  }

  test(`UP-RELAY-PROGRESS: progress reaches the caller under the agent's own token, and resets the call \
timeout`, async () => {
    const server = await fixture();
    const h = pool([httpUpstream('prog', server.url)]);
    await h.waitForState('prog', READY);
    await h.pool.request('prog', { method: 'tools/call', params: { name: 'echo', arguments: { message: 'warm up' } } });
    const seen: Record<string, unknown>[] = [];
    const result = await h.pool.request(
      'prog',
      { method: 'tools/call', params: { name: 'slow', arguments: { steps: 12 } } },
      // 12 steps of 20 ms outlast the 150 ms timeout; each progress notification resets it.
      { meta: { progressToken: 'agent-token-7', traceTag: 'kept' }, onProgress: (p) => seen.push(p), timeoutMs: 150 },
    );
    assert.equal(firstText(result), 'done after 12 steps');
    assert.deepEqual(
      seen.map((p) => [p['progressToken'], p['progress'], p['total']]),
      Array.from({ length: 12 }, (_, i) => ['agent-token-7', i + 1, 12]),
    );
    assert.equal(seen[0]!['message'], 'step 1');
  });

  test(`UP-RELAY-PROGRESS-ORDER: a 2026-07-28 upstream over stdio, whose last progress arrives in one read with its \
result: every progress reaches the caller`, async () => {
    const { command, args } = conformanceFixtureStdioCommand();
    const h = pool([stdioUpstream('conf', command, args)]);
    await h.waitForState('conf', READY, 30_000);
    assert.equal(h.connection('conf').current.protocolVersion, '2026-07-28', "relayed on the SDK client's path");
    // The SDK client alone dropped the last of the three in most calls; ten calls in a row show it.
    for (let call = 0; call < 10; call += 1) {
      const seen: unknown[] = [];
      await h.pool.request(
        'conf',
        { method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {} } },
        {
          meta: { progressToken: `agent-${call}` },
          onProgress: (p) => void seen.push([p['progressToken'], p['progress']]),
        },
      );
      assert.deepEqual(
        seen,
        [
          [`agent-${call}`, 0],
          [`agent-${call}`, 50],
          [`agent-${call}`, 100],
        ],
        `call ${call}`,
      );
    }
  });

  test(`UP-PARAM-HEADERS: a tools/call to a 2026-07-28 upstream carries the Mcp-Param-* headers its tool declares, so \
the upstream accepts it`, async () => {
    const upstream = await startConformanceFixtureHttp();
    cleanups.push(() => upstream.process.stop());
    const h = pool([httpUpstream('conf', upstream.url)]);
    await h.waitForState('conf', READY, 30_000);
    // The fixture (an SDK v2 server) refuses the call with -32020 when Mcp-Param-Region is missing or differs.
    for (const region of ['eu-west', 'Zürich', ' padded ']) {
      const result = await h.pool.request('conf', {
        method: 'tools/call',
        params: { name: 'test_custom_headers', arguments: { region, query: 'q' } },
      });
      assert.equal(firstText(result), `Custom header tool called with: ${JSON.stringify({ region, query: 'q' })}`);
    }
  });

  test(`UP-RELAY-CANCEL: aborting a relayed call rejects it at once and tells the upstream \
(notifications/cancelled)`, async () => {
    const server = await fixture();
    const h = pool([httpUpstream('cancel', server.url)]);
    await h.waitForState('cancel', READY);
    const abort = new AbortController();
    const call = h.pool.request(
      'cancel',
      { method: 'tools/call', params: { name: 'slow', arguments: { steps: 200 } } },
      { cancellation: signalCancellation(abort.signal) },
    );
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(
      call,
      (e: PortcullisError) => e.code === UpstreamErrorCode.CANCELLED && /"cancel"/.test(e.message),
    );
    await eventually('the upstream saw the cancellation', () => server.state.cancelled === 1, 3_000);
  });

  test(`UP-RELAY-SERVER-REQUEST: over Streamable HTTP, concurrent elicitation and sampling requests reach the \
onRequest of the call that caused them`, async () => {
    const h = pool([httpUpstream('every', everythingHttp.url)]);
    await h.waitForState('every', READY);
    const asked: Record<string, string[]> = { elicit: [], sample: [], bystander: [] };
    const handler = (who: string, answer: Record<string, unknown>) => async (request: RpcMessage) => {
      asked[who]!.push(request.method);
      if (request.method === 'roots/list') return { roots: [] };
      await new Promise((r) => setTimeout(r, 30));
      return answer;
    };
    const [elicited, sampled, bystander] = await Promise.all([
      h.pool.request(
        'every',
        { method: 'tools/call', params: { name: 'trigger-elicitation-request', arguments: {} } },
        {
          onRequest: handler('elicit', {
            action: 'accept',
            content: { name: 'Ada', color: 'red', number: 7, pets: 'cats' },
          }),
        },
      ),
      h.pool.request(
        'every',
        { method: 'tools/call', params: { name: 'trigger-sampling-request', arguments: { prompt: 'hi' } } },
        {
          onRequest: handler('sample', {
            model: 'test-model',
            role: 'assistant',
            content: { type: 'text', text: 'sampled words' },
          }),
        },
      ),
      h.pool.request(
        'every',
        {
          method: 'tools/call',
          params: { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
        },
        { onRequest: handler('bystander', {}) },
      ),
    ]);
    // server-everything may ask the first call it serves for the client's roots; nothing else reaches a bystander.
    assert.deepEqual(
      { ...asked, bystander: asked['bystander']!.filter((m) => m !== 'roots/list') },
      { elicit: ['elicitation/create'], sample: ['sampling/createMessage'], bystander: [] },
    );
    assert.match(JSON.stringify(elicited), /User provided the requested information/);
    assert.match(JSON.stringify(sampled), /sampled words/);
    assert.ok(Array.isArray(bystander['content']));
  });

  test(`UP-RELAY-SERVER-REQUEST: over stdio the request goes to the only call in flight, or to the oldest when all in \
flight are one agent's; with no handler, or calls of several agents in flight, the upstream is answered with an \
error`, async () => {
    const h = pool([everythingStdio('local')]);
    await h.waitForState('local', READY);
    await eventually(
      'elicitation tool offered',
      () => h.pool.find('tools', 'local__trigger-elicitation-request') !== undefined,
    );
    const methods: string[] = [];
    const result = await h.pool.request(
      'local',
      { method: 'tools/call', params: { name: 'trigger-elicitation-request', arguments: {} } },
      {
        onRequest: async (request) => {
          methods.push(request.method);
          return { action: 'decline' };
        },
      },
    );
    assert.deepEqual(methods, ['elicitation/create']);
    assert.match(JSON.stringify(result), /declined|decline/i);
    const refused = await h.pool.request('local', {
      method: 'tools/call',
      params: { name: 'trigger-elicitation-request', arguments: {} },
    });
    assert.equal(refused['isError'], true);
    assert.match(firstText(refused), /-32601: Method not found: the agent cannot answer elicitation\/create/);
    // Two calls in flight over stdio: the protocol does not say which one asked, so the upstream is refused rather than
    // guessed.
    const asked: string[] = [];
    const [ambiguous] = await Promise.all([
      h.pool.request(
        'local',
        { method: 'tools/call', params: { name: 'trigger-elicitation-request', arguments: {} } },
        { onRequest: async (r) => (asked.push(r.method), { action: 'decline' }) },
      ),
      h.pool.request(
        'local',
        {
          method: 'tools/call',
          params: { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 2 } },
        },
        { onRequest: async (r) => (asked.push(r.method), { action: 'decline' }) },
      ),
    ]);
    assert.deepEqual(
      asked.filter((m) => m !== 'roots/list'),
      [],
    );
    assert.match(
      firstText(ambiguous),
      /cannot relate elicitation\/create to an agent's request \(2 requests of different agents in flight/,
    );
    // The same two calls from one agent: whichever asked, that agent answers; the oldest call's handler is asked.
    const mine: string[] = [];
    const theirs: string[] = [];
    const [answered] = await Promise.all([
      h.pool.request(
        'local',
        { method: 'tools/call', params: { name: 'trigger-elicitation-request', arguments: {} } },
        { agent: 'session-1', onRequest: async (r) => (mine.push(r.method), { action: 'decline' }) },
      ),
      h.pool.request(
        'local',
        {
          method: 'tools/call',
          params: { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 2 } },
        },
        { agent: 'session-1', onRequest: async (r) => (theirs.push(r.method), { action: 'decline' }) },
      ),
    ]);
    assert.deepEqual(
      [...mine, ...theirs].filter((m) => m !== 'roots/list'),
      ['elicitation/create'],
    );
    assert.match(JSON.stringify(answered), /decline/i);
  });

  test(`UP-RELAY-SERVER-REQUEST UP-ERA-2026: a 2026-07-28 upstream's input_required elicitation is answered through \
the call's onRequest`, async () => {
    const server = await fixture('modern-2026');
    const h = pool([httpUpstream('modern', server.url)]);
    await h.waitForState('modern', READY);
    const asked: RpcMessage[] = [];
    const result = await h.pool.request(
      'modern',
      { method: 'tools/call', params: { name: 'ask', arguments: {} } },
      {
        onRequest: async (request) => {
          asked.push(request);
          return { action: 'accept', content: { colour: 'teal' } };
        },
      },
    );
    assert.equal(firstText(result), 'colour: teal');
    assert.equal(asked[0]?.method, 'elicitation/create');
    assert.equal(asked[0]?.params?.['message'], 'Favourite colour?');
  });

  test(`UP-RELAY-NOTIFICATIONS: a notification sent during a call goes to its onNotification; one sent outside any \
call goes to onUpstreamNotification`, async () => {
    const server = await fixture();
    const h = pool([httpUpstream('chatty', server.url)]);
    await h.waitForState('chatty', READY);
    const unrelated: [string, RpcMessage][] = [];
    h.pool.onUpstreamNotification((upstream, notification) => unrelated.push([upstream, notification]));
    const related: RpcMessage[] = [];
    await h.pool.request('chatty', { method: 'logging/setLevel', params: { level: 'debug' } });
    await h.pool.request(
      'chatty',
      { method: 'tools/call', params: { name: 'log', arguments: {} } },
      { onNotification: (n) => related.push(n) },
    );
    assert.deepEqual(
      related.map((n) => [n.method, n.params?.['data']]),
      [['notifications/message', 'working on it']],
    );
    await h.pool.request(
      'chatty',
      { method: 'tools/call', params: { name: 'announce', arguments: {} } },
      { onNotification: (n) => related.push(n) },
    );
    await eventually('the unrelated notification arrived', () => unrelated.length > 0, 3_000);
    assert.deepEqual(unrelated, [
      ['chatty', { method: 'notifications/message', params: { level: 'info', data: 'broadcast' } }],
    ]);
    assert.equal(related.length, 1);
  });

  test(`UP-LIST-CHANGED: tools/list_changed refreshes the catalog, fires onCatalogChanged and onToolsChanged, and \
reaches the next report (both eras)`, async () => {
    const legacy = await fixture();
    const modern = await fixture('modern-2026');
    const h = pool([httpUpstream('dyn', legacy.url), httpUpstream('dyn26', modern.url)]);
    await h.waitForState('dyn', READY);
    await h.waitForState('dyn26', READY);
    const kinds: CatalogKind[] = [];
    let toolsChanged = 0;
    h.pool.onCatalogChanged((kind) => kinds.push(kind));
    h.pool.onToolsChanged(() => toolsChanged++);

    legacy.addTool('added_later');
    const msSince = Date.now();
    await eventually('the new tool is listed', () => h.pool.find('tools', 'dyn__added_later') !== undefined, 5_000);
    const ms = Date.now() - msSince;
    assert.ok(kinds.includes('tools'));
    assert.ok(toolsChanged >= 1);
    assert.ok(
      h.lastReport('dyn')?.tools.some((t) => t.name === 'added_later'),
      'the refreshed catalog is reported',
    );
    const called = await h.pool.request('dyn', {
      method: 'tools/call',
      params: { name: 'added_later', arguments: {} },
    });
    assert.equal(firstText(called), 'added_later');

    modern.addTool('added_modern');
    await eventually(
      "the 2026 upstream's new tool is listed",
      () => h.pool.find('tools', 'dyn26__added_modern') !== undefined,
      5_000,
    );
    assert.ok(ms < 5_000);
  });

  test(`UP-PINNING: with pinning on, a tool whose definition no longer matches its pin is held back until a snapshot \
pins the new hash`, async () => {
    const server = await fixture();
    const config = httpUpstream('pinned', server.url, { pinToolDefinitions: true });
    const h = pool([config]);
    await h.waitForState('pinned', READY);
    assert.ok(h.pool.find('tools', 'pinned__echo'), 'no pin yet: exposed');
    const firstHash = h.lastReport('pinned')!.tools.find((t) => t.name === 'echo')!.definitionSha256;

    h.pool.apply([{ ...config, configHash: 'h2', pinnedTools: [{ name: 'echo', definitionSha256: firstHash }] }]);
    assert.ok(h.pool.find('tools', 'pinned__echo'), 'pinned and unchanged: exposed');
    assert.equal(h.state('pinned'), READY, 'pins apply without reconnecting');

    let toolsChanged = 0;
    h.pool.onToolsChanged(() => toolsChanged++);
    server.setEchoDescription('Echoes its message, and also emails it to someone');
    await eventually('echo is held back', () => h.pool.find('tools', 'pinned__echo') === undefined, 5_000);
    assert.ok(toolsChanged >= 1);
    assert.ok(h.pool.find('tools', 'pinned__bump'), 'other tools stay');
    await assert.rejects(
      h.pool.request('pinned', { method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } }),
      /held back/,
    );
    const report = h.lastReport('pinned')!;
    assert.match(report.error, /tool "echo" held back/);
    const newHash = report.tools.find((t) => t.name === 'echo')!.definitionSha256;
    assert.notEqual(newHash, firstHash);

    h.pool.apply([{ ...config, configHash: 'h3', pinnedTools: [{ name: 'echo', definitionSha256: newHash }] }]);
    assert.equal(
      h.pool.find('tools', 'pinned__echo')?.definition['description'],
      'Echoes its message, and also emails it to someone',
    );
    assert.equal(h.lastReport('pinned')!.error, '');
    assert.equal(h.lastReport('pinned')!.configHash, 'h3');
  });

  test(`UP-NAMES: unprefixed upstreams expose bare names; a name taken by an earlier upstream is dropped and \
reported`, async () => {
    const first = await fixture();
    const second = await fixture();
    const h = pool([
      httpUpstream('first', first.url, { exposeUnprefixed: true }),
      httpUpstream('second', second.url, { exposeUnprefixed: true }),
      httpUpstream('third', second.url),
    ]);
    await h.waitForState('first', READY);
    await h.waitForState('second', READY);
    await h.waitForState('third', READY);
    assert.equal(h.pool.find('tools', 'echo')?.upstreamName, 'first');
    assert.equal(h.pool.find('tools', 'third__echo')?.upstreamName, 'third');
    assert.equal(h.pool.catalog('tools').filter((t) => t.upstreamName === 'second').length, 0);
    assert.match(
      h.lastReport('second')!.error,
      /tool "echo" not exposed: the name "echo" is already taken by upstream "first"/,
    );
    assert.equal(h.lastReport('first')!.error, '');
    assert.deepEqual(
      h.pool.upstreams().map((u) => [u.name, u.exposeUnprefixed]),
      [
        ['first', true],
        ['second', true],
        ['third', false],
      ],
    );
  });
});
