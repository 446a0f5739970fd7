import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../common/src/index.ts';
import type { RelayEnvelope } from '../../proto/gen/portcullis/v1/config.ts';
import { InFlightRequests, RequestAbort } from '../../data-plane/src/http/in-flight.ts';
import { EndedSessions } from '../../data-plane/src/mcp/ended-sessions.ts';
import { ServerRequests } from '../../data-plane/src/mcp/server-requests.ts';
import { signSessionToken } from '../../data-plane/src/mcp/session-token.ts';
import { NodeRelay } from '../../data-plane/src/relay/node-relay.ts';
import { RelayHub } from '../../control-plane/src/grpc/relay-hub.ts';
import { parseRelayMessage } from '../../control-plane/src/grpc/messages.ts';
import { buildConfig, sessionKey, testKey } from '../support/mcp-server-harness.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';

/**
 * The receiving end of relays, in process: two NodeRelays wired back to back (what the control
 * plane does between their streams), each checking what it is told against its own state.
 */

const KEYS = [sessionKey('s1')];
const config = buildConfig([testKey('k1', ['*']), testKey('k2', ['*'])], KEYS);
const logger = createLogger({ level: 'silent' });

function token(keyId: string): string {
  return signSessionToken(
    {
      keyId,
      protocolVersion: '2025-11-25',
      clientInfo: {},
      clientCapabilities: {},
      issuedAt: Math.floor(Date.now() / 1000),
    },
    KEYS,
  );
}

function node(tag: string, calls?: { silenceMs: number; keepAliveMs: number }) {
  const serverRequests = new ServerRequests(tag);
  const inFlight = new InFlightRequests();
  const endedSessions = new EndedSessions();
  const dropped: string[] = [];
  const relay = new NodeRelay({
    serverRequests,
    inFlight,
    endedSessions,
    getConfig: () => config,
    logger,
    onSessionEnded: (id) => dropped.push(id),
    ...(calls === undefined ? {} : { calls }),
  });
  return { serverRequests, inFlight, endedSessions, relay, dropped };
}

/** Two nodes whose envelopes reach each other (with the tag routing of the control plane). */
function pair(calls?: { silenceMs: number; keepAliveMs: number }) {
  const a = node('tagA', calls);
  const b = node('tagB', calls);
  const sent: RelayEnvelope[] = [];
  a.relay.connect(
    (envelope) => (
      sent.push(envelope), b.relay.receive({ ...envelope, fromNodeId: 'node-a', fromNodeTag: 'tagA' }), true
    ),
  );
  b.relay.connect(
    (envelope) => (
      sent.push(envelope), a.relay.receive({ ...envelope, fromNodeId: 'node-b', fromNodeTag: 'tagB' }), true
    ),
  );
  return { a, b, sent };
}

/** A RequestAbort over a fake connection that never closes. */
function abortable(): RequestAbort {
  const socket = { destroyed: false };
  const res = new EventEmitter() as unknown as ServerResponse;
  return new RequestAbort({ socket } as unknown as IncomingMessage, res);
}

