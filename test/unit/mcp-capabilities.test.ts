import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '@modelcontextprotocol/client';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import {
  buildConfig,
  postModern,
  startServer,
  testKey,
  type RunningServer,
  type TestKey,
  postInitialize,
} from '../support/mcp-server-harness.ts';
import { MODERN, legacyAgent, modernAgent, sseAgent } from '../support/protocol-agents.ts';

const UI_META = { ui: { resourceUri: 'ui://everything/app.html' } };

function router(): MemoryToolRouter {
  const r = new MemoryToolRouter(
    [
      { upstream: 'everything', name: 'echo', _meta: UI_META },
      { upstream: 'secret', name: 'launch' },
    ],
    {
      prompts: [
        { upstream: 'everything', name: 'simple', arguments: [{ name: 'city', required: true }] },
        { upstream: 'secret', name: 'plan' },
      ],
      resources: [
        { upstream: 'everything', uri: 'test://static/resource/1', name: 'Resource 1', text: 'one' },
        {
          upstream: 'everything',
          uri: 'ui://everything/app.html',
          name: 'App',
          mimeType: 'text/html;profile=mcp-app',
          text: '<html></html>',
          _meta: { ui: { csp: {} } },
        },
        { upstream: 'secret', uri: 'secret://vault', name: 'Vault' },
      ],
      templates: [{ upstream: 'everything', uriTemplate: 'test://dynamic/resource/{id}', name: 'Dynamic' }],
    },
  );
  r.setCapabilities('everything', {
    tools: {},
    prompts: {},
    resources: { subscribe: true },
    completions: {},
    logging: {},
    extensions: { 'io.modelcontextprotocol/ui': {} },
  });
  r.setCapabilities('secret', { tools: {}, prompts: {}, resources: {} });
  r.handle('everything', 'completion/complete', (params) => ({
    completion: { values: [`${JSON.stringify(params['ref'])}:${JSON.stringify(params['argument'])}`], hasMore: false },
  }));
  return r;
}

async function withServer(
  keys: TestKey[],
  fn: (server: RunningServer, upstreams: MemoryToolRouter) => Promise<void>,
  options: { listPageSize?: number } = {},
): Promise<void> {
  const upstreams = router();
  const server = await startServer(upstreams, buildConfig(keys), options);
  try {
    await fn(server, upstreams);
  } finally {
    await server.close();
  }
}

const key = testKey('k1', ['everything__*']);

test(`DN-CAPABILITIES-MERGED: both eras advertise what the merged upstreams offer (2025: initialize, 2026-07-28: \
server/discover)`, async () => {
  await withServer([key], async (server) => {
    const { client } = await legacyAgent(server.url, key.secret);
    assert.deepEqual(client.getServerCapabilities(), {
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      completions: {},
      logging: {},
      extensions: { 'io.modelcontextprotocol/ui': {} },
    });
    await client.close();
    const modern = await modernAgent(server.url, key.secret);
    const capabilities = modern.getServerCapabilities();
    assert.deepEqual(capabilities?.prompts, { listChanged: true });
    assert.deepEqual(capabilities?.resources, { subscribe: true, listChanged: true });
    await modern.close();
  });
});

test(`DN-PROMPTS-LIST DN-PROMPTS-GET: prompts are namespaced <upstream>__<name>, filtered by the allow-list, and \
relayed un-prefixed (both eras)`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    assert.deepEqual(
      (await client.listPrompts()).prompts.map((p) => p.name),
      ['everything__simple'],
    );
    const got = await client.getPrompt({ name: 'everything__simple', arguments: { city: 'Oslo' } });
    assert.deepEqual(got.messages[0]?.content, { type: 'text', text: 'simple({"city":"Oslo"})' });
    assert.deepEqual(upstreams.requests.at(-1)?.message, {
      method: 'prompts/get',
      params: { name: 'simple', arguments: { city: 'Oslo' } },
    });
    await assert.rejects(
      client.getPrompt({ name: 'secret__plan' }),
      (e: unknown) => e instanceof McpError && e.code === -32602 && /Prompt secret__plan not found/.test(e.message),
    );
    await client.close();

    const modern = await modernAgent(server.url, key.secret);
    assert.deepEqual(
      (await modern.listPrompts()).prompts.map((p) => p.name),
      ['everything__simple'],
    );
    const modernGot = await modern.getPrompt({ name: 'everything__simple', arguments: { city: 'Bergen' } });
    assert.deepEqual(modernGot.messages[0]?.content, { type: 'text', text: 'simple({"city":"Bergen"})' });
    assert.equal(upstreams.requests.at(-1)?.message.params?.['_meta'], undefined, 'the 2026 envelope is not forwarded');
    await modern.close();
  });
});

