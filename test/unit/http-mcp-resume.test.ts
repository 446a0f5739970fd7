import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { PortcullisError } from '../../common/src/index.ts';
import { EventStore, type EventStoreOptions } from '../../data-plane/src/http/event-store.ts';
import { MemoryToolRouter, type MemoryToolHandler } from '../support/memory-tool-router.ts';
import {
  buildConfig,
  sessionKey,
  startServer,
  testKey,
  type RunningServer,
  postInitialize,
} from '../support/mcp-server-harness.ts';
import { eventually } from '../support/eventually.ts';

// ---------------------------------------------------------------------------------------------------
// Fixtures

interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

interface Upstream {
  readonly router: MemoryToolRouter;
  /** Released by the test: the `gated` tool reports progress 1, waits for it, then 2, 3 and answers. */
  release: Gate;
  /** Set when the `stuck` tool's call was aborted. */
  readonly aborted: { value: boolean };
}

function progress(options: Parameters<MemoryToolHandler>[1], n: number): void {
  options.onProgress?.({ progressToken: options.meta?.['progressToken'], progress: n, total: 3 });
}

function upstream(): Upstream {
  const state: Upstream = {
    router: undefined as unknown as MemoryToolRouter,
    release: gate(),
    aborted: { value: false },
  };
  const gated: MemoryToolHandler = async (_args, options) => {
    progress(options, 1);
    await state.release.promise;
    progress(options, 2);
    progress(options, 3);
    return { content: [{ type: 'text', text: 'done after the drop' }] };
  };
  /** Reports progress (so the answer is a stream), then waits until aborted. */
  const stuck: MemoryToolHandler = (_args, options) => {
    progress(options, 1);
    return new Promise((_resolve, reject) => {
      options.signal?.addEventListener('abort', () => {
        state.aborted.value = true;
        reject(new PortcullisError('UPSTREAM_REQUEST_CANCELLED', 'cancelled'));
      });
    });
  };
  /** Sends nothing before its answer (a plain JSON answer), and waits until aborted. */
  const silent: MemoryToolHandler = (_args, options) =>
    new Promise((_resolve, reject) => {
      options.signal?.addEventListener('abort', () => {
        state.aborted.value = true;
        reject(new PortcullisError('UPSTREAM_REQUEST_CANCELLED', 'cancelled'));
      });
    });
  const slow: MemoryToolHandler = async (_args, options) => {
    for (let i = 1; i <= 3; i += 1) progress(options, i);
    return { content: [{ type: 'text', text: 'finished' }] };
  };
  (state as { router: MemoryToolRouter }).router = new MemoryToolRouter([
    { upstream: 'everything', name: 'gated', handler: gated },
    { upstream: 'everything', name: 'stuck', handler: stuck },
    { upstream: 'everything', name: 'silent', handler: silent },
    { upstream: 'everything', name: 'slow', handler: slow },
    { upstream: 'everything', name: 'echo' },
  ]);
  return state;
}

const key = testKey('k1', ['everything__*']);
const signing = [sessionKey('s1')];

async function withServer(
  store: EventStoreOptions,
  fn: (server: RunningServer, up: Upstream) => Promise<void>,
): Promise<void> {
  const up = upstream();
  const server = await startServer(up.router, buildConfig([key], signing), { eventStore: { retryMs: 50, ...store } });
  try {
    await fn(server, up);
  } finally {
    up.release.open();
    // Sockets of fetches the test cut can linger in undici for seconds: end them rather than wait.
    server.gateway.server.closeAllConnections();
    await server.close();
  }
}

/**
 * Resolves once the node has seen the connection of the next request it takes closed: an agent's drop has reached it
 * (the node's own listeners on that response have all run by then).
 */
function nextConnectionClosed(server: RunningServer): Promise<void> {
  return new Promise((resolve) => {
    server.gateway.server.once('request', (_req: IncomingMessage, res: ServerResponse) =>
      res.once('close', () => resolve()),
    );
  });
}

// ---------------------------------------------------------------------------------------------------
// Raw wire helpers

interface SseEvent {
  readonly id?: string;
  readonly event?: string;
  readonly data: string;
  readonly retry?: number;
}

const TIMEOUT = Symbol('timeout');