test('DN-RELAY-SERVER-REPLY: a relayed reply settles only a request sent to the same session and key', async () => {
  const { a, b, sent } = pair();
  const session = token('k1');
  const owner = { sessionId: session, keyId: 'k1' };
  let id = '';
  const answer = a.serverRequests
    .forSession(owner)
    .send(
      (json) => (id = (JSON.parse(json) as { id: string }).id),
      { method: 'elicitation/create', params: {} },
      undefined,
    );
  assert.match(id, /^pcn-tagA-[A-Za-z0-9_-]{22}$/, 'the id names the node and is random');
  assert.equal(ServerRequests.nodeTagOf(id), 'tagA');

  // Another session of the same key, and the same session under another key: relayed, refused at node A.
  assert.equal(
    b.relay.reply({ jsonrpc: '2.0', id, result: { action: 'decline' } }, { sessionId: token('k1'), keyId: 'k1' }),
    'relayed',
  );
  assert.equal(
    b.relay.reply({ jsonrpc: '2.0', id, result: { action: 'decline' } }, { sessionId: session, keyId: 'k2' }),
    'relayed',
  );
  assert.equal(a.serverRequests.size, 1, 'still pending');
  assert.equal(sent[0]?.toNodeTag, 'tagA');

  assert.equal(
    b.relay.reply({ jsonrpc: '2.0', id, result: { action: 'accept', content: { name: 'Ada' } } }, owner),
    'relayed',
  );
  assert.deepEqual(await answer, { action: 'accept', content: { name: 'Ada' } });
  assert.equal(a.serverRequests.size, 0);
  assert.equal(
    b.relay.reply({ jsonrpc: '2.0', id: 'pcn-tagB-AAAAAAAAAAAAAAAAAAAAAA', result: {} }, owner),
    'own',
    'a reply naming this node is not relayed',
  );
  assert.equal(b.relay.reply({ jsonrpc: '2.0', id: 3, result: {} }, owner), 'not-a-server-request');
});

test('DN-RELAY-SERVER-REPLY: a reply posted locally by another session does not settle the request either', () => {
  const a = node('tagA');
  const owner = { sessionId: token('k1'), keyId: 'k1' };
  let id = '';
  void a.serverRequests
    .forSession(owner)
    .send((json) => (id = (JSON.parse(json) as { id: string }).id), { method: 'roots/list' }, undefined);
  assert.equal(
    a.serverRequests.settle({ jsonrpc: '2.0', id, result: {} }, { sessionId: token('k1'), keyId: 'k1' }),
    false,
  );
  assert.equal(a.serverRequests.settle({ jsonrpc: '2.0', id, result: {} }), false);
  assert.equal(a.serverRequests.settle({ jsonrpc: '2.0', id, result: {} }, owner), true);
});

test("DN-RELAY-CANCEL: a relayed cancel aborts the request only when the session verifies as that key's", () => {
  const { a, b } = pair();
  const session = token('k1');
  const abort = abortable();
  const signal = abort.signal();
  a.inFlight.register(session, 5, abort);
  b.relay.cancel({ sessionId: session, keyId: 'k2' }, 5, 'wrong key');
  assert.equal(signal.aborted, false);
  b.relay.cancel({ sessionId: `${session.slice(0, -2)}xx`, keyId: 'k1' }, 5, 'forged');
  assert.equal(signal.aborted, false);
  b.relay.cancel({ sessionId: session, keyId: 'k1' }, 5, 'enough');
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, 'enough');
});

test(`DN-RELAY-SESSION-ENDED: an ended session is recorded and dropped on the other node; re-announced after a \
reconnect`, () => {
  const { a, b, sent } = pair();
  const session = token('k1');
  const claims = {
    keyId: 'k1',
    protocolVersion: '2025-11-25',
    clientInfo: {},
    clientCapabilities: {},
    issuedAt: Math.floor(Date.now() / 1000),
    signingKeyId: 's1',
  };
  a.relay.endSession(session, claims);
  assert.ok(a.endedSessions.has(session));
  assert.ok(b.endedSessions.has(session));
  assert.deepEqual(b.dropped, [session]);
  a.relay.endSession(session, claims);
  assert.equal(sent.length, 1, 'ending it again tells nobody');

  // An ended session another key claims is not recorded.
  const other = node('tagC');
  other.relay.receive({
    toNodeTag: '',
    fromNodeId: 'node-x',
    fromNodeTag: '',
    keyId: 'k2',
    sessionId: token('k1'),
    kind: { $case: 'ended', value: { expiresAtMs: Date.now() + 60_000 } },
  });
  assert.equal(other.endedSessions.size, 0);
  // Malformed envelopes are ignored.
  other.relay.receive({
    toNodeTag: 'bad tag!',
    fromNodeId: '',
    fromNodeTag: '',
    keyId: '',
    sessionId: '',
    kind: undefined,
  });
  assert.equal(other.endedSessions.size, 0);

  a.relay.announceEnded();
  assert.equal(sent.length, 2);
  assert.equal(sent[1]?.kind?.$case, 'ended');
  assert.equal(sent[1]?.sessionId, session);
});

