import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RequestAbort } from '../../data-plane/src/http/in-flight.ts';

/** A RequestAbort over a stand-in connection: `close(finished)` ends the response as node:http does. */
function request(): { abort: RequestAbort; close(finished: boolean): void; socket: { destroyed: boolean } } {
  const socket = { destroyed: false };
  const res = Object.assign(new EventEmitter(), { writableFinished: false });
  const abort = new RequestAbort({ socket } as unknown as IncomingMessage, res as unknown as ServerResponse);
  return {
    abort,
    socket,
    close(finished) {
      res.writableFinished = finished;
      res.emit('close');
    },
  };
}

test(`DN-CANCEL-LISTENER: a listener is told when the connection closes before the answer, with no AbortSignal \
made`, () => {
  const r = request();
  let told = 0;
  r.abort.onAbort(() => (told += 1));
  assert.equal(r.abort.aborted, false);
  r.close(false);
  assert.equal(told, 1);
  assert.equal(r.abort.aborted, true);
  assert.equal((r.abort.reason as DOMException).name, 'AbortError');
  assert.equal(r.abort.signal().aborted, true, 'a signal asked for afterwards is already aborted');
});

test('DN-CANCEL-LISTENER: an answered request aborts nothing; a removed listener is not told', () => {
  const answered = request();
  let told = 0;
  answered.abort.onAbort(() => (told += 1));
  answered.close(true);
  assert.equal(told, 0);
  assert.equal(answered.abort.aborted, false);

  const removed = request();
  const listener = () => (told += 1);
  removed.abort.onAbort(listener);
  removed.abort.offAbort(listener);
  removed.close(false);
  assert.equal(told, 0);
  assert.equal(removed.abort.aborted, true);
});

test(`DN-CANCEL-LISTENER: a cancel reaches listeners and the signal with its reason; a call that outlives its \
connection is not aborted by the close`, () => {
  const r = request();
  const signal = r.abort.signal();
  let told = 0;
  r.abort.onAbort(() => (told += 1));
  r.abort.keepRunningWhile({ outlivesConnection: true });
  r.close(false);
  assert.equal(signal.aborted, false);
  r.abort.cancel('changed my mind');
  assert.equal(told, 1);
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, 'changed my mind');
  r.abort.cancel('again');
  assert.equal(told, 1, 'told once');

  const gone = request();
  gone.socket.destroyed = true;
  assert.equal(gone.abort.aborted, true, 'a request whose socket is already gone is aborted when first asked');
});

test(`DN-CANCEL-LISTENER: a finished call stops watching its connection (a legacy SSE stream serves many calls and \
must not collect a listener for each)`, () => {
  const socket = { destroyed: false };
  const stream = Object.assign(new EventEmitter(), { writableFinished: false });
  stream.setMaxListeners(0); // as the legacy SSE endpoint sets on its stream: one listener per call in flight
  const before = stream.listenerCount('close');
  const calls = Array.from(
    { length: 50 },
    () => new RequestAbort({ socket } as unknown as IncomingMessage, stream as unknown as ServerResponse),
  );
  let told = 0;
  for (const call of calls) call.onAbort(() => (told += 1));
  assert.equal(stream.listenerCount('close'), before + 50);
  for (const call of calls.slice(1)) call.release();
  assert.equal(stream.listenerCount('close'), before + 1);
  stream.emit('close');
  assert.equal(told, 1, 'only the call still running is aborted when the stream closes');
});