/** Reads SSE events off a response body one at a time (comments skipped). */
class SseReader {
  private buffer = '';
  private readonly reader: ReadableStreamDefaultReader<string>;

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event; undefined when the stream ended; TIMEOUT when none came within `ms`. */
  async next(ms = 2000): Promise<SseEvent | undefined | typeof TIMEOUT> {
    const deadline = Date.now() + ms;
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end !== -1) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event = parseBlock(block);
        if (event !== undefined) return event;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) return TIMEOUT;
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<typeof TIMEOUT>((r) => (timer = setTimeout(() => r(TIMEOUT), left))),
      ]);
      clearTimeout(timer);
      if (chunk === TIMEOUT) return TIMEOUT;
      if (chunk.done) return undefined;
      this.buffer += chunk.value;
    }
  }

  /** The next event, which must exist. */
  async event(ms = 2000): Promise<SseEvent> {
    const event = await this.next(ms);
    assert.ok(
      event !== undefined && event !== TIMEOUT,
      `an SSE event (got ${String(event === TIMEOUT ? 'a timeout' : 'the end of the stream')})`,
    );
    return event;
  }

  /** Every event up to the end of the stream. */
  async rest(ms = 2000): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    for (;;) {
      const event = await this.next(ms);
      assert.notEqual(event, TIMEOUT, 'the stream to end');
      if (event === undefined || event === TIMEOUT) return events;
      events.push(event);
    }
  }
}

function parseBlock(block: string): SseEvent | undefined {
  let id: string | undefined;
  let event: string | undefined;
  let retry: number | undefined;
  const data: string[] = [];
  let fields = 0;
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    fields += 1;
    if (name === 'id') id = value;
    else if (name === 'event') event = value;
    else if (name === 'retry') retry = Number(value);
    else if (name === 'data') data.push(value);
  }
  return fields === 0 ? undefined : { id, event, retry, data: data.join('\n') };
}

function message(event: SseEvent): Record<string, unknown> & {
  method?: string;
  id?: unknown;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
} {
  return JSON.parse(event.data) as Record<string, unknown>;
}

/** The stream part of an event id (`<node>.<stream>`), and its sequence number. */
function splitId(id: string | undefined): { stream: string; seq: number } {
  assert.ok(id !== undefined, 'the event has an id');
  const at = id.lastIndexOf('_');
  return { stream: id.slice(0, at), seq: Number(id.slice(at + 1)) };
}

interface RawSession {
  readonly headers: Record<string, string>;
  /** Opens the GET stream (with `Last-Event-ID` when given); abort with the returned controller. */
  get(lastEventId?: string): Promise<{ response: Response; reader: SseReader; controller: AbortController }>;
  /** POSTs a tools/call; the response as it arrives. */
  call(name: string, id: number, controller?: AbortController): Promise<Response>;
}

async function rawSession(server: RunningServer, protocolVersion = '2025-11-25'): Promise<RawSession> {
  const init = await postInitialize(server.url, key.secret, protocolVersion);
  assert.equal(init.status, 200);
  await init.text();
  const headers = {
    authorization: `Bearer ${key.secret}`,
    'mcp-session-id': init.headers.get('mcp-session-id')!,
    'mcp-protocol-version': protocolVersion,
  };
  return {
    headers,
    async get(lastEventId) {
      const controller = new AbortController();
      const response = await fetch(server.url, {
        headers: {
          ...headers,
          accept: 'text/event-stream',
          ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
        },
        signal: controller.signal,
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'text/event-stream');
      return { response, reader: new SseReader(response.body!), controller };
    },
    call(name, id, controller) {
      return fetch(server.url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name, arguments: {}, _meta: { progressToken: `p${id}` } },
        }),
        signal: controller?.signal,
      });
    },
  };
}

/** Swallows the rejection of a body read that the test aborted. */
function quietly(controller: AbortController): void {
  controller.abort();
}

// ---------------------------------------------------------------------------------------------------
// The official v1 SDK client as the 2025-era agent, with a fetch that lets the test cut connections

interface CuttableAgent {
  readonly client: Client;
  /** The live GET (notification stream) and POST-stream connections, oldest first. */
  readonly gets: AbortController[];
  readonly posts: AbortController[];
  /** The `Last-Event-ID` of each resuming GET, in order. */
  readonly resumes: string[];
  /** Resuming GETs wait for this gate (open by default). */
  resumeGate: Promise<void>;
}

