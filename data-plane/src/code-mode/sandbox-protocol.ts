/** Messages between the sandbox pool (main thread) and one sandbox worker. Plain data: structured-cloned. */

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

export type ToMain =
  | { readonly type: 'ready' }
  | {
      readonly type: 'call';
      readonly runId: number;
      readonly callId: number;
      readonly upstream: string;
      readonly tool: string;
      readonly argsJson: string;
    }
  /** `retire`: the worker should not be reused (its heap may be spoiled); the pool replaces it. */
  | { readonly type: 'done'; readonly runId: number; readonly outcome: ScriptOutcome; readonly retire: boolean };

export type ToWorker =
  | { readonly type: 'run'; readonly runId: number; readonly code: string; readonly limits: SandboxLimits }
  /** A tool call's answer: the value as JSON, or the error text the script's await throws. */
  | { readonly type: 'answer'; readonly runId: number; readonly callId: number; readonly json: string }
  | { readonly type: 'fail'; readonly runId: number; readonly callId: number; readonly message: string };
