import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CancelTaskResultSchema,
  CreateTaskResultSchema,
  ElicitRequestSchema,
  type JSONRPCMessage,
  GetTaskResultSchema,
  ListTasksResultSchema,
  LoggingMessageNotificationSchema,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { UpstreamRpcError } from '../../data-plane/src/upstream/upstream-rpc-error.ts';
import { PortcullisError } from '../../common/src/index.ts';
import { MemoryToolRouter, type MemoryToolHandler } from '../support/memory-tool-router.ts';
import {
  buildConfig,
  sessionKey,
  startServer,
  testKey,
  type RunningServer,
  type TestKey,
  postInitialize,
} from '../support/mcp-server-harness.ts';
import { legacyAgent, modernAgent, sseAgent } from '../support/protocol-agents.ts';
import { eventually } from '../support/eventually.ts';

/** Reports three progress steps, then answers. */
const slow: MemoryToolHandler = async (_args, options) => {
  for (let i = 1; i <= 3; i += 1) {
    options.onProgress?.({ progressToken: options.meta?.['progressToken'], progress: i, total: 3 });
    await new Promise((r) => setTimeout(r, 5));
  }
  options.onNotification?.({ method: 'notifications/message', params: { level: 'info', data: 'done soon' } });
  return { content: [{ type: 'text', text: 'finished' }] };
};

/** Waits until aborted, records it, then fails as the relay does. */
function hanging(aborted: { value: boolean }): MemoryToolHandler {
  return (_args, options) =>
    new Promise((_resolve, reject) => {
      options.signal?.addEventListener('abort', () => {
        aborted.value = true;
        reject(new PortcullisError('UPSTREAM_REQUEST_CANCELLED', 'cancelled'));
      });
    });
}

/** Asks the agent for input mid-call and answers with what it said. */
const asking: MemoryToolHandler = async (_args, options) => {
  if (options.onRequest === undefined) return { content: [{ type: 'text', text: 'cannot ask' }], isError: true };
  try {
    const answer = await options.onRequest({
      method: 'elicitation/create',
      params: { message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } },
    });
    return { content: [{ type: 'text', text: `hello ${JSON.stringify(answer)}` }] };
  } catch (error) {
    if (error instanceof UpstreamRpcError)
      return { content: [{ type: 'text', text: `agent said ${error.code}` }], isError: true };
    throw error;
  }
};

function router(aborted: { value: boolean }): MemoryToolRouter {
  const r = new MemoryToolRouter(
    [
      { upstream: 'everything', name: 'slow', handler: slow },
      { upstream: 'everything', name: 'hang', handler: hanging(aborted) },
      { upstream: 'everything', name: 'ask', handler: asking },
      { upstream: 'everything', name: 'echo' },
    ],
    {
      resources: [{ upstream: 'everything', uri: 'test://static/resource/1' }],
      prompts: [{ upstream: 'everything', name: 'simple' }],
    },
  );
  r.setCapabilities('everything', {
    tools: {},
    prompts: {},
    resources: { subscribe: true },
    logging: {},
    tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } },
  });
  return r;
}

async function withServer(
  keys: TestKey[],
  fn: (server: RunningServer, upstreams: MemoryToolRouter, aborted: { value: boolean }) => Promise<void>,
): Promise<void> {
  const aborted = { value: false };
  const upstreams = router(aborted);
  const server = await startServer(upstreams, buildConfig(keys));
  try {
    await fn(server, upstreams, aborted);
  } finally {
    await server.close();
  }
}

const key = testKey('k1', ['everything__*']);

