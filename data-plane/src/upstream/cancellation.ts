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