async function cuttableAgent(server: RunningServer): Promise<CuttableAgent> {
  const agent: CuttableAgent = {
    client: new Client({ name: 'resuming-agent', version: '1.0.0' }),
    gets: [],
    posts: [],
    resumes: [],
    resumeGate: Promise.resolve(),
  };
  const cuttable = async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    const resumeFrom = headers.get('last-event-id');
    if (init?.method === 'GET' && resumeFrom !== null) {
      agent.resumes.push(resumeFrom);
      await agent.resumeGate;
    }
    const cut = new AbortController();
    const response = await fetch(url, {
      ...init,
      signal: init?.signal ? AbortSignal.any([init.signal, cut.signal]) : cut.signal,
    });
    if (response.headers.get('content-type') === 'text/event-stream')
      (init?.method === 'GET' ? agent.gets : agent.posts).push(cut);
    return response;
  };
  const transport = new StreamableHTTPClientTransport(server.url, {
    requestInit: { headers: { authorization: `Bearer ${key.secret}` } },
    fetch: cuttable,
  });
  await agent.client.connect(transport);
  agent.client.onerror = () => undefined; // the cut connections are reported here
  return agent;
}

// ---------------------------------------------------------------------------------------------------

test(`DN-SSE-EVENT-IDS DN-TRANSPORT-JSON: every event of a 2025 session's POST and GET streams has an id, unique in \
the session; 2025-11-25 streams open with a priming event; plain JSON answers stay plain`, async () => {
  await withServer({}, async (server, up) => {
    const session = await rawSession(server);
    const notifications = await session.get();
    try {
      const primingGet = await notifications.reader.event();
      assert.equal(primingGet.data, '', 'the GET stream opens with a priming event');
      assert.equal(primingGet.retry, 50, 'carrying the configured retry');
      assert.equal(splitId(primingGet.id).seq, 0);

      const answer = await session.call('everything__slow', 2);
      assert.equal(answer.headers.get('content-type'), 'text/event-stream');
      const events = await new SseReader(answer.body!).rest();
      assert.equal(events[0]!.data, '', 'the POST stream opens with a priming event');
      assert.equal(events[0]!.retry, 50);
      assert.deepEqual(
        events.slice(1).map((e) => message(e).method ?? 'result'),
        ['notifications/progress', 'notifications/progress', 'notifications/progress', 'result'],
      );
      assert.deepEqual(message(events.at(-1)!).result?.['content'], [{ type: 'text', text: 'finished' }]);
      const ids = events.map((e) => splitId(e.id));
      assert.equal(new Set(ids.map((i) => i.stream)).size, 1, 'one stream');
      assert.deepEqual(
        ids.map((i) => i.seq),
        [0, 1, 2, 3, 4],
      );

      up.router.add({ upstream: 'everything', name: 'fresh' });
      const changed = await notifications.reader.event();
      assert.equal(message(changed).method, 'notifications/tools/list_changed');
      const all = [...events.map((e) => e.id), primingGet.id, changed.id];
      assert.equal(new Set(all).size, all.length, "ids are unique across the session's streams");
      assert.notEqual(splitId(changed.id).stream, ids[0]!.stream);

      // A second POST stream of the same session is another stream.
      const again = await new SseReader((await session.call('everything__slow', 3)).body!).rest();
      assert.notEqual(splitId(again[0]!.id).stream, ids[0]!.stream);

      // Nothing before the result: plain JSON, no id, no stream.
      const plain = await session.call('everything__echo', 4);
      assert.equal(plain.headers.get('content-type'), 'application/json');
      assert.equal(((await plain.json()) as { id: number }).id, 4);
    } finally {
      quietly(notifications.controller);
    }

    // Before 2025-11-25 the SDK's clients cannot take an event without data: ids, but no priming event.
    const older = await rawSession(server, '2025-06-18');
    const events = await new SseReader((await older.call('everything__slow', 5)).body!).rest();
    assert.equal(message(events[0]!).method, 'notifications/progress');
    assert.deepEqual(
      events.map((e) => splitId(e.id).seq),
      [1, 2, 3, 4],
    );
  });
});