test(`DN-PROGRESS DN-TRANSPORT-SSE-RESPONSE: upstream progress reaches the agent on an SSE response (v1 2025-11-25 \
and v2 2026-07-28), with related log messages`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    const seen: number[] = [];
    const logs: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
    const result = await client.callTool({ name: 'everything__slow', arguments: {} }, undefined, {
      onprogress: (p) => void seen.push(p.progress),
    });
    assert.deepEqual(result.content, [{ type: 'text', text: 'finished' }]);
    assert.deepEqual(seen, [1, 2, 3]);
    assert.deepEqual(logs, ['done soon']);
    assert.ok(
      upstreams.calls.at(-1)?.options.meta?.['progressToken'] !== undefined,
      'the agent progress token is handed to the relay',
    );
    await client.close();

    const modern = await modernAgent(server.url, key.secret);
    const modernSeen: number[] = [];
    const modernResult = await modern.callTool(
      { name: 'everything__slow', arguments: {} },
      { onprogress: (p) => void modernSeen.push(p.progress) },
    );
    assert.deepEqual(modernResult.content, [{ type: 'text', text: 'finished' }]);
    assert.deepEqual(modernSeen, [1, 2, 3]);
    await modern.close();

    // Without progress or related notifications the answer stays plain JSON.
    const raw = await postInitialize(server.url, key.secret, '2025-11-25');
    const call = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key.secret}`,
        'mcp-session-id': raw.headers.get('mcp-session-id')!,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'everything__echo', arguments: { text: 'x' } },
      }),
    });
    assert.equal(call.headers.get('content-type'), 'application/json');
    await call.text();
  });
});

test('DN-CANCEL: a 2025 agent cancelling a call (notifications/cancelled) aborts the upstream call', async () => {
  await withServer([key], async (server, upstreams, aborted) => {
    const { client } = await legacyAgent(server.url, key.secret);
    const controller = new AbortController();
    const call = client.callTool({ name: 'everything__hang', arguments: {} }, undefined, { signal: controller.signal });
    await eventually('the call to reach the upstream', () =>
      upstreams.calls.some((c) => c.exposedName === 'everything__hang'),
    );
    controller.abort('changed my mind');
    await assert.rejects(call);
    await eventually('the upstream call to be aborted', () => aborted.value);
    await client.close();
  });
});

test('DN-CANCEL-DISCONNECT: the agent closing the HTTP connection aborts the upstream call (2026-07-28)', async () => {
  await withServer([key], async (server, upstreams, aborted) => {
    const modern = await modernAgent(server.url, key.secret);
    const controller = new AbortController();
    const call = modern.callTool({ name: 'everything__hang', arguments: {} }, { signal: controller.signal });
    await eventually('the call to reach the upstream', () =>
      upstreams.calls.some((c) => c.exposedName === 'everything__hang'),
    );
    controller.abort();
    await assert.rejects(call);
    await eventually('the upstream call to be aborted', () => aborted.value);
    await modern.close();
  });
});

test(`DN-SERVER-REQUEST: an upstream elicitation during a call is sent to the 2025 agent on the call stream and its \
answer returned upstream`, async () => {
  await withServer([key], async (server) => {
    const { client } = await legacyAgent(server.url, key.secret, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      assert.equal(request.params.message, 'Your name?');
      return { action: 'accept', content: { name: 'Ada' } };
    });
    const result = await client.callTool({ name: 'everything__ask', arguments: {} });
    assert.deepEqual(result.content, [{ type: 'text', text: 'hello {"action":"accept","content":{"name":"Ada"}}' }]);
    await client.close();
    // Over the legacy HTTP+SSE transport the request and the reply travel on the session stream.
    const sse = await sseAgent(server.url, key.secret, { capabilities: { elicitation: {} } });
    sse.client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'decline' }));
    const declined = await sse.client.callTool({ name: 'everything__ask', arguments: {} });
    assert.deepEqual(declined.content, [{ type: 'text', text: 'hello {"action":"decline"}' }]);
    await sse.client.close();
  });
});

/** The methods of the requests `transport` delivers to its client from now on. */
function requestsSeen(transport: {
  onmessage?: ((message: JSONRPCMessage, extra?: never) => void) | undefined;
}): string[] {
  const seen: string[] = [];
  const deliver = transport.onmessage!;
  transport.onmessage = (message, extra) => {
    if ('method' in message && 'id' in message) seen.push(message.method);
    deliver(message, extra);
  };
  return seen;
}

test(`DN-SERVER-REQUEST-CAPABILITY: an agent that did not declare elicitation is never asked; the upstream hears \
-32601 (v1 Streamable HTTP, legacy SSE, v2 2026-07-28)`, async () => {
  await withServer([key], async (server) => {
    const open: Array<{ close(): Promise<void> }> = [];
    try {
      const { client, transport } = await legacyAgent(server.url, key.secret, { capabilities: { sampling: {} } });
      open.push(client);
      const seen = requestsSeen(transport as never);
      const result = await client.callTool({ name: 'everything__ask', arguments: {} });
      assert.deepEqual(result.content, [{ type: 'text', text: 'agent said -32601' }]);
      assert.deepEqual(seen, [], 'no elicitation/create reached the agent');

      const sse = await sseAgent(server.url, key.secret, { capabilities: {} });
      open.push(sse.client);
      const sseSeen = requestsSeen(sse.transport as never);
      assert.deepEqual((await sse.client.callTool({ name: 'everything__ask', arguments: {} })).content, [
        { type: 'text', text: 'agent said -32601' },
      ]);
      assert.deepEqual(sseSeen, [], 'no elicitation/create reached the legacy SSE agent');

      const modern = await modernAgent(server.url, key.secret, { capabilities: {} });
      open.push(modern);
      assert.deepEqual((await modern.callTool({ name: 'everything__ask', arguments: {} })).content, [
        { type: 'text', text: 'agent said -32601' },
      ]);
    } finally {
      // An SSE stream left open would hold the server's close.
      await Promise.allSettled(open.map((c) => c.close()));
    }
  });
});

test(`DN-CANCEL-LISTENER: a legacy SSE session with a dozen calls in flight (each watching the stream) raises no \
listener-leak warning`, async () => {
  await withServer([key], async (server) => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const sse = await sseAgent(server.url, key.secret);
    try {
      // A progress token makes each call watch its connection (it may be cancelled by the stream closing).
      const results = await Promise.all(
        Array.from({ length: 12 }, () =>
          sse.client.callTool({ name: 'everything__slow', arguments: {} }, undefined, { onprogress: () => undefined }),
        ),
      );
      assert.equal(results.length, 12);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      await sse.client.close();
    }
  });
});

test(`DN-RESOURCES-SUBSCRIBE: resources/subscribe is relayed once to the owning upstream; updates reach the \
subscribed 2025 agent on its GET stream`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    const updates: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    await eventually('the GET stream', () => server.gateway.notificationStreamCount === 1);
    await client.subscribeResource({ uri: 'test://static/resource/1' });
    const other = await legacyAgent(server.url, key.secret);
    await other.client.subscribeResource({ uri: 'test://static/resource/1' });
    assert.equal(
      upstreams.requests.filter((r) => r.message.method === 'resources/subscribe').length,
      1,
      'one upstream subscription per node',
    );
    await assert.rejects(
      client.subscribeResource({ uri: 'nowhere://x' }),
      (e: unknown) => e instanceof McpError && e.code === -32602,
    );
    upstreams.emit('everything', {
      method: 'notifications/resources/updated',
      params: { uri: 'test://static/resource/1' },
    });
    await eventually('the update', () => updates.length === 1);
    upstreams.emit('everything', { method: 'notifications/resources/updated', params: { uri: 'test://other' } });
    await client.unsubscribeResource({ uri: 'test://static/resource/1' });
    assert.equal(
      upstreams.requests.filter((r) => r.message.method === 'resources/unsubscribe').length,
      0,
      'the other session still holds it',
    );
    await other.client.unsubscribeResource({ uri: 'test://static/resource/1' });
    await eventually('the upstream unsubscribe', () =>
      upstreams.requests.some((r) => r.message.method === 'resources/unsubscribe'),
    );
    assert.deepEqual(updates, ['test://static/resource/1']);
    await client.close();
    await other.client.close();
  });
});

test(`DN-LIST-CHANGED DN-TRANSPORT-GET-STREAM: prompts and resources list_changed reach 2025 agents on their GET \
stream when their view changes`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client } = await legacyAgent(server.url, key.secret);
    let prompts = 0;
    let resources = 0;
    client.setNotificationHandler(PromptListChangedNotificationSchema, () => void (prompts += 1));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => void (resources += 1));
    await eventually('the GET stream', () => server.gateway.notificationStreamCount === 1);
    upstreams.addPrompt({ upstream: 'everything', name: 'another' });
    await eventually('prompts list_changed', () => prompts === 1);
    upstreams.addPrompt({ upstream: 'secret', name: 'hidden' });
    upstreams.addTemplate({ upstream: 'everything', uriTemplate: 'test://t/{x}' });
    await eventually('resources list_changed', () => resources === 1);
    // A fixed time on purpose: that nothing arrives in it is the behaviour under test.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(prompts, 1, 'a prompt this key cannot see changes nothing for it');
    await client.close();
  });
});

test(`DN-LISTEN: a 2026-07-28 agent gets list_changed and resources/updated on its subscriptions/listen stream, \
stamped with the subscription id`, async () => {
  await withServer([key], async (server, upstreams) => {
    const modern = await modernAgent(server.url, key.secret);
    const updates: string[] = [];
    let toolsChanged = 0;
    modern.setNotificationHandler('notifications/resources/updated', (n) => void updates.push(n.params.uri));
    modern.setNotificationHandler('notifications/tools/list_changed', () => void (toolsChanged += 1));
    const subscription = await modern.listen({
      toolsListChanged: true,
      promptsListChanged: true,
      resourceSubscriptions: ['test://static/resource/1', 'nowhere://x'],
    });
    assert.deepEqual(subscription.honoredFilter, {
      toolsListChanged: true,
      promptsListChanged: true,
      resourceSubscriptions: ['test://static/resource/1'],
    });
    assert.equal(server.gateway.listenStreamCount, 1);
    assert.equal(upstreams.requests.filter((r) => r.message.method === 'resources/subscribe').length, 1);
    upstreams.add({ upstream: 'everything', name: 'fresh' });
    await eventually('tools list_changed', () => toolsChanged === 1);
    upstreams.emit('everything', {
      method: 'notifications/resources/updated',
      params: { uri: 'test://static/resource/1' },
    });
    await eventually('resources/updated', () => updates.length === 1);
    await subscription.close();
    await eventually('the listen stream to end', () => server.gateway.listenStreamCount === 0);
    await eventually('the upstream unsubscribe', () =>
      upstreams.requests.some((r) => r.message.method === 'resources/unsubscribe'),
    );
    await modern.close();
  });
});

test(`DN-TASKS: task-augmented tools/call and tasks/get|result|list|cancel route by a signed task id naming the \
upstream`, async () => {
  const other = testKey('k2', ['everything__*']);
  await withServer([key, other], async (server, upstreams) => {
    const now = new Date().toISOString();
    const task = (status: string) => ({
      taskId: 'up-task-1',
      status,
      createdAt: now,
      lastUpdatedAt: now,
      ttl: 60_000,
      pollInterval: 50,
    });
    upstreams.handle('everything', 'tools/call', (params) =>
      params['task'] !== undefined ? { task: task('working') } : { content: [] },
    );
    upstreams.handle('everything', 'tasks/get', (params) => ({ ...task('completed'), taskId: params['taskId'] }));
    upstreams.handle('everything', 'tasks/result', (params) => ({
      content: [{ type: 'text', text: `result of ${String(params['taskId'])}` }],
      _meta: { 'io.modelcontextprotocol/related-task': { taskId: params['taskId'] } },
    }));
    upstreams.handle('everything', 'tasks/list', () => ({
      tasks: [task('completed'), { ...task('working'), taskId: 'someone-elses' }],
    }));
    upstreams.handle('everything', 'tasks/cancel', (params) => ({ ...task('cancelled'), taskId: params['taskId'] }));
    const { client } = await legacyAgent(server.url, key.secret);
    assert.deepEqual(client.getServerCapabilities()?.tasks, {
      list: {},
      cancel: {},
      requests: { tools: { call: {} } },
    });
    const created = await client.request(
      { method: 'tools/call', params: { name: 'everything__echo', arguments: {}, task: { ttl: 60_000 } } },
      CreateTaskResultSchema,
    );
    const taskId = created.task.taskId;
    assert.match(taskId, /^pct\./);
    assert.notEqual(taskId, 'up-task-1');
    const got = await client.request({ method: 'tasks/get', params: { taskId } }, GetTaskResultSchema);
    assert.equal(got.taskId, taskId);
    assert.equal(got.status, 'completed');
    assert.equal(upstreams.requests.at(-1)?.message.params?.['taskId'], 'up-task-1', 'the upstream sees its own id');
    const result = await client.request(
      { method: 'tasks/result', params: { taskId } },
      (await import('@modelcontextprotocol/sdk/types.js')).CallToolResultSchema,
    );
    assert.deepEqual(result.content, [{ type: 'text', text: 'result of up-task-1' }]);
    assert.deepEqual(result._meta?.['io.modelcontextprotocol/related-task'], { taskId });
    const listed = await client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema);
    assert.deepEqual(
      listed.tasks.map((t) => t.taskId),
      [taskId],
      "only this key's tasks are listed",
    );
    const cancelled = await client.request({ method: 'tasks/cancel', params: { taskId } }, CancelTaskResultSchema);
    assert.equal(cancelled.status, 'cancelled');
    await client.close();
    // Another key cannot use the id; a forged one is not found.
    const stranger = await legacyAgent(server.url, other.secret);
    await assert.rejects(
      stranger.client.request({ method: 'tasks/get', params: { taskId } }, GetTaskResultSchema),
      (e: unknown) => e instanceof McpError && e.code === -32602,
    );
    await assert.rejects(
      stranger.client.request({ method: 'tasks/get', params: { taskId: 'up-task-1' } }, GetTaskResultSchema),
      (e: unknown) => e instanceof McpError && e.code === -32602,
    );
    await stranger.client.close();
  });
});

test(`DN-TRANSPORT-DELETE DN-TRANSPORT-JSON: DELETE ends a 2025 session and drops its subscriptions on this \
node`, async () => {
  await withServer([key], async (server, upstreams) => {
    const { client, transport } = await legacyAgent(server.url, key.secret);
    await client.subscribeResource({ uri: 'test://static/resource/1' });
    await transport.terminateSession();
    await eventually('the upstream unsubscribe', () =>
      upstreams.requests.some((r) => r.message.method === 'resources/unsubscribe'),
    );
    await client.close();
  });
});

test(`DN-TRANSPORT-LEGACY-SSE DN-TRANSPORT-LEGACY-SSE-OTHER-NODE-UNREACHABLE: GET /sse + POST /messages with a signed \
session token; a POST on a node that cannot reach the stream's node is refused 404 saying so`, async () => {
  const keys = [sessionKey('s1')];
  const upstreams = router({ value: false });
  const first = await startServer(upstreams, buildConfig([key], keys));
  const second = await startServer(upstreams, buildConfig([key], keys));
  try {
    const { client, transport } = await sseAgent(first.url, key.secret);
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['everything__slow', 'everything__hang', 'everything__ask', 'everything__echo'],
    );
    const progress: number[] = [];
    await client.callTool({ name: 'everything__slow', arguments: {} }, undefined, {
      onprogress: (p) => void progress.push(p.progress),
    });
    assert.deepEqual(progress, [1, 2, 3]);
    const endpoint = (transport as unknown as { _endpoint: URL })._endpoint;
    const token = endpoint.searchParams.get('sessionId')!;
    assert.equal(token.split('.').length, 2, 'a signed self-contained token');
    const elsewhere = await fetch(new URL(`/messages?sessionId=${encodeURIComponent(token)}`, second.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
    });
    assert.equal(elsewhere.status, 404);
    assert.match(
      ((await elsewhere.json()) as { error: { message: string } }).error.message,
      /could not be reached \(this node is not connected to the control plane/,
    );
    const forged = await fetch(new URL(`/messages?sessionId=${encodeURIComponent(token.slice(0, -3))}abc`, first.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
    });
    assert.equal(forged.status, 404);
    // The SSE token is not an Mcp-Session-Id.
    const asSession = await fetch(first.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key.secret}`,
        'mcp-session-id': token,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
    });
    assert.equal(asSession.status, 404);
    await client.close();
  } finally {
    await Promise.all([first.close(), second.close()]);
  }
});