const FAST = { silenceMs: 150, keepAliveMs: 40 };
const TARGET_A = { toNodeTag: 'tagA', keyId: 'k1', sessionId: '' };

test(`DN-INPUT-OTHER-NODE: a relayed call is answered by the node it went to; keep-alives carry a call that outlasts \
the silence timeout; notifications reach the caller`, async () => {
  const { a, b } = pair(FAST);
  a.relay.calls.handle('inputRetryJson', async (call) => {
    call.notify('{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}');
    await new Promise((r) => setTimeout(r, 400));
    return { answer: { status: 200, bodyJson: `{"jsonrpc":"2.0","id":1,"result":{"echo":${call.json}}}` } };
  });
  const notes: string[] = [];
  const outcome = await b.relay.calls.call(TARGET_A, { $case: 'inputRetryJson', value: '{"x":1}' }, undefined, (json) =>
    notes.push(json),
  );
  assert.deepEqual(outcome, {
    kind: 'answer',
    status: 200,
    body: '{"jsonrpc":"2.0","id":1,"result":{"echo":{"x":1}}}',
  });
  assert.equal(notes.length, 1);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(a.relay.calls.pending, { outgoing: 0, served: 0 });
});

test(`DN-INPUT-OTHER-NODE-UNREACHABLE: a call nobody answers fails after the silence timeout; without a control plane \
at once`, async () => {
  const lonely = node('tagL', FAST);
  lonely.relay.connect(() => true);
  const started = Date.now();
  const silent = await lonely.relay.calls.call(
    { ...TARGET_A, toNodeTag: 'tagGone' },
    { $case: 'sseMessagesJson', value: '{}' },
    undefined,
  );
  assert.equal(silent.kind, 'failed');
  assert.equal(silent.kind === 'failed' && silent.reason, 'unreachable');
  assert.ok(Date.now() - started >= FAST.silenceMs);
  const offline = node('tagO', FAST);
  const refused = await offline.relay.calls.call(TARGET_A, { $case: 'sseMessagesJson', value: '{}' }, undefined);
  assert.equal(refused.kind === 'failed' && refused.reason, 'no-control-plane');
});

test(`DN-INPUT-OTHER-NODE: updates from another node than the target, or for another key, are ignored; the caller's \
abort cancels the call there`, async () => {
  const { a, b } = pair(FAST);
  let seen: AbortSignal | undefined;
  a.relay.calls.handle('inputRetryJson', (call) => {
    seen = call.signal;
    return new Promise((resolve) =>
      call.signal.addEventListener('abort', () => resolve({ answer: { status: 200, bodyJson: '' } })),
    );
  });
  const abort = new AbortController();
  const sentCalls: RelayEnvelope[] = [];
  const spy = node('tagB', FAST);
  spy.relay.connect((envelope) => (sentCalls.push(envelope), true));
  const pending = spy.relay.calls.call(TARGET_A, { $case: 'inputRetryJson', value: '{}' }, abort.signal);
  const callId = sentCalls[0]?.kind?.$case === 'call' ? sentCalls[0].kind.value.callId : '';
  const answer = (fromNodeTag: string, keyId: string): RelayEnvelope => ({
    toNodeTag: 'tagB',
    fromNodeId: 'x',
    fromNodeTag,
    keyId,
    sessionId: '',
    kind: {
      $case: 'callUpdate',
      value: { callId, update: { $case: 'answer', value: { status: 200, bodyJson: 'forged' } } },
    },
  });
  spy.relay.receive(answer('tagEvil', 'k1'));
  spy.relay.receive(answer('tagA', 'k2'));
  assert.equal(spy.relay.calls.pending.outgoing, 1, 'still waiting');
  spy.relay.receive(answer('tagA', 'k1'));
  assert.deepEqual(await pending, { kind: 'answer', status: 200, body: 'forged' });

  const cancelled = b.relay.calls.call(TARGET_A, { $case: 'inputRetryJson', value: '{}' }, abort.signal);
  assert.equal(seen?.aborted, false);
  abort.abort();
  assert.equal((await cancelled).kind === 'failed', true);
  assert.equal(seen?.aborted, true, 'the serving node aborted the call');
});