test(`DN-SSE-RESUME-GET: a dropped GET stream resumed with Last-Event-ID replays what was sent while it was away, \
then carries on (raw wire and the SDK v1 client)`, async () => {
  await withServer({}, async (server, up) => {
    const session = await rawSession(server);
    const first = await session.get();
    const priming = await first.reader.event();
    quietly(first.controller);
    await eventually('the node to see the drop', () => server.gateway.notificationStreamCount === 0);
    // The node hears of the change at once (add() returns after every stream was told): recorded while away.
    up.router.add({ upstream: 'everything', name: 'while-away' });

    const resumed = await session.get(priming.id);
    try {
      const reprimed = await resumed.reader.event();
      assert.deepEqual(
        { id: reprimed.id, data: reprimed.data, retry: reprimed.retry },
        { id: priming.id, data: '', retry: 50 },
        "a resumed stream is primed again with the agent's cursor",
      );
      const missed = await resumed.reader.event();
      assert.equal(
        message(missed).method,
        'notifications/tools/list_changed',
        'the notification sent while disconnected',
      );
      assert.deepEqual(splitId(missed.id), { stream: splitId(priming.id).stream, seq: 1 });
      assert.equal(server.gateway.notificationStreamCount, 1);
      up.router.add({ upstream: 'everything', name: 'after-resume' });
      const live = await resumed.reader.event();
      assert.equal(message(live).method, 'notifications/tools/list_changed');
      assert.equal(splitId(live.id).seq, 2, 'the same stream goes on');
    } finally {
      quietly(resumed.controller);
    }

    // The SDK v1 client resumes its GET stream by itself after a network drop.
    const agent = await cuttableAgent(server);
    try {
      let changed = 0;
      agent.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void (changed += 1));
      await eventually(
        "the SDK client's GET stream",
        () => agent.gets.length === 1 && server.gateway.notificationStreamCount === 1,
      );
      const hold = gate();
      agent.resumeGate = hold.promise;
      agent.gets[0]!.abort();
      await eventually(
        'the client to try to resume, and the node to see the drop',
        () => agent.resumes.length === 1 && server.gateway.notificationStreamCount === 0,
      );
      up.router.add({ upstream: 'everything', name: 'while-sdk-away' }); // recorded for the dropped stream at once
      assert.equal(changed, 0);
      hold.open();
      await eventually('the missed list_changed, replayed', () => changed === 1);
      assert.equal(splitId(agent.resumes[0]).seq, 0, 'the client resumed from the priming event');
    } finally {
      await agent.client.close();
    }
  });
});

test(`DN-SSE-RESUME-POST: a POST stream dropped mid-call and resumed by GET with Last-Event-ID delivers the remaining \
progress and the result there (SDK v1 client and raw wire)`, async () => {
  await withServer({}, async (server, up) => {
    const agent = await cuttableAgent(server);
    try {
      const seen: number[] = [];
      const call = agent.client.callTool({ name: 'everything__gated', arguments: {} }, undefined, {
        onprogress: (p) => void seen.push(p.progress),
      });
      await eventually('the first progress on the POST stream', () => seen.length === 1 && agent.posts.length === 1);
      agent.posts[0]!.abort();
      await eventually('the client to resume the POST stream with GET', () => agent.resumes.length === 1);
      up.release.open();
      const result = await call;
      assert.deepEqual(result.content, [{ type: 'text', text: 'done after the drop' }]);
      assert.deepEqual(seen, [1, 2, 3]);
      assert.equal(splitId(agent.resumes[0]).seq, 1, 'resumed after the first progress');
    } finally {
      await agent.client.close();
    }

    // On the wire: the resuming GET carries the rest of the POST stream, the result last, and ends.
    up.release = gate();
    const session = await rawSession(server);
    const cut = new AbortController();
    const dropSeen = nextConnectionClosed(server);
    const answer = new SseReader((await session.call('everything__gated', 2, cut)).body!);
    await answer.event(); // priming
    const first = await answer.event();
    assert.equal(message(first).method, 'notifications/progress');
    quietly(cut);
    await dropSeen;
    up.release.open();
    const resumed = await session.get(first.id);
    const [reprimed, ...rest] = await resumed.reader.rest();
    assert.deepEqual(
      { id: reprimed?.id, data: reprimed?.data },
      { id: first.id, data: '' },
      "primed again with the agent's cursor",
    );
    assert.deepEqual(
      rest.map((e) => message(e).method ?? 'result'),
      ['notifications/progress', 'notifications/progress', 'result'],
    );
    assert.deepEqual(
      rest.map((e) => splitId(e.id)),
      [2, 3, 4].map((seq) => ({ stream: splitId(first.id).stream, seq })),
    );
    assert.equal(message(rest[2]!).id, 2);
  });
});

