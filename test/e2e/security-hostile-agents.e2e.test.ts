import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { firstText } from '../support/agents.ts';
import { INITIALIZE, postMcp } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { legacyAgent, modernAgent, sseAgent } from '../support/protocol-agents.ts';
import { eventually } from '../support/eventually.ts';
import { sseEvents } from '../support/sse-events.ts';
import { REPO_ROOT } from '../support/processes.ts';

const RAW_STDIO = resolve(REPO_ROOT, 'test/fixtures/raw-stdio-upstream.ts');
const TSX = import.meta.resolve('tsx');

/**
 * Issue 12's hostile agents on the data plane, each with real processes: a control plane on
 * PostgreSQL, a data-plane node, server-everything over stdio behind it, the official SDK v1
 * client as the honest agent and raw HTTP as the hostile one (with a key of its own).
 */

/** A raw `GET /sse` of the hostile agent: the endpoint it was given, and its stream to close. */
async function openSse(mcpUrl: string, secret: string): Promise<{ endpoint: URL; close(): void }> {
  const controller = new AbortController();
  const response = await fetch(new URL('/sse', mcpUrl), {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${secret}` },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const match = /event: endpoint\ndata: (\S+)\n\n/.exec(text);
    if (match !== null) return { endpoint: new URL(match[1]!, mcpUrl), close: () => controller.abort() };
    const { value, done } = await reader.read();
    if (done) throw new Error(`the SSE stream ended before its endpoint event: ${text}`);
    text += value;
  }
}

/** The node tag a session token names (its payload is readable by design). */
function nodeTagOf(sessionId: string): string {
  const payload = JSON.parse(Buffer.from(sessionId.split('.')[0]!, 'base64url').toString('utf8')) as {
    nodeTag?: string;
  };
  assert.ok(payload.nodeTag, 'a legacy SSE token names the node holding its stream');
  return payload.nodeTag;
}

const SESSION_VERSION = '2025-11-25';

/** A raw 2025-era session of `secret` (initialize); its id. */
async function openSession(mcpUrl: string, secret: string): Promise<string> {
  const response = await postMcp(
    mcpUrl,
    { ...INITIALIZE, params: { ...INITIALIZE.params, protocolVersion: SESSION_VERSION } },
    { authorization: `Bearer ${secret}` },
  );
  await response.body?.cancel();
  const sessionId = response.headers.get('mcp-session-id');
  assert.ok(sessionId, `initialize answered ${response.status}`);
  return sessionId;
}

function sessionHeaders(secret: string, sessionId: string): Record<string, string> {
  return { authorization: `Bearer ${secret}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': SESSION_VERSION };
}

/** Resolves with what `read` gives, or with `fallback` after `ms` (then `onTimeout` runs, e.g. to cut a stream). */
function within<T>(ms: number, read: Promise<T>, fallback: T, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => (onTimeout(), resolve(fallback)), ms)));
  return Promise.race([read, timeout]).finally(() => clearTimeout(timer));
}