test(`DN-RESOURCES-LIST DN-RESOURCES-READ DN-RESOURCES-TEMPLATES-LIST: URIs are not rewritten; reads route by listed \
URI or template; invisible upstreams are not found`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    assert.deepEqual(
      (await client.listResources()).resources.map((r) => r.uri),
      ['test://static/resource/1', 'ui://everything/app.html'],
    );
    assert.deepEqual(
      (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate),
      ['test://dynamic/resource/{id}'],
    );
    assert.deepEqual((await client.readResource({ uri: 'test://static/resource/1' })).contents, [
      { uri: 'test://static/resource/1', mimeType: 'text/plain', text: 'one' },
    ]);
    const dynamic = await client.readResource({ uri: 'test://dynamic/resource/7' });
    assert.equal(dynamic.contents[0]?.uri, 'test://dynamic/resource/7');
    assert.equal(upstreams.requests.at(-1)?.upstream, 'everything');
    for (const uri of ['secret://vault', 'nowhere://x']) {
      await assert.rejects(
        client.readResource({ uri }),
        (e: unknown) => e instanceof McpError && e.code === -32602 && e.message.includes(`Resource not found: ${uri}`),
      );
    }
    await client.close();

    const modern = await modernAgent(server.url, key.secret);
    assert.deepEqual(
      (await modern.listResources()).resources.map((r) => r.uri),
      ['test://static/resource/1', 'ui://everything/app.html'],
    );
    assert.deepEqual(
      (await modern.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate),
      ['test://dynamic/resource/{id}'],
    );
    const read = await modern.readResource({ uri: 'test://static/resource/1' });
    assert.equal((read.contents[0] as { text: string }).text, 'one');
    await assert.rejects(
      modern.readResource({ uri: 'secret://vault' }),
      (e: unknown) => e instanceof ProtocolError && e.code === -32602,
    );
    await modern.close();
  });
});

test(`DN-APPS-META DN-META-PASSTHROUGH: MCP Apps ui:// resources and the tool _meta pointing at them are relayed \
unchanged, agent _meta reaches the upstream`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    const tool = (await client.listTools()).tools.find((t) => t.name === 'everything__echo');
    assert.deepEqual(tool?._meta, UI_META);
    const app = (await client.listResources()).resources.find((r) => r.uri === 'ui://everything/app.html');
    assert.deepEqual(app?._meta, { ui: { csp: {} } });
    assert.equal(app?.mimeType, 'text/html;profile=mcp-app');
    const html = await client.readResource({ uri: 'ui://everything/app.html' });
    assert.deepEqual(html.contents, [
      { uri: 'ui://everything/app.html', mimeType: 'text/plain', text: '<html></html>' },
    ]);
    await client.callTool({
      name: 'everything__echo',
      arguments: { text: 'x' },
      _meta: { 'com.example/trace': { id: 7 } },
    });
    assert.deepEqual(upstreams.calls.at(-1)?.options.meta, { 'com.example/trace': { id: 7 } });
    await client.close();
  });
});