test(`DN-SSE-RESUME-FRESH: a Last-Event-ID of another node, of another session, unknown, malformed or expired gets a \
fresh stream with nothing replayed`, async () => {
  const up = upstream();
  const a = await startServer(up.router, buildConfig([key], signing), { eventStore: { windowMs: 200, retryMs: 50 } });
  const b = await startServer(up.router, buildConfig([key], signing), { eventStore: { windowMs: 200, retryMs: 50 } });
  const open: AbortController[] = [];
  try {
    const owner = await rawSession(a);
    const held = await owner.get();
    open.push(held.controller);
    const heldPriming = await held.reader.event();
    const heldStream = splitId(heldPriming.id).stream;
    // What a replay would wrongly hand out: an event on the owner's stream.
    up.router.add({ upstream: 'everything', name: 'private-to-owner' });
    const ownerEvent = await held.reader.event();
    assert.equal(message(ownerEvent).method, 'notifications/tools/list_changed');

    const expectFresh = async (session: RawSession, lastEventId: string, what: string): Promise<void> => {
      const got = await session.get(lastEventId);
      open.push(got.controller);
      const first = await got.reader.event();
      assert.equal(first.data, '', `${what}: a fresh stream opens with its own priming event`);
      assert.notEqual(splitId(first.id).stream, heldStream, `${what}: not the named stream`);
      assert.equal(await got.reader.next(100), TIMEOUT, `${what}: nothing replayed`);
      quietly(got.controller);
    };
    // The session id is valid on every node; the stream lives only on the node that held it.
    await expectFresh(await rawSession(b), heldPriming.id!, 'another node');
    await expectFresh(await rawSession(a), heldPriming.id!, 'another session');
    await expectFresh(owner, `${heldStream.split('.')[0]}.zzzz_3`, 'an unknown stream');
    await expectFresh(owner, 'not-an-event-id', 'a malformed id');

    // Expired: the node gives a dropped stream up after the window.
    held.controller.abort();
    await eventually('the drops', () => a.gateway.notificationStreamCount === 0);
    // A fixed time on purpose: the resume window is to pass.
    await new Promise((r) => setTimeout(r, 350));
    await expectFresh(owner, ownerEvent.id!, 'an expired stream');
  } finally {
    for (const controller of open) quietly(controller);
    for (const node of [a, b]) node.gateway.server.closeAllConnections();
    await Promise.all([a.close(), b.close()]);
  }
});

test(`DN-SSE-DISCONNECT-GRACE DN-CANCEL-DISCONNECT: a dropped 2025 POST stream keeps its call running for the resume \
window, then cancels it upstream; a dropped plain-JSON call, or one of an ended session, is cancelled at \
once`, async () => {
  await withServer({ windowMs: 300 }, async (server, up) => {
    const session = await rawSession(server);
    const cut = new AbortController();
    const answer = new SseReader((await session.call('everything__stuck', 2, cut)).body!);
    await answer.event(); // priming
    await answer.event(); // progress
    const droppedAt = Date.now();
    quietly(cut);
    // A fixed time on purpose: that the call is not cancelled in it is the behaviour under test.
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(up.aborted.value, false, 'a disconnection is not a cancellation');
    await eventually('the call to be cancelled once nobody resumed it', () => up.aborted.value, 2000);
    assert.ok(Date.now() - droppedAt >= 290, 'not before the window');

    // A plain JSON answer cannot be resumed: its dropped connection cancels the call at once.
    up.aborted.value = false;
    const jsonCut = new AbortController();
    const pending = session.call('everything__silent', 3, jsonCut).catch(() => undefined);
    await eventually(
      'the call to reach the upstream',
      () => up.router.calls.filter((c) => c.exposedName === 'everything__silent').length === 1,
    );
    quietly(jsonCut);
    await pending;
    await eventually('the plain-JSON call to be cancelled', () => up.aborted.value, 250);

    // Ending the session (DELETE) gives up its dropped streams: their calls are cancelled at once.
    up.aborted.value = false;
    const lastCut = new AbortController();
    const lastDropSeen = nextConnectionClosed(server);
    const last = new SseReader((await session.call('everything__stuck', 4, lastCut)).body!);
    await last.event();
    await last.event();
    quietly(lastCut);
    await lastDropSeen;
    const ended = await fetch(server.url, { method: 'DELETE', headers: session.headers });
    assert.equal(ended.status, 200);
    await eventually("the ended session's call to be cancelled", () => up.aborted.value, 150);
  });
});

