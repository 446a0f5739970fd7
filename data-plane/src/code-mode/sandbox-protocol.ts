/**
 * Messages between the sandbox pool (main thread) and one sandbox worker. Plain data: structured-cloned, so
 * values travel as strings (JSON or text) in flat arrays, and the tool calls one turn of a script makes (a
 * `Promise.all`) go in one message, as do the answers that arrive in one turn of the main thread.
 */

/** Per-run limits; every one is enforced inside the worker, the wall time also by the pool (terminate). */
export interface SandboxLimits {
  /** Wall time of one run, tool calls included (ms). */
  readonly timeMs: number;
  /** QuickJS heap of one run (bytes). */
  readonly memoryBytes: number;
  /** QuickJS stack of one run (bytes; at most 256 KiB, larger aborted on dispose here). */
  readonly stackBytes: number;
  /** Tool calls one run may make. */
  readonly maxToolCalls: number;
  /** Bytes of return value JSON plus captured console output. */
  readonly maxOutputBytes: number;
}

/** Why a script failed, as the model is told. */
export type ScriptErrorKind = 'syntax' | 'runtime' | 'timeout' | 'memory' | 'limit';

export type ScriptOutcome =
  | { readonly ok: true; readonly valueJson: string; readonly logs: string }
  | {
      readonly ok: false;
      readonly kind: ScriptErrorKind;
      readonly message: string;
      /** The script's line (1-based) where it failed, when known. */
      readonly line?: number | undefined;
      readonly logs: string;
    };

/**
 * What a worker is started with: the pool's limits (to make its first run's sandbox ahead), and a flag
 * in memory shared with the pool, 1 while the worker holds a sandbox made ahead for its next run (read
 * by the pool to send a script where it starts at once; no message, so no turn of either event loop).
 */
export interface SandboxWorkerData {
  readonly limits: SandboxLimits;
  readonly spareMade: SharedArrayBuffer;
}

export type ToMain =
  | { readonly type: 'ready' }
  /** Tool calls, four entries each: call id, upstream, tool, the arguments as JSON (see CALL_FIELDS). */
  | { readonly type: 'calls'; readonly runId: number; readonly calls: readonly (number | string)[] }
  /** `retire`: the worker should not be reused (its heap may be spoiled); the pool replaces it. */
  | { readonly type: 'done'; readonly runId: number; readonly outcome: ScriptOutcome; readonly retire: boolean }
  /** A finished run's QuickJS objects could not be freed after its `done` went: replace the worker when it is idle. */
  | { readonly type: 'spoiled' };

export type ToWorker =
  | { readonly type: 'run'; readonly runId: number; readonly code: string; readonly limits: SandboxLimits }
  /** Answers to tool calls, three entries each: call id, AnswerKind, the string (see ANSWER_FIELDS). */
  | { readonly type: 'answers'; readonly runId: number; readonly answers: readonly (number | string)[] };

/** Entries per tool call in a `calls` message. */
export const CALL_FIELDS = 4;
/** Entries per answer in an `answers` message. */
export const ANSWER_FIELDS = 3;

/**
 * What an answer's string is: the value as JSON; a tool's text, which the script gets parsed when it is
 * JSON and as a string otherwise (the worker tells which, off the main thread); or the error text the
 * script's `await` throws.
 */
export const AnswerKind = { Json: 0, Text: 1, Fail: 2 } as const;
export type AnswerKind = (typeof AnswerKind)[keyof typeof AnswerKind];

/** Text that reads as JSON (an object, array, string, number or literal) is that value, other text the string. */
const JSON_START = /^\s*(?:[[{"\d-]|true\s*$|false\s*$|null\s*$)/;

/** What a tool's text is to the script, as JSON: the text when it is JSON, else the text as a JSON string. */
export function textAsJson(text: string): string {
  if (JSON_START.test(text)) {
    try {
      JSON.parse(text);
      return text;
    } catch {
      // Not JSON after all: the script gets the string.
    }
  }
  return JSON.stringify(text);
}
