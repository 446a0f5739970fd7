// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PortcullisError } from '../../common/src/index.ts';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { UpstreamErrorCode } from '../../data-plane/src/upstream/upstream-errors.ts';
import { EVERYTHING_SERVER, RunningProcess, freePort, startEverythingHttp } from '../support/processes.ts';
import {
  DISABLED,
  DOWN,
  FILESYSTEM_SERVER,
  MEMORY_SERVER,
  PoolHarness,
  READY,
  everythingStdio,
  firstText,
  httpUpstream,
  sseUpstream,
  stdioUpstream,
} from '../support/upstream-pool-harness.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';

describe('upstream transports, eras and real servers', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  let everythingHttp: { process: RunningProcess; url: string };
  let everythingSse: { process: RunningProcess; url: string };
  const workDir = mkdtempSync(join(tmpdir(), 'portcullis-upstream-'));

  before(async () => {
    everythingHttp = await startEverythingHttp();
    cleanups.push(() => everythingHttp.process.stop());
    const ssePort = await freePort();
    const sse = new RunningProcess('server-everything (sse)', process.execPath, [EVERYTHING_SERVER, 'sse'], {
      PORT: String(ssePort),
    });
    cleanups.push(() => sse.stop());
    await sse.waitFor(/running on port|listening on port/i);
    everythingSse = { process: sse, url: `http://127.0.0.1:${ssePort}/sse` };
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    rmSync(workDir, { recursive: true, force: true });
  });

  function pool(...args: Parameters<typeof PoolHarness.start>): PoolHarness {
    const harness = PoolHarness.start(...args);
    cleanups.push(() => harness.close());
    return harness;
  }

  test(`UP-STDIO-CONNECT UP-ERA-2025 UP-CATALOGS UP-RELAY-UNCHANGED UP-REPORT: a stdio server-everything with env is \
listed (all kinds, all pages) and called, results unchanged, and reported`, async () => {
    const h = pool([everythingStdio('every', { env: [{ name: 'PORTCULLIS_PROBE', value: 'from-config' }] })]);
    await h.waitForState('every', READY);
    const status = h.connection('every').current;
    assert.equal(status.protocolVersion, '2025-11-25');
    assert.ok((status.catalogs?.tools?.length ?? 0) >= 10, 'tools listed');
    assert.ok((status.catalogs?.prompts?.length ?? 0) >= 1, 'prompts listed');
    assert.ok((status.catalogs?.resources?.length ?? 0) >= 1, 'resources listed');
    assert.ok((status.catalogs?.resourceTemplates?.length ?? 0) >= 1, 'templates listed');
    assert.ok(h.pool.find('tools', 'every__get-sum'), 'prefixed tool name');
    assert.ok(
      h.pool.catalog('prompts').every((p) => p.key.startsWith('every__')),
      'prefixed prompt names',
    );
    assert.deepEqual(
      h.pool.upstreams().map((u) => u.name),
      ['every'],
    );

    const sum = await h.pool.request('every', {
      method: 'tools/call',
      params: { name: 'get-sum', arguments: { a: 2, b: 3 } },
    });
    assert.deepEqual(sum, { content: [{ type: 'text', text: 'The sum of 2 and 3 is 5.' }] });
    const env = await h.pool.request('every', { method: 'tools/call', params: { name: 'get-env', arguments: {} } });
    assert.match(firstText(env), /"PORTCULLIS_PROBE": "from-config"/);
    const uri = h.pool.catalog('resources')[0]!.key;
    const read = await h.pool.request('every', { method: 'resources/read', params: { uri } });
    assert.equal((read['contents'] as { uri: string }[])[0]!.uri, uri);
    const report = h.lastReport('every');
    assert.equal(report?.hasCatalog, true);
    assert.equal(report?.protocolVersion, '2025-11-25');
    assert.equal(report?.state, READY);
    assert.equal(report?.error, '');
    assert.equal(report?.configHash, 'h1');
    assert.equal(report?.upstreamId, h.connection('every').config.id);
    assert.ok(report?.serverName && report.serverVersion, 'server identity reported');
    assert.deepEqual(
      report?.tools.map((t) => t.name),
      status.catalogs?.tools?.map((t) => t['name']),
    );
    assert.deepEqual(JSON.parse(report!.tools[0]!.definitionJson), status.catalogs!.tools![0]);
    assert.deepEqual(
      h.reports.map((r) => r.state).slice(0, 1),
      [UpstreamState.UPSTREAM_STATE_CONNECTING],
      'CONNECTING is reported first',
    );
    assert.ok(
      report?.tools.every((t) => /^[0-9a-f]{64}$/.test(t.definitionSha256)),
      'every reported tool carries its hash',
    );
    assert.equal(report?.hasPrompts, true);
    assert.deepEqual(
      report?.prompts.map((p) => p.name),
      status.catalogs?.prompts?.map((p) => p['name']),
    );
    assert.equal(report?.promptsTotal, status.catalogs?.prompts?.length);
    assert.equal(report?.hasResources, true);
    assert.deepEqual(
      report?.resources.map((r) => r.uri),
      status.catalogs?.resources?.map((r) => r['uri']),
    );
    assert.equal(report?.resourcesTotal, status.catalogs?.resources?.length);
    assert.equal(report?.hasResourceTemplates, true);
    assert.deepEqual(
      report?.resourceTemplates.map((t) => t.uriTemplate),
      status.catalogs?.resourceTemplates?.map((t) => t['uriTemplate']),
    );
    assert.ok(!JSON.stringify(report?.resources).includes('"text"'), 'no resource content is reported');
  });

  test('UP-HTTP-CONNECT: a Streamable HTTP server-everything is listed and called', async () => {
    const h = pool([httpUpstream('web', everythingHttp.url)]);
    await h.waitForState('web', READY);
    assert.ok(h.pool.find('tools', 'web__echo'));
    const result = await h.pool.request('web', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'over http' } },
    });
    assert.equal(firstText(result), 'Echo: over http');
  });

  test('UP-SSE-CONNECT: a legacy HTTP+SSE server-everything is listed and called', async () => {
    const h = pool([sseUpstream('old', everythingSse.url)]);
    await h.waitForState('old', READY);
    const result = await h.pool.request('old', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'over sse' } },
    });
    assert.equal(firstText(result), 'Echo: over sse');
  });

  test('UP-HTTP-HEADERS: static headers and a bearer token reach an HTTP upstream on every request', async () => {
    const fixture = await SdkHttpFixture.start('sessionful-2025');
    cleanups.push(() => fixture.stop());
    const h = pool([
      httpUpstream('auth', fixture.url, {
        headers: [
          { name: 'Authorization', value: 'Bearer tok-123' },
          { name: 'X-Tenant', value: 'acme' },
        ],
      }),
    ]);
    await h.waitForState('auth', READY);
    await h.pool.request('auth', { method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } });
    assert.ok(fixture.state.headers.length >= 3);
    for (const seen of fixture.state.headers) {
      assert.equal(seen['authorization'], 'Bearer tok-123');
      assert.equal(seen['x-tenant'], 'acme');
    }
  });

  test(`UP-ERA-2026: a 2026-07-28 SDK v2 server is negotiated as such, listed and called; the 2025-only ping is \
refused locally`, async () => {
    const fixture = await SdkHttpFixture.start('modern-2026');
    cleanups.push(() => fixture.stop());
    const h = pool([httpUpstream('modern', fixture.url)]);
    await h.waitForState('modern', READY);
    assert.equal(h.connection('modern').current.protocolVersion, '2026-07-28');
    const result = await h.pool.request('modern', {
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'new era' } },
    });
    assert.equal(firstText(result), 'echo: new era');
    await assert.rejects(
      h.pool.request('modern', { method: 'ping' }),
      (e: Error & { code?: number }) => e.code === -32601 && /modern|2026|era/i.test(e.message),
    );
  });

  test(`UP-AUTH-DOWN: HTTP 401 and a missing command show DOWN with the reason and are not retried \
quickly`, async () => {
    let hits = 0;
    const refusing = createServer((req, res) => {
      hits += 1;
      req.resume();
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' })
        .end('{"error":"unauthorized"}');
    });
    refusing.listen(0, '127.0.0.1');
    await once(refusing, 'listening');
    cleanups.push(() => new Promise((r) => refusing.close(r)));
    const url = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/mcp`;
    const h = pool([httpUpstream('locked', url), stdioUpstream('missing', 'portcullis-no-such-command-xyz', [])]);
    await h.waitForState('locked', DOWN);
    await h.waitForState('missing', DOWN);
    assert.match(h.connection('locked').current.error ?? '', /401/);
    assert.match(h.connection('missing').current.error ?? '', /command not found|ENOENT/);
    assert.match(h.lastReport('missing')?.error ?? '', /command not found|ENOENT/);
    const hitsWhenDown = hits;
    // A fixed time on purpose: that nothing arrives in it is the behaviour under test.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(hits, hitsWhenDown, 'no retry within 1.5 s of an auth failure');
    assert.equal(h.state('locked'), DOWN);
    await assert.rejects(
      h.pool.request('locked', { method: 'tools/list' }),
      (e: PortcullisError) =>
        e.code === UpstreamErrorCode.UNAVAILABLE && /"locked"/.test(e.message) && /401/.test(e.message),
    );
  });

  test('UP-DISABLED: a disabled upstream holds no connection and reports DISABLED', async () => {
    const h = pool([everythingStdio('off', { disabled: true })]);
    await h.waitForState('off', DISABLED, 1_000);
    assert.equal(h.lastReport('off')?.state, DISABLED);
    assert.deepEqual(h.pool.upstreams(), []);
    await assert.rejects(h.pool.request('off', { method: 'tools/list' }), /upstream "off" is disabled/);
  });

  test(`UP-TIMEOUTS: an upstream call timeout applies, 0 takes the node default, and a slow call fails naming the \
upstream`, async () => {
    const fixture = await SdkHttpFixture.start('sessionful-2025');
    cleanups.push(() => fixture.stop());
    const h = pool(
      [
        httpUpstream('quick', fixture.url, { callTimeoutMs: 150, connectTimeoutMs: 5_000 }),
        httpUpstream('dflt', fixture.url),
      ],
      { callTimeoutMs: 4_321 },
    );
    assert.equal(h.connection('quick').settings.callTimeoutMs, 150);
    assert.equal(h.connection('quick').settings.connectTimeoutMs, 5_000);
    assert.equal(h.connection('dflt').settings.callTimeoutMs, 4_321);
    await h.waitForState('quick', READY);
    const started = Date.now();
    await assert.rejects(
      h.pool.request('quick', { method: 'tools/call', params: { name: 'slow', arguments: { steps: 50 } } }),
      (e: PortcullisError) => e.code === UpstreamErrorCode.TIMEOUT && /"quick"/.test(e.message),
    );
    assert.ok(Date.now() - started < 1_000, 'failed at the timeout, not at the end of the call');
  });

  test(`UP-REAL-SERVERS UP-STDIO-CONNECT: server-memory and server-filesystem (cwd-relative root) list their catalogs \
and serve calls`, async () => {
    writeFileSync(join(workDir, 'hello.txt'), 'hello from disk');
    const memoryFile = join(workDir, 'memory.jsonl');
    const h = pool([
      stdioUpstream('memory', process.execPath, [MEMORY_SERVER], {
        env: [{ name: 'MEMORY_FILE_PATH', value: memoryFile }],
      }),
      stdioUpstream('fs', process.execPath, [FILESYSTEM_SERVER, '.'], { cwd: workDir }),
    ]);
    await h.waitForState('memory', READY);
    await h.waitForState('fs', READY);
    assert.ok(h.pool.find('tools', 'memory__create_entities'));
    assert.ok(h.pool.find('tools', 'fs__read_text_file'));
    await h.pool.request('memory', {
      method: 'tools/call',
      params: {
        name: 'create_entities',
        arguments: { entities: [{ name: 'Portcullis', entityType: 'project', observations: ['an MCP gateway'] }] },
      },
    });
    const graph = await h.pool.request('memory', {
      method: 'tools/call',
      params: { name: 'read_graph', arguments: {} },
    });
    assert.match(JSON.stringify(graph), /an MCP gateway/);
    const dirs = await h.pool.request('fs', {
      method: 'tools/call',
      params: { name: 'list_allowed_directories', arguments: {} },
    });
    assert.match(firstText(dirs), new RegExp(workDir.replace(/[/\\^$.*+?()[\]{}|]/g, '\\$&')));
    const file = await h.pool.request('fs', {
      method: 'tools/call',
      params: { name: 'read_text_file', arguments: { path: join(workDir, 'hello.txt') } },
    });
    assert.equal(firstText(file), 'hello from disk');
  });
});
