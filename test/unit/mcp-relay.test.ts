import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../common/src/index.ts';
import type { RelayEnvelope } from '../../proto/gen/portcullis/v1/config.ts';
import { InFlightRequests, RequestAbort } from '../../data-plane/src/http/in-flight.ts';
import { EndedSessions } from '../../data-plane/src/mcp/ended-sessions.ts';
import { ServerRequests } from '../../data-plane/src/mcp/server-requests.ts';
import { signSessionToken } from '../../data-plane/src/mcp/session-token.ts';
import { NodeRelay } from '../../data-plane/src/relay/node-relay.ts';
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
  return signSessionToken({ keyId, protocolVersion: '2025-11-25', clientInfo: {}, clientCapabilities: {}, issuedAt: Math.floor(Date.now() / 1000) }, KEYS);
}

function node(tag: string) {
  const serverRequests = new ServerRequests(tag);
  const inFlight = new InFlightRequests();
  const endedSessions = new EndedSessions();
  const dropped: string[] = [];
  const relay = new NodeRelay({ serverRequests, inFlight, endedSessions, getConfig: () => config, logger, onSessionEnded: (id) => dropped.push(id) });
  return { serverRequests, inFlight, endedSessions, relay, dropped };
}

/** Two nodes whose envelopes reach each other (with the tag routing of the control plane). */
function pair() {
  const a = node('tagA');
  const b = node('tagB');
  const sent: RelayEnvelope[] = [];
  a.relay.connect((envelope) => (sent.push(envelope), b.relay.receive({ ...envelope, fromNodeId: 'node-a', fromNodeTag: 'tagA' }), true));
  b.relay.connect((envelope) => (sent.push(envelope), a.relay.receive({ ...envelope, fromNodeId: 'node-b', fromNodeTag: 'tagB' }), true));
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
  const answer = a.serverRequests.forSession(owner).send((json) => (id = (JSON.parse(json) as { id: string }).id), { method: 'elicitation/create', params: {} }, undefined);
  assert.match(id, /^pcn-tagA-\d+$/);
  assert.equal(ServerRequests.nodeTagOf(id), 'tagA');

  // Another session of the same key, and the same session under another key: relayed, refused at node A.
  assert.equal(b.relay.reply({ jsonrpc: '2.0', id, result: { action: 'decline' } }, { sessionId: token('k1'), keyId: 'k1' }), 'relayed');
  assert.equal(b.relay.reply({ jsonrpc: '2.0', id, result: { action: 'decline' } }, { sessionId: session, keyId: 'k2' }), 'relayed');
  assert.equal(a.serverRequests.size, 1, 'still pending');
  assert.equal(sent[0]?.toNodeTag, 'tagA');

  assert.equal(b.relay.reply({ jsonrpc: '2.0', id, result: { action: 'accept', content: { name: 'Ada' } } }, owner), 'relayed');
  assert.deepEqual(await answer, { action: 'accept', content: { name: 'Ada' } });
  assert.equal(a.serverRequests.size, 0);
  assert.equal(b.relay.reply({ jsonrpc: '2.0', id: 'pcn-tagB-9', result: {} }, owner), 'own', 'a reply naming this node is not relayed');
  assert.equal(b.relay.reply({ jsonrpc: '2.0', id: 3, result: {} }, owner), 'not-a-server-request');
});

test('DN-RELAY-SERVER-REPLY: a reply posted locally by another session does not settle the request either', () => {
  const a = node('tagA');
  const owner = { sessionId: token('k1'), keyId: 'k1' };
  let id = '';
  void a.serverRequests.forSession(owner).send((json) => (id = (JSON.parse(json) as { id: string }).id), { method: 'roots/list' }, undefined);
  assert.equal(a.serverRequests.settle({ jsonrpc: '2.0', id, result: {} }, { sessionId: token('k1'), keyId: 'k1' }), false);
  assert.equal(a.serverRequests.settle({ jsonrpc: '2.0', id, result: {} }), false);
  assert.equal(a.serverRequests.settle({ jsonrpc: '2.0', id, result: {} }, owner), true);
});

test('DN-RELAY-CANCEL: a relayed cancel aborts the request only when the session verifies as that key\'s', () => {
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

test('DN-RELAY-SESSION-ENDED: an ended session is recorded and dropped on the other node; re-announced after a reconnect', () => {
  const { a, b, sent } = pair();
  const session = token('k1');
  const claims = { keyId: 'k1', protocolVersion: '2025-11-25', clientInfo: {}, clientCapabilities: {}, issuedAt: Math.floor(Date.now() / 1000), signingKeyId: 's1' };
  a.relay.endSession(session, claims);
  assert.ok(a.endedSessions.has(session));
  assert.ok(b.endedSessions.has(session));
  assert.deepEqual(b.dropped, [session]);
  a.relay.endSession(session, claims);
  assert.equal(sent.length, 1, 'ending it again tells nobody');

  // An ended session another key claims is not recorded.
  const other = node('tagC');
  other.relay.receive({ toNodeTag: '', fromNodeId: 'node-x', fromNodeTag: '', keyId: 'k2', sessionId: token('k1'), kind: { $case: 'ended', value: { expiresAtMs: Date.now() + 60_000 } } });
  assert.equal(other.endedSessions.size, 0);
  // Malformed envelopes are ignored.
  other.relay.receive({ toNodeTag: 'bad tag!', fromNodeId: '', fromNodeTag: '', keyId: '', sessionId: '', kind: undefined });
  assert.equal(other.endedSessions.size, 0);

  a.relay.announceEnded();
  assert.equal(sent.length, 2);
  assert.equal(sent[1]?.kind?.$case, 'ended');
  assert.equal(sent[1]?.sessionId, session);
});