test(`DN-INPUT-OTHER-NODE: an answer that proves undeliverable is replaced by the handler's short \
fallback`, async () => {
  const a = node('tagA', FAST);
  const sent: RelayEnvelope[] = [];
  a.relay.connect((envelope) => (sent.push(envelope), true));
  a.relay.calls.handle('inputRetryJson', async () => ({
    answer: { status: 200, bodyJson: 'big' },
    fallback: { status: 200, bodyJson: 'small' },
  }));
  a.relay.receive({
    toNodeTag: 'tagA',
    fromNodeId: 'node-b',
    fromNodeTag: 'tagB',
    keyId: 'k1',
    sessionId: '',
    kind: { $case: 'call', value: { callId: 'c1', request: { $case: 'inputRetryJson', value: '{}' } } },
  });
  await new Promise((r) => setImmediate(r));
  const bodies = () =>
    sent.flatMap((e) =>
      e.kind?.$case === 'callUpdate' && e.kind.value.update?.$case === 'answer'
        ? [e.kind.value.update.value.bodyJson]
        : [],
    );
  assert.deepEqual(bodies(), ['big']);
  a.relay.receive({
    toNodeTag: 'tagA',
    fromNodeId: '',
    fromNodeTag: 'tagB',
    keyId: 'k1',
    sessionId: '',
    kind: { $case: 'callUpdate', value: { callId: 'c1', update: { $case: 'undeliverable', value: 'too large' } } },
  });
  assert.deepEqual(bodies(), ['big', 'small']);
  assert.equal(
    sent.every((e) => e.toNodeTag === 'tagB'),
    true,
  );
});

test(`DN-INPUT-OTHER-NODE: the control plane stamps the sender's tag, and tells the sender at once when a call cannot \
be delivered`, () => {
  const hub = new RelayHub(undefined, logger);
  const delivered: Record<string, RelayEnvelope[]> = { a: [], b: [] };
  const a = { nodeId: 'node-a', nodeTag: 'tagA', deliver: (e: RelayEnvelope) => void delivered['a']!.push(e) };
  const b = { nodeId: 'node-b', nodeTag: 'tagB', deliver: (e: RelayEnvelope) => void delivered['b']!.push(e) };
  hub.join(a);
  hub.join(b);
  const call = (toNodeTag: string) =>
    parseRelayMessage({
      toNodeTag,
      keyId: 'k1',
      sessionId: '',
      kind: { $case: 'call', value: { callId: 'c9', request: { $case: 'inputRetryJson', value: '{}' } } },
    });
  hub.fromNode(b, call('tagA'));
  assert.equal(delivered['a']![0]?.fromNodeTag, 'tagB');
  assert.equal(delivered['a']![0]?.fromNodeId, 'node-b');
  hub.fromNode(b, call('tagGone'));
  const told = delivered['b']![0];
  assert.equal(told?.kind?.$case === 'callUpdate' && told.kind.value.update?.$case, 'undeliverable');
  assert.equal(told?.kind?.$case === 'callUpdate' && told.kind.value.callId, 'c9');
  assert.throws(
    () =>
      parseRelayMessage({
        toNodeTag: '',
        keyId: 'k1',
        sessionId: '',
        kind: { $case: 'call', value: { callId: 'c9', request: { $case: 'inputRetryJson', value: '{}' } } },
      }),
    /toNodeTag/,
  );
  assert.throws(
    () =>
      parseRelayMessage({
        toNodeTag: 'tagA',
        keyId: 'k1',
        sessionId: '',
        kind: { $case: 'reply', value: { responseJson: '{}' } },
      }),
    /sessionId/,
  );
});