test('DN-COMPLETION: completion/complete routes by prompt name (un-prefixed) or by resource template', async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    const byPrompt = await client.complete({
      ref: { type: 'ref/prompt', name: 'everything__simple' },
      argument: { name: 'city', value: 'O' },
    });
    assert.deepEqual(byPrompt.completion.values, ['{"type":"ref/prompt","name":"simple"}:{"name":"city","value":"O"}']);
    const byTemplate = await client.complete({
      ref: { type: 'ref/resource', uri: 'test://dynamic/resource/{id}' },
      argument: { name: 'id', value: '1' },
    });
    assert.equal(upstreams.requests.at(-1)?.upstream, 'everything');
    assert.match(byTemplate.completion.values[0]!, /ref\/resource/);
    await assert.rejects(
      client.complete({ ref: { type: 'ref/prompt', name: 'secret__plan' }, argument: { name: 'a', value: '' } }),
      (e: unknown) => e instanceof McpError && e.code === -32602,
    );
    await client.close();
    const modern = await modernAgent(server.url, key.secret);
    const modernCompletion = await modern.complete({
      ref: { type: 'ref/prompt', name: 'everything__simple' },
      argument: { name: 'city', value: 'B' },
    });
    assert.equal(modernCompletion.completion.values.length, 1);
    await modern.close();
  });
});

