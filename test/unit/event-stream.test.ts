import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphQLError } from 'graphql';
import { eventStream, SUBSCRIBER_TOO_SLOW } from '../../control-plane/src/graphql/subscriptions/event-stream.ts';

/** A listener registration like ApprovalService.onRequested, counting who listens. */
function source() {
  const listeners = new Set<(n: number) => void>();
  return {
    listeners,
    register: (push: (n: number) => void) => {
      listeners.add(push);
      return () => listeners.delete(push);
    },
    emit: (n: number) => {
      for (const listener of listeners) listener(n);
    },
  };
}

describe('eventStream (the queue behind each subscription)', () => {
  test('delivers accepted events in order, to a waiting reader and from the queue', async () => {
    const events = source();
    const stream = eventStream(events.register, (n) => n % 2 === 0, 10);
    const first = stream.next();
    events.emit(2);
    events.emit(3);
    events.emit(4);
    assert.deepEqual(await first, { value: 2, done: false });
    assert.deepEqual(await stream.next(), { value: 4, done: false });
  });

  test('a reader falling more than maxPending behind ends with SUBSCRIBER_TOO_SLOW and stops listening', async () => {
    const events = source();
    const stream = eventStream(events.register, undefined, 3);
    for (let n = 0; n < 4; n++) events.emit(n);
    await assert.rejects(stream.next(), (error: unknown) => {
      assert.ok(error instanceof GraphQLError);
      assert.equal(error.extensions['code'], SUBSCRIBER_TOO_SLOW);
      return true;
    });
    assert.equal(events.listeners.size, 0);
    assert.deepEqual(await stream.next(), { value: undefined, done: true });
  });

  test('returning (the client completed or went away), even before any read, stops listening', async () => {
    const events = source();
    const stream = eventStream(events.register);
    assert.equal(events.listeners.size, 1);
    const waiting = stream.next();
    await stream.return?.();
    assert.deepEqual(await waiting, { value: undefined, done: true });
    assert.equal(events.listeners.size, 0);
    const unread = eventStream(events.register);
    await unread.return?.();
    assert.equal(events.listeners.size, 0);
  });
});