describe('hostile agents on the data plane (issue 12)', () => {
  let gateway: TestEnv;
  let mcpUrl: string;
  let intruder: string;

  before(async () => {
    const args = [
      ...['--max-in-flight-per-session', '4', '--max-in-flight-per-key', '6'],
      // A small event store, so that one key could fill it in a test: 1 MiB in all, 384 KiB per key.
      ...[
        '--sse-max-bytes',
        String(1024 * 1024),
        '--sse-max-bytes-per-stream',
        String(128 * 1024),
        '--sse-max-bytes-per-key',
        String(384 * 1024),
      ],
      ...['--sse-max-open-streams-per-session', '3'],
    ];
    gateway = await startTestEnv({
      nodes: [{ id: 'node-1', args }],
      upstreams: [
        everythingUpstream('ev'),
        { name: 'raw', transport: 'STDIO', command: process.execPath, args: ['--import', TSX, RAW_STDIO, 'serve'] },
      ],
      keys: [
        { name: 'victim', allowedTools: ['ev__*'] },
        { name: 'intruder', allowedTools: ['ev__*', 'raw__*'] },
        // Content logging off: nothing serializes a result before the adapters do.
        { name: 'unrecorded', allowedTools: ['raw__*'], auditContent: 'OFF' },
      ],
    });
    mcpUrl = gateway.nodes[0]!.mcpUrl;
    intruder = gateway.keys[1]!.secret;
  });

  after(async () => {
    await gateway?.dispose();
  });

  test(`finding 1: one key cannot answer another key's server-to-client requests (legacy SSE and Streamable HTTP \
replies, guessed and leaked ids)`, async () => {
    const victim = await sseAgent(new URL(mcpUrl), gateway.key.secret, { capabilities: { sampling: {} } });
    const hostileSse = await openSse(mcpUrl, intruder);
    const hostileHttp = await legacyAgent(new URL(mcpUrl), intruder);
    try {
      await eventually(
        'server-everything offers its sampling tool',
        async () => (await victim.client.listTools()).tools.some((t) => t.name === 'ev__trigger-sampling-request'),
        30_000,
      );
      const hostileSessionId = decodeURIComponent(hostileSse.endpoint.searchParams.get('sessionId')!);
      const tag = nodeTagOf(hostileSessionId);
      const injected = { role: 'assistant', content: { type: 'text', text: 'INJECTED by another key' }, model: 'evil' };
      let attacked: (() => void) | undefined;
      const attacksDone = new Promise<void>((done) => (attacked = done));
      const attacks: Promise<number>[] = [];
      victim.client.setRequestHandler(CreateMessageRequestSchema, async (_request, extra) => {
        // The intruder guesses ids as the node once issued them (pcn-<tag>-<n>), and is even handed the real one (as if
        // it leaked).
        const guessed = Array.from({ length: 99 }, (_, i) => ({
          jsonrpc: '2.0',
          id: `pcn-${tag}-${i + 1}`,
          result: injected,
        }));
        const leaked = { jsonrpc: '2.0', id: extra.requestId, result: injected };
        const post = (body: unknown) =>
          fetch(hostileSse.endpoint, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${intruder}` },
            body: JSON.stringify(body),
          }).then((r) => r.status);
        attacks.push(post([...guessed, leaked]), post(leaked));
        await hostileHttp.transport.send(leaked as never);
        await Promise.all(attacks);
        attacked!();
        return { role: 'assistant', content: { type: 'text', text: 'honest answer' }, model: 'victim' };
      });
      const result = await victim.client.callTool({
        name: 'ev__trigger-sampling-request',
        arguments: { prompt: 'who answers?' },
      });
      await attacksDone;
      assert.deepEqual(
        await Promise.all(attacks),
        [202, 202],
        "the intruder's replies were posted to its own session (and dropped there)",
      );
      const text = firstText(result);
      assert.match(text, /honest answer/, text);
      assert.doesNotMatch(text, /INJECTED/, text);
    } finally {
      hostileSse.close();
      await hostileHttp.client.close();
      await victim.client.close();
    }
  });

  test(`finding 5: POST /messages takes at most 100 messages; a key or session beyond its calls in flight is refused \
at once, other keys are served`, async () => {
    const hostile = await openSse(mcpUrl, intruder);
    const flood = await sseAgent(new URL(mcpUrl), intruder);
    const hostileHttp = await legacyAgent(new URL(mcpUrl), intruder);
    const victim = await legacyAgent(new URL(mcpUrl), gateway.key.secret);
    try {
      const batch = Array.from({ length: 101 }, (_, i) => ({
        jsonrpc: '2.0',
        id: i,
        method: 'tools/call',
        params: { name: 'ev__echo', arguments: { message: 'x' } },
      }));
      const refusedBatch = await fetch(hostile.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${intruder}` },
        body: JSON.stringify(batch),
      });
      assert.equal(refusedBatch.status, 400, 'a batch of 101 is refused, as on /mcp');
      assert.match(
        ((await refusedBatch.json()) as { error: { message: string } }).error.message,
        /must not exceed 100/,
      );

      type Outcome = { ok: true } | { ok: false; code: unknown; scope: unknown };
      const outcome = (call: Promise<unknown>): Promise<Outcome> =>
        call.then(
          () => ({ ok: true }),
          (error: { code?: unknown; data?: { scope?: unknown } }) => ({
            ok: false,
            code: error.code,
            scope: error.data?.scope,
          }),
        );
      const slow = { name: 'ev__trigger-long-running-operation', arguments: { duration: 4, steps: 1 } };
      const started = Date.now();
      const sessionCalls = Array.from({ length: 10 }, () => outcome(flood.client.callTool(slow)));
      // The refusals come at once, while the admitted calls still run.
      let refused = 0;
      await new Promise<void>((done) =>
        sessionCalls.forEach((c) => void c.then((o) => (!o.ok && ++refused === 6 ? done() : undefined))),
      );
      const refusedMs = Date.now() - started;
      const keyCalls = Array.from({ length: 3 }, () => outcome(hostileHttp.client.callTool(slow)));
      const victimStarted = Date.now();
      assert.equal(
        firstText(await victim.client.callTool({ name: 'ev__echo', arguments: { message: 'still served' } })),
        'Echo: still served',
      );
      const victimMs = Date.now() - victimStarted;
      const session = await Promise.all(sessionCalls);
      const key = await Promise.all(keyCalls);
      assert.deepEqual(
        session.filter((o) => !o.ok),
        Array(6).fill({ ok: false, code: -32046, scope: 'session' }),
        JSON.stringify(session),
      );
      assert.deepEqual(
        key.filter((o) => !o.ok),
        [{ ok: false, code: -32046, scope: 'key' }],
        JSON.stringify(key),
      );
      assert.ok(victimMs < 2_000, `another key was answered in ${victimMs} ms while this one was at its bounds`);
      assert.ok(refusedMs < 3_000, `the refusals came in ${refusedMs} ms, before the admitted calls ended`);
      assert.ok(Date.now() - started >= 4_000, 'the admitted calls ran');
    } finally {
      hostile.close();
      await Promise.allSettled([flood.client.close(), hostileHttp.client.close(), victim.client.close()]);
    }
  });

  test(`finding 4: one key cannot evict another key's resumable SSE stream, nor hold unbounded GET streams in one \
session`, async () => {
    // Key B's call: its answer stream starts (a progress event), then the connection drops; the call goes on.
    const victimSession = await openSession(mcpUrl, gateway.key.secret);
    const dropped = new AbortController();
    const call = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        ...sessionHeaders(gateway.key.secret, victimSession),
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 41,
        method: 'tools/call',
        params: {
          name: 'ev__trigger-long-running-operation',
          arguments: { duration: 3, steps: 3 },
          _meta: { progressToken: 'p41' },
        },
      }),
      signal: dropped.signal,
    });
    let lastEventId: string | undefined;
    for await (const event of sseEvents(call.body!)) {
      lastEventId = event.id ?? lastEventId;
      if (event.data.includes('notifications/progress')) break;
    }
    dropped.abort();
    assert.ok(lastEventId, 'the answer stream carries event ids');

    // Key A fills the node's event store (1 MiB) with answer streams of ~100 KB each, across sessions.
    const floodSessions = await Promise.all([0, 1, 2].map(() => openSession(mcpUrl, intruder)));
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 12; i += 1) {
      const answer = await fetch(mcpUrl, {
        method: 'POST',
        headers: {
          ...sessionHeaders(intruder, floodSessions[i % 3]!),
          'content-type': 'application/json',
          accept: 'text/event-stream, application/json',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: i,
          method: 'tools/call',
          params: { name: 'ev__echo', arguments: { message: big } },
        }),
      });
      assert.equal(answer.headers.get('content-type'), 'text/event-stream', 'a stored (resumable) answer stream');
      assert.ok((await answer.text()).includes(big.slice(0, 100)));
    }

    // Key B resumes: its stream is still held, and its call's result arrives on it.
    const resumed = new AbortController();
    const resume = await fetch(mcpUrl, {
      headers: {
        ...sessionHeaders(gateway.key.secret, victimSession),
        accept: 'text/event-stream',
        'last-event-id': lastEventId,
      },
      signal: resumed.signal,
    });
    assert.equal(resume.status, 200);
    const readResult = (async () => {
      for await (const event of sseEvents(resume.body!)) if (event.data.includes('"id":41')) return event.data;
      return 'the resumed stream ended without the result';
    })().catch(() => 'no result: the resumed stream was a fresh one, with nothing replayed');
    const result = await within(
      10_000,
      readResult,
      'no result within 10 s: the resumed stream was a fresh one (the stream had been evicted)',
      () => resumed.abort(),
    );
    assert.match(result, /Long running operation completed/, result);

    // One session holds at most 3 GET streams (--sse-max-open-streams-per-session): a fourth closes the oldest.
    const gets = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const controller = new AbortController();
        const response = await fetch(mcpUrl, {
          headers: { ...sessionHeaders(gateway.key.secret, victimSession), accept: 'text/event-stream' },
          signal: controller.signal,
        });
        assert.equal(response.status, 200);
        return { response, controller };
      }),
    );
    try {
      const ended = await Promise.all(
        gets.map(({ response }) =>
          within(
            3_000,
            response.text().then(
              () => true,
              () => true,
            ),
            false,
            () => undefined,
          ),
        ),
      );
      assert.equal(
        ended.filter(Boolean).length,
        1,
        `exactly one GET stream of the session was closed (${JSON.stringify(ended)})`,
      );
    } finally {
      for (const { controller } of gets) controller.abort();
    }
  });
  test(`finding 13: JSON nested too deeply is refused at the edge on every entry, before the upstream is called; \
the node serves on`, async () => {
    const depth = 20_000;
    const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const call = (id: number) =>
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"ev__echo",` +
      `"arguments":{"message":"deep-${id}","deep":${deep}}}}`;
    const auth = { authorization: `Bearer ${intruder}` };
    const streamable = await postMcp(mcpUrl, call(1), { ...auth, 'mcp-protocol-version': SESSION_VERSION });
    assert.equal(streamable.status, 400);
    const refused = (await streamable.json()) as { error: { code: number; message: string } };
    assert.equal(refused.error.code, -32600);
    assert.match(refused.error.message, /nested more than 128 levels deep; send flatter arguments/);

    const hostile = await openSse(mcpUrl, intruder);
    try {
      const message = await fetch(hostile.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: call(2),
      });
      assert.equal(message.status, 400);
      assert.match(await message.text(), /-32600.*nested more than 128 levels deep/);
    } finally {
      hostile.close();
    }

    const rest = await fetch(new URL('/v1/mcp/tool/execute', mcpUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: `{"name":"ev__echo","arguments":{"message":"deep-3","deep":${deep}}}`,
    });
    assert.equal(rest.status, 400);
    assert.match(await rest.text(), /JSON_TOO_DEEP.*nested more than 128 levels deep/);

    // The node answers the next call; once its record is stored (a node ships its records in order), no call of the
    // refused requests has one: none reached the upstream.
    const agent = await legacyAgent(new URL(mcpUrl), intruder);
    try {
      const result = await agent.client.callTool({ name: 'ev__echo', arguments: { message: 'flat-13' } });
      assert.match(firstText(result), /Echo: flat-13/);
    } finally {
      await agent.client.close();
    }
    const count = async (pattern: string) =>
      (
        await gateway.schema.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM audit_events WHERE kind = 'tool_call' AND arguments LIKE $1`,
          [pattern],
        )
      )[0]!.n;
    await eventually('the flat call is stored', async () => (await count('%flat-13%')) === 1);
    assert.equal(await count('%deep-%'), 0);
  });

  test(`finding 14: an upstream's result nested too deeply to serialize is answered as a JSON-RPC error with the \
call's id, on every entry, and recorded`, async () => {
    const auth = { authorization: `Bearer ${intruder}` };
    const agent = await legacyAgent(new URL(mcpUrl), intruder);
    try {
      await eventually('the raw upstream is connected', async () =>
        (await agent.client.listTools()).tools.some((tool) => tool.name === 'raw__deep'),
      );
      await assert.rejects(agent.client.callTool({ name: 'raw__deep', arguments: {} }), /nested too deeply/);
    } finally {
      await agent.client.close();
    }

    const call = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'raw__deep' } });
    const streamable = await postMcp(mcpUrl, call(41), sessionHeaders(intruder, await openSession(mcpUrl, intruder)));
    assert.equal(streamable.status, 200);
    const answered = (await streamable.json()) as { id: number; error: { code: number; message: string } };
    assert.equal(answered.id, 41);
    assert.equal(answered.error.code, -32603);
    assert.match(answered.error.message, /upstream's result is nested too deeply/);

    const rest = await fetch(new URL('/v1/mcp/tool/execute', mcpUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ name: 'raw__deep', arguments: {} }),
    });
    assert.equal(rest.status, 500);
    assert.match(await rest.text(), /upstream's result is nested too deeply/);
    await eventually('the three calls are recorded, as errors', async () => {
      const rows = await gateway.schema.query<{ status: string; code: number; message: string; result: unknown }>(
        `SELECT status, error_code AS code, error_message AS message, result FROM audit_events
          WHERE kind = 'tool_call' AND tool = 'raw__deep'`,
      );
      return (
        rows.length === 3 &&
        rows.every((r) => r.status === 'error' && r.code === -32603 && /nested too deeply/.test(r.message))
      );
    });
  });

  test(`finding 14, content logging off: the 2025-era, 2026-07-28 and REST encoders answer the same error \
themselves`, async () => {
    const secret = gateway.keys[2]!.secret;
    const legacy = await legacyAgent(new URL(mcpUrl), secret);
    try {
      await eventually('the raw upstream is connected', async () =>
        (await legacy.client.listTools()).tools.some((tool) => tool.name === 'raw__deep'),
      );
      await assert.rejects(legacy.client.callTool({ name: 'raw__deep', arguments: {} }), /nested too deeply/);
    } finally {
      await legacy.client.close();
    }
    const modern = await modernAgent(new URL(mcpUrl), secret);
    try {
      await assert.rejects(modern.callTool({ name: 'raw__deep', arguments: {} }), /nested too deeply/);
    } finally {
      await modern.close();
    }
    const rest = await fetch(new URL('/v1/mcp/tool/execute', mcpUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({ name: 'raw__deep', arguments: {} }),
    });
    assert.equal(rest.status, 500);
    assert.match(await rest.text(), /INTERNAL_ERROR.*upstream's result is nested too deeply/);
  });
});