test(`DN-PING DN-LOGGING-SETLEVEL DN-METHOD-NOT-FOUND: 2025 ping and logging/setLevel are answered by the gateway; \
unknown methods get -32601 in both eras`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    await client.ping();
    await client.setLoggingLevel('warning');
    assert.equal(
      upstreams.requests.some((r) => r.message.method === 'logging/setLevel'),
      false,
      'the level is kept per agent, not set on the shared upstream',
    );
    await assert.rejects(
      client.request(
        { method: 'foo/bar', params: {} } as never,
        (await import('@modelcontextprotocol/sdk/types.js')).EmptyResultSchema,
      ),
      (e: unknown) => e instanceof McpError && e.code === -32601,
    );
    await client.close();
    const modern = await modernAgent(server.url, key.secret);
    const subscribe = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key.secret}`,
        'mcp-protocol-version': MODERN,
        'mcp-method': 'resources/subscribe',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'resources/subscribe',
        params: {
          uri: 'test://static/resource/1',
          _meta: {
            'io.modelcontextprotocol/protocolVersion': MODERN,
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });
    assert.equal(
      ((await subscribe.json()) as { error: { code: number } }).error.code,
      -32601,
      'resources/subscribe is gone in 2026-07-28 (subscriptions/listen replaces it)',
    );
    await modern.close();
  });
});

test('DN-PAGINATION: every list pages across upstreams with an opaque cursor; a bad cursor is -32602', async () => {
  const wide = testKey('wide', ['*']);
  await withServer(
    [wide],
    async (server) => {
      const { client } = await legacyAgent(server.url, wide.secret);
      const first = await client.listTools();
      assert.deepEqual(
        first.tools.map((t) => t.name),
        ['everything__echo'],
      );
      assert.ok(first.nextCursor);
      const second = await client.listTools({ cursor: first.nextCursor });
      assert.deepEqual(
        second.tools.map((t) => t.name),
        ['secret__launch'],
      );
      assert.equal(second.nextCursor, undefined);
      const resources: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listResources(cursor === undefined ? {} : { cursor });
        resources.push(...page.resources.map((r) => r.uri));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      assert.deepEqual(resources, ['test://static/resource/1', 'ui://everything/app.html', 'secret://vault']);
      const prompts = await client.listPrompts();
      assert.equal(prompts.prompts.length, 1);
      assert.ok(prompts.nextCursor);
      await assert.rejects(
        client.listTools({ cursor: 'bogus' }),
        (e: unknown) => e instanceof McpError && e.code === -32602,
      );
      await client.close();
      // The v2 client follows cursors itself.
      const modern = await modernAgent(server.url, wide.secret);
      assert.deepEqual(
        (await modern.listTools()).tools.map((t) => t.name),
        ['everything__echo', 'secret__launch'],
      );
      await modern.close();
    },
    { listPageSize: 1 },
  );
});

test('DN-CACHE-HINTS: 2026-07-28 lists and reads carry private cache hints and resultType', async () => {
  await withServer([key], async (server) => {
    const post = async (method: string, params: Record<string, unknown>, extra: Record<string, string> = {}) =>
      (await postModern(server.url, key.secret, method, params, extra)).body.result;
    for (const method of ['prompts/list', 'resources/list', 'resources/templates/list']) {
      const result = await post(method, {});
      assert.equal(result['cacheScope'], 'private', method);
      assert.equal(result['ttlMs'], 0, method);
      assert.equal(result['resultType'], 'complete', method);
    }
    const read = await post(
      'resources/read',
      { uri: 'test://static/resource/1' },
      { 'mcp-name': 'test://static/resource/1' },
    );
    assert.equal(read['cacheScope'], 'private');
    assert.equal(read['resultType'], 'complete');
    assert.deepEqual((read['_meta'] as Record<string, unknown>)['io.modelcontextprotocol/serverInfo'], {
      name: 'portcullis-test',
      version: '0.0.0',
    });
  });
});

test(`DN-SERVER-IDENTITY: a 2026-07-28 upstream's serverInfo in result _meta never reaches 2025 agents; 2026-07-28 \
agents see the gateway's`, async () => {
  const upstreamIdentity = {
    'io.modelcontextprotocol/serverInfo': { name: 'internal-billing-upstream', version: '9.9.9' },
  };
  await withServer([key], async (server, upstreams) => {
    upstreams.handle('everything', 'tools/call', () => ({
      content: [{ type: 'text', text: 'ok' }],
      _meta: { ...upstreamIdentity, trace: 't-1' },
    }));
    upstreams.handle('everything', 'resources/read', (params) => ({
      contents: [{ uri: String(params['uri']), text: 'one' }],
      _meta: upstreamIdentity,
    }));
    const { client } = await legacyAgent(server.url, key.secret);
    const called = await client.callTool({ name: 'everything__echo', arguments: {} });
    assert.deepEqual(called._meta, { trace: 't-1' }, "the upstream's other _meta stays");
    const read = await client.readResource({ uri: 'test://static/resource/1' });
    assert.equal(read._meta, undefined, 'an _meta left empty goes');
    await client.close();
    const sse = await sseAgent(server.url, key.secret);
    assert.deepEqual((await sse.client.callTool({ name: 'everything__echo', arguments: {} }))._meta, { trace: 't-1' });
    await sse.client.close();
    const modern = await postModern(
      server.url,
      key.secret,
      'tools/call',
      { name: 'everything__echo', arguments: {} },
      { 'mcp-name': 'everything__echo' },
    );
    assert.deepEqual((modern.body.result['_meta'] as Record<string, unknown>)['io.modelcontextprotocol/serverInfo'], {
      name: 'portcullis-test',
      version: '0.0.0',
    });
  });
});

test(`DN-VERSION-NEGOTIATION: clients of 2024-11-05 … 2025-11-25 (v1, incl. the legacy SSE transport) and 2026-07-28 \
(v2) all connect and call`, async () => {
  await withServer([key], async (server) => {
    for (const version of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']) {
      const response = await postInitialize(server.url, key.secret, version);
      assert.equal(
        ((await response.json()) as { result: { protocolVersion: string } }).result.protocolVersion,
        version,
      );
    }
    const { client } = await legacyAgent(server.url, key.secret);
    assert.equal(
      (await client.callTool({ name: 'everything__echo', arguments: { text: 'v1' } })).content?.toString(),
      [{ type: 'text', text: 'Echo: v1' }].toString(),
    );
    await client.close();
    const sse = await sseAgent(server.url, key.secret);
    assert.deepEqual((await sse.client.callTool({ name: 'everything__echo', arguments: { text: 'sse' } })).content, [
      { type: 'text', text: 'Echo: sse' },
    ]);
    await sse.client.close();
    const modern = await modernAgent(server.url, key.secret);
    assert.deepEqual((await modern.callTool({ name: 'everything__echo', arguments: { text: 'v2' } })).content, [
      { type: 'text', text: 'Echo: v2' },
    ]);
    await modern.close();
  });
});
