import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventStore } from '../../data-plane/src/http/event-store.ts';

/** Issue 12 finding 4, at the store: each key and session has a share of streams and bytes. */

const chunk = (n: number) => JSON.stringify('x'.repeat(n));

test("finding 4: a key over its share of bytes loses its own oldest streams (ended first), never another key's", () => {
  const store = new EventStore({ nodeTag: 'n', maxBytes: 10_000, maxBytesPerStream: 1_500, maxBytesPerKey: 4_000 });
  try {
    const victim = store.create('session-b', 'key-b');
    victim.send(chunk(1_000));
    const running = store.create('session-a', 'key-a');
    running.send(chunk(1_000));
    const flood = Array.from({ length: 6 }, (_, i) => {
      const stream = store.create(`session-a${i % 2}`, 'key-a');
      stream.end(chunk(1_000));
      return stream;
    });
    assert.ok(store.heldBytesOf('key-a') <= 4_000, `key A holds ${store.heldBytesOf('key-a')} bytes, within its share`);
    assert.equal(store.find(`${victim.id}_1`, 'session-b').ok, true, "key B's stream is still held");
    assert.equal(
      store.find(`${running.id}_1`, 'session-a').ok,
      true,
      "key A's ended streams went before its running one",
    );
    assert.equal(store.find(`${flood[5]!.id}_1`, 'session-a1').ok, true, 'its newest stream is kept');
    assert.equal(store.find(`${flood[0]!.id}_1`, 'session-a0').ok, false, 'its oldest stream was dropped');
  } finally {
    store.close();
  }
});

test('finding 4: at the node-wide bounds the key holding the most gives way; sessions have shares of streams', () => {
  const store = new EventStore({
    nodeTag: 'n',
    maxBytes: 5_000,
    maxBytesPerStream: 1_500,
    maxStreams: 6,
    maxStreamsPerSession: 2,
  });
  try {
    const small = store.create('session-b', 'key-b');
    small.send(chunk(500));
    const heavy = Array.from({ length: 5 }, (_, i) => {
      const stream = store.create(`session-a${i}`, 'key-a');
      stream.send(chunk(1_000));
      return stream;
    });
    assert.ok(store.heldBytes <= 5_000);
    assert.equal(store.find(`${small.id}_1`, 'session-b').ok, true, 'the lighter key keeps its stream');
    assert.equal(store.find(`${heavy[0]!.id}_1`, 'session-a0').ok, false, "the heavier key's oldest went");
    const ofC = [0, 1, 2].map(() => store.create('session-c', 'key-c'));
    ofC.forEach((stream) => stream.send('"c"'));
    assert.deepEqual(
      ofC.map((stream) => store.find(`${stream.id}_1`, 'session-c').ok),
      [false, true, true],
      'a session keeps its two newest streams',
    );
    assert.equal(
      store.find(`${small.id}_1`, 'session-b').ok,
      true,
      'a full store drops from the key with the most streams',
    );
    assert.ok(store.size <= 6);
  } finally {
    store.close();
  }
});