test(`DN-SSE-POLLING: with a maximum connection time, a 2025-11-25 POST stream and GET stream are closed by the node, \
the call going on; Last-Event-ID carries on (primed again, closed again); older revisions are never \
closed`, async () => {
  await withServer({ maxConnectionMs: 150 }, async (server, up) => {
    const session = await rawSession(server);
    const started = Date.now();
    const answer = new SseReader((await session.call('everything__gated', 2)).body!);
    const priming = await answer.event();
    assert.equal(priming.data, '');
    const first = await answer.event();
    assert.equal(message(first).params?.['progress'], 1);
    assert.equal(await answer.next(1000), undefined, 'the node ends the POST connection before the result');
    assert.ok(Date.now() - started >= 140, 'not before the maximum connection time');
    assert.equal(server.gateway.polledSseConnections, 1);
    assert.equal(up.aborted.value, false);

    // The resuming GET is primed again and, while the call still waits, closed again.
    const resumed = await session.get(first.id);
    const reprimed = await resumed.reader.event();
    assert.deepEqual(
      { id: reprimed.id, data: reprimed.data, retry: reprimed.retry },
      { id: first.id, data: '', retry: 50 },
    );
    assert.equal(await resumed.reader.next(1000), undefined, 'the resumed connection is closed too');
    assert.equal(server.gateway.polledSseConnections, 2);

    // The call kept running: released once the agent resumed again, its rest arrives on that resumed stream.
    const last = await session.get(reprimed.id);
    up.release.open();
    const [, ...rest] = await last.reader.rest();
    assert.deepEqual(
      rest.map((e) => message(e).method ?? 'result'),
      ['notifications/progress', 'notifications/progress', 'result'],
    );
    assert.deepEqual(message(rest[2]!).result?.['content'], [{ type: 'text', text: 'done after the drop' }]);

    // The GET notification stream is polled the same way and loses nothing.
    const notifications = await session.get();
    const getPriming = await notifications.reader.event();
    assert.equal(await notifications.reader.next(1000), undefined, 'the GET connection is closed');
    up.router.add({ upstream: 'everything', name: 'while-polling' }); // recorded for the closed stream at once
    const again = await session.get(getPriming.id);
    await again.reader.event(); // primed again
    const missed = await again.reader.event();
    assert.equal(message(missed).method, 'notifications/tools/list_changed');
    assert.deepEqual(splitId(missed.id), { stream: splitId(getPriming.id).stream, seq: 1 });
    quietly(again.controller);
    await eventually('the node to see the drop', () => server.gateway.notificationStreamCount === 0);
    const polled = server.gateway.polledSseConnections;
    assert.ok(polled >= 3);

    // Before 2025-11-25 clients cannot take a priming event, so they could not resume: never closed.
    up.release = gate();
    const older = await rawSession(server, '2025-06-18');
    const olderAnswer = new SseReader((await older.call('everything__gated', 3)).body!);
    assert.equal(message(await olderAnswer.event()).params?.['progress'], 1);
    assert.equal(await olderAnswer.next(400), TIMEOUT, "the older session's POST stream stays open");
    up.release.open();
    const olderRest = await olderAnswer.rest();
    assert.equal(message(olderRest.at(-1)!).id, 3);
    const olderGet = await older.get();
    assert.equal(await olderGet.reader.next(400), TIMEOUT, "the older session's GET stream stays open");
    quietly(olderGet.controller);
    assert.equal(server.gateway.polledSseConnections, polled);
  });
});

test(`DN-SSE-POLLING DN-SSE-DISCONNECT-GRACE: a stream closed by polling that nobody resumes is given up after the \
resume window, its call cancelled upstream`, async () => {
  await withServer({ maxConnectionMs: 100, windowMs: 300 }, async (server, up) => {
    const session = await rawSession(server);
    const answer = new SseReader((await session.call('everything__stuck', 2)).body!);
    await answer.event(); // priming
    await answer.event(); // progress
    assert.equal(await answer.next(1000), undefined, 'closed by the node');
    const closedAt = Date.now();
    // A fixed time on purpose: that the call is not cancelled in it is the behaviour under test.
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(up.aborted.value, false, 'the call goes on while the agent may still resume');
    await eventually('the call to be cancelled once nobody resumed it', () => up.aborted.value, 2000);
    assert.ok(Date.now() - closedAt >= 290, 'not before the window');
  });
});

