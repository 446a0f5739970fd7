import { setMaxListeners } from 'node:events';

/**
 * A request's cancellation, for the paths that only need to be told (the lean relay): an
 * AbortController with its EventTarget plumbing costs every request a few microseconds and several
 * allocations, so the signal is made only for the APIs that take one (the SDK's client, fetch).
 */
export interface Cancellation {
  readonly aborted: boolean;
  /** Why it was aborted (an AbortSignal's `reason`); undefined while it is not. */
  readonly reason: unknown;
  /** Runs `listener` once when aborted (never when already aborted: check `aborted` first). */
  onAbort(listener: () => void): void;
  offAbort(listener: () => void): void;
  /** An AbortSignal that follows this cancellation, made on first use. */
  signal(): AbortSignal;
}

/** The Cancellation of an existing AbortSignal. */
export function signalCancellation(signal: AbortSignal): Cancellation {
  return {
    get aborted() {
      return signal.aborted;
    },
    get reason() {
      return signal.aborted ? (signal.reason as unknown) : undefined;
    },
    onAbort: (listener) => signal.addEventListener('abort', listener, { once: true }),
    offAbort: (listener) => signal.removeEventListener('abort', listener),
    signal: () => signal,
  };
}

/** The reason `AbortController.abort()` gives when called without one. */
export function defaultAbortReason(): DOMException {
  return new DOMException('This operation was aborted', 'AbortError');
}

/**
 * A Cancellation shared by many concurrent requests (a script's nested calls): its listeners are kept
 * in a Set, so adding and removing one costs the same at 5,000 pending calls as at one. An AbortSignal
 * checks each new listener against every one it holds (Node's EventTarget), which made a script
 * fanning out thousands of calls spend more time adding listeners than relaying.
 */
export class SharedCancellation implements Cancellation {
  private readonly listeners = new Set<() => void>();
  private readonly controller = new AbortController();
  private abortedWith: { readonly reason: unknown } | undefined;

  constructor() {
    // The paths that take a signal (an SDK client's request) may each listen on it: no leak warning.
    setMaxListeners(0, this.controller.signal);
  }

  get aborted(): boolean {
    return this.abortedWith !== undefined;
  }

  get reason(): unknown {
    return this.abortedWith?.reason;
  }

  onAbort(listener: () => void): void {
    if (this.abortedWith === undefined) this.listeners.add(listener);
  }

  offAbort(listener: () => void): void {
    this.listeners.delete(listener);
  }

  /** An AbortSignal that follows this cancellation (listeners on it are for the few paths that need one). */
  signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts every request listening (each listener once); later calls do nothing. */
  abort(reason: unknown = defaultAbortReason()): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = { reason };
    const listeners = [...this.listeners];
    this.listeners.clear();
    this.controller.abort(reason);
    for (const listener of listeners) listener();
  }
}
