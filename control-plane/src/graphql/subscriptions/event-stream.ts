import { GraphQLError } from 'graphql';

/** `extensions.code` of a subscription ended because its client read slower than events came. */
export const SUBSCRIBER_TOO_SLOW = 'SUBSCRIBER_TOO_SLOW';
/** `extensions.code` of a subscription refused because the process serves its maximum. */
export const TOO_MANY_SUBSCRIPTIONS = 'TOO_MANY_SUBSCRIPTIONS';

/** Events one subscription may hold unread before it is ended (the client is too slow). */
export const MAX_PENDING_EVENTS = 1000;
/** Subscriptions open in this process, all connections together. */
export const MAX_OPEN_STREAMS = 1000;

let openStreams = 0;

/**
 * An async iterator over the events a listener registration delivers, holding at most
 * `maxPending` unread: past that the subscription ends with SUBSCRIBER_TOO_SLOW rather than
 * growing without bound (graphql-ws reads the next event only once the last one was written to
 * the socket, so a client that does not read shows up here). Unregisters on return or error,
 * also when returned before the first read (a generator's `finally` would not run then).
 */
export function eventStream<T>(
  register: (push: (event: T) => void) => () => void,
  accept: (event: T) => boolean = () => true,
  maxPending = MAX_PENDING_EVENTS,
): AsyncIterableIterator<T> {
  if (openStreams >= MAX_OPEN_STREAMS)
    throw new GraphQLError(`The control plane serves at most ${MAX_OPEN_STREAMS} subscriptions; try again later`, {
      extensions: { code: TOO_MANY_SUBSCRIPTIONS, limit: MAX_OPEN_STREAMS },
    });
  openStreams++;
  const pending: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | undefined;
  let failure: GraphQLError | undefined;
  let done = false;
  const unregister = register((event) => {
    if (done || failure !== undefined || !accept(event)) return;
    if (waiting !== undefined) {
      const resolve = waiting;
      waiting = undefined;
      resolve({ value: event, done: false });
    } else if (pending.length >= maxPending) {
      failure = new GraphQLError(
        `More than ${maxPending} events waited unread; the subscription ended. Read faster, or narrow the filter.`,
        { extensions: { code: SUBSCRIBER_TOO_SLOW, limit: maxPending } },
      );
      pending.length = 0;
    } else pending.push(event);
  });
  const finish = (): IteratorResult<T> => {
    if (!done) {
      done = true;
      openStreams--;
      unregister();
      pending.length = 0;
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
    }
    return { value: undefined, done: true };
  };
  return {
    next() {
      if (done) return Promise.resolve({ value: undefined, done: true });
      if (failure !== undefined) {
        const error = failure;
        finish();
        return Promise.reject(error);
      }
      if (pending.length > 0) return Promise.resolve({ value: pending.shift() as T, done: false });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return() {
      return Promise.resolve(finish());
    },
    throw(error?: unknown) {
      finish();
      return Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