// ---------------------------------------------------------------------------------------------------
// The store's bounds, replayed over a real HTTP response

async function replayServer(
  store: EventStore,
): Promise<{ server: Server; replay(lastEventId: string): Promise<string[] | string> }> {
  const server = createServer((req, res) => {
    const found = store.find(String(req.headers['last-event-id']), 'holder');
    if (!found.ok) return void res.end(found.reason);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    found.stream.attach(res, found.afterSeq);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    server,
    async replay(lastEventId) {
      const response = await fetch(url, { headers: { 'last-event-id': lastEventId } });
      if (response.headers.get('content-type') !== 'text/event-stream') return response.text();
      return (await new SseReader(response.body!).rest()).map((e) => e.data);
    },
  };
}

test(`DN-SSE-EVENT-STORE-BOUNDS: the event store keeps a bounded number of events and bytes per stream, of streams \
and bytes in all, for a bounded time`, async () => {
  const store = new EventStore({
    nodeTag: 'n1',
    maxEventsPerStream: 3,
    maxBytesPerStream: 400,
    maxStreams: 3,
    windowMs: 1000,
  });
  const { server, replay } = await replayServer(store);
  const total = new EventStore({ nodeTag: 'n2', maxBytes: 1000 });
  try {
    // Per stream, by count: the newest three events remain.
    const counted = store.create('holder', 'k1');
    for (let i = 1; i <= 5; i += 1) counted.send(`"e${i}"`);
    counted.end('"result"');
    assert.deepEqual(await replay(`${counted.id}_0`), ['"e4"', '"e5"', '"result"']);
    assert.deepEqual(
      await replay(`${counted.id}_5`),
      ['"result"'],
      'a cursor inside the window replays what follows it',
    );

    // Per stream, by bytes: the newest event is kept even when it alone is over the bound.
    const sized = store.create('holder', 'k1');
    sized.send(JSON.stringify('a'.repeat(150)));
    sized.send(JSON.stringify('b'.repeat(150)));
    sized.end(JSON.stringify('c'.repeat(500)));
    assert.deepEqual(await replay(`${sized.id}_0`), [JSON.stringify('c'.repeat(500))]);

    // Streams in all: a fourth stream drops the oldest; a dropped stream that neither ended nor had a
    // connection is abandoned (for a POST stream: its call is cancelled).
    let abandoned = 0;
    const waiting = store.create('holder', 'k1');
    waiting.onAbandoned = () => void (abandoned += 1);
    waiting.send('"pending"');
    assert.equal(store.size, 3);
    store.create('holder', 'k1').send('"newest"');
    assert.equal(store.size, 3);
    assert.equal(await replay(`${counted.id}_0`), 'unknown-or-expired', 'the oldest stream was dropped');
    assert.equal(abandoned, 0, 'an ended stream is not abandoned');
    store.create('holder', 'k1');
    store.create('holder', 'k1');
    assert.equal(abandoned, 1);
    assert.equal(await replay(`${waiting.id}_0`), 'unknown-or-expired');

    // Time: a stream idle (dropped or ended) longer than the window is given up; memory is returned.
    store.sweep(Date.now() + 1001);
    assert.equal(store.size, 0);
    assert.equal(store.heldBytes, 0);

    // Bytes in all: recording past the bound drops the oldest other streams first.
    const old = total.create('holder', 'k1');
    old.send(JSON.stringify('o'.repeat(400)));
    const middle = total.create('holder', 'k1');
    middle.send(JSON.stringify('m'.repeat(400)));
    assert.equal(total.size, 2);
    const young = total.create('holder', 'k1');
    young.send(JSON.stringify('y'.repeat(400)));
    assert.ok(total.heldBytes <= 1000, `held bytes ${total.heldBytes} within the bound`);
    assert.deepEqual(
      [
        total.find(`${old.id}_1`, 'holder').ok,
        total.find(`${middle.id}_1`, 'holder').ok,
        total.find(`${young.id}_1`, 'holder').ok,
      ],
      [false, true, true],
    );
    assert.equal(total.find(`${young.id}_1`, 'other-holder').ok, false, 'only its own session resumes a stream');
    assert.deepEqual(total.find('n1.1_1', 'holder'), { ok: false, reason: 'other-node' });
  } finally {
    store.close();
    total.close();
    server.close();
  }
});
