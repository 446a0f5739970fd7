import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import {
  AnswerKind,
  CALL_FIELDS,
  type SandboxLimits,
  type SandboxWorkerData,
  type ScriptOutcome,
  type ToMain,
  type ToWorker,
} from './sandbox-protocol.ts';

export interface SandboxPoolOptions {
  /** Warm workers kept (each holds one QuickJS WebAssembly module). */
  readonly workers: number;
  readonly limits: SandboxLimits;
  /** Runs waiting for a free worker beyond which new runs are refused (kind `limit`). */
  readonly maxQueued: number;
  readonly logger?: Logger;
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = {
  timeMs: 10_000,
  memoryBytes: 64 * 1024 * 1024,
  stackBytes: 256 * 1024,
  maxToolCalls: 1_000,
  maxOutputBytes: 256 * 1024,
};

export const DEFAULT_SANDBOX_POOL: SandboxPoolOptions = { workers: 2, limits: DEFAULT_SANDBOX_LIMITS, maxQueued: 64 };

/** The largest QuickJS stack that disposes cleanly here (STACK.md: larger aborted on dispose). */
export const MAX_STACK_BYTES = 256 * 1024;

/**
 * A tool call's value for the script: as JSON, or a tool's text (the script gets it parsed when it is JSON, else
 * the string; the worker decides, off the main thread).
 */
export type ToolAnswer = { readonly json: string; readonly text?: undefined } | { readonly text: string };

/** Answers one tool call of a script; rejects with the text the script's `await` throws. */
export type ToolCallHandler = (upstream: string, tool: string, args: unknown) => Promise<ToolAnswer>;

/** How long past its wall time a run may take before its worker is terminated (the worker's own timer comes first). */
const TERMINATE_GRACE_MS = 250;

const OWN_EXTENSION = extname(fileURLToPath(import.meta.url));
const WORKER_FILE = new URL(`./sandbox-worker${OWN_EXTENSION}`, import.meta.url);
/**
 * Run from TypeScript sources (tsx), the worker registers tsx before loading its .ts: module hooks
 * registered with `--import` do not reach worker threads on Node 20.
 */
const WORKER_URL =
  OWN_EXTENSION === '.ts'
    ? new URL(
        `data:text/javascript,${encodeURIComponent(
          `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); ` +
            `await import(${JSON.stringify(WORKER_FILE.href)});`,
        )}`,
      )
    : WORKER_FILE;

interface Job {
  readonly code: string;
  readonly onCall: ToolCallHandler;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (outcome: ScriptOutcome) => void;
}

class SandboxWorker {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  job: { readonly runId: number; readonly job: Job; readonly timer: NodeJS.Timeout } | undefined;
  dead = false;
  /** Answers of the current run not yet posted: every answer of one turn of the event loop goes in one message. */
  private outbox: (number | string)[] = [];
  private flushing = false;
  /** Calls of the current run sent to the handler and not answered yet. */
  outstanding = 0;
  /** Told by the worker that it should not be reused: retired when its current run ends. */
  spoiled = false;
  /** Set by the worker while it holds a sandbox made for its next run (SandboxWorkerData). */
  private readonly spareMade = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    limits: SandboxLimits,
    onMessage: (self: SandboxWorker, message: ToMain) => void,
    onExit: (self: SandboxWorker) => void,
  ) {
    // The worker needs no Node heap to speak of: its scripts live in QuickJS' WebAssembly memory. It gets the
    // pool's limits to make its first run's sandbox ahead.
    this.worker = new Worker(WORKER_URL, {
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 },
      workerData: { limits, spareMade: this.spareMade.buffer as SharedArrayBuffer } satisfies SandboxWorkerData,
    });
    this.worker.unref();
    this.ready = new Promise((resolve, reject) => {
      const first = (message: ToMain) => {
        if (message.type === 'ready') resolve();
      };
      this.worker.once('message', first);
      this.worker.once('error', reject);
    });
    this.ready.catch(() => undefined);
    this.worker.on('message', (message: ToMain) => onMessage(this, message));
    this.worker.on('error', () => undefined);
    this.worker.once('exit', () => {
      this.dead = true;
      onExit(this);
    });
  }

  /** Whether a script sent now starts in a sandbox made ahead (else the worker makes one first, ~0.6 ms). */
  get hasSpare(): boolean {
    return Atomics.load(this.spareMade, 0) === 1;
  }

  post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  /**
   * Queues an answer of the current run; posted with the others of this turn, in the loop's check phase, or at
   * once when it was the last call the script waits for (a loop of calls one at a time has nothing to batch).
   */
  answer(runId: number, callId: number, kind: AnswerKind, value: string): void {
    if (this.job?.runId !== runId) return;
    this.outbox.push(callId, kind, value);
    if (--this.outstanding === 0) return this.flush();
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(this.flush);
  }

  /** Drops what the ended run was still owed. */
  clear(): void {
    this.outbox = [];
    this.outstanding = 0;
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const answers = this.outbox;
    const runId = this.job?.runId;
    if (answers.length === 0 || runId === undefined || this.dead) return;
    this.outbox = [];
    this.post({ type: 'answers', runId, answers });
  };
}

/**
 * A pool of warm sandbox workers. A run takes an idle worker (or waits for one); a worker that
 * overruns its wall time is terminated and replaced, as is one that reports its heap spoiled.
 * Tool calls the script makes arrive here and are answered by the run's handler.
 */
export class SandboxPool {
  private readonly idle: SandboxWorker[] = [];
  private readonly all = new Set<SandboxWorker>();
  private readonly queue: Job[] = [];
  private nextRunId = 1;
  private closed = false;
  readonly limits: SandboxLimits;

  constructor(private readonly options: SandboxPoolOptions) {
    if (options.limits.stackBytes > MAX_STACK_BYTES)
      throw new RangeError(`sandbox stack must be at most ${MAX_STACK_BYTES} bytes, got ${options.limits.stackBytes}`);
    this.limits = options.limits;
  }

  /**
   * Starts the workers (the first time) and resolves once each has loaded QuickJS. Workers start on
   * first use, not with the node: a node whose keys never see code mode pays nothing for it. The
   * code-mode step warms the pool when a key in code mode lists its tools, before any script.
   */
  async warm(): Promise<void> {
    this.start();
    await Promise.all([...this.all].map((w) => w.ready));
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.options.workers; i++) this.spawn();
  }

  private started = false;

  /** How many workers were started in all (replacements included). */
  spawned = 0;
  /** Runs sent to a worker that had no sandbox made ahead: each waited for one to be made. */
  coldStarts = 0;

  /** Idle workers holding a sandbox made for their next run: a script sent now starts at once. */
  get readyWorkers(): number {
    let ready = 0;
    for (const worker of this.idle) if (worker.hasSpare) ready++;
    return ready;
  }

  run(code: string, onCall: ToolCallHandler, signal?: AbortSignal): Promise<ScriptOutcome> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(failure('runtime', 'the sandbox pool is closed'));
      const job: Job = { code, onCall, signal, resolve };
      this.start();
      // The worker idle longest: one that just finished is still making its next sandbox (sandbox-worker.ts).
      const worker = this.idle.shift();
      if (worker !== undefined) return this.dispatch(worker, job);
      if (this.queue.length >= this.options.maxQueued)
        return resolve(failure('limit', `too many scripts are waiting for a sandbox (${this.options.maxQueued})`));
      this.queue.push(job);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.resolve(failure('runtime', 'the sandbox pool is closed'));
    await Promise.all([...this.all].map((w) => w.worker.terminate()));
  }

  private spawn(): void {
    if (this.closed) return;
    this.spawned++;
    const worker = new SandboxWorker(
      this.limits,
      (self, message) => this.onMessage(self, message),
      (self) => this.onExit(self),
    );
    this.all.add(worker);
    worker.ready.then(
      () => this.release(worker),
      (error: unknown) => this.options.logger?.error({ err: error }, 'sandbox worker failed to start'),
    );
  }

  private dispatch(worker: SandboxWorker, job: Job): void {
    if (job.signal?.aborted) {
      job.resolve(failure('runtime', 'the script was cancelled'));
      return this.release(worker);
    }
    if (!worker.hasSpare) this.coldStarts++;
    const runId = this.nextRunId++;
    const timer = setTimeout(() => this.kill(worker, 'timeout'), this.limits.timeMs + TERMINATE_GRACE_MS);
    worker.job = { runId, job, timer };
    job.signal?.addEventListener('abort', () => {
      if (worker.job?.runId === runId) this.kill(worker, 'cancelled');
    });
    worker.post({ type: 'run', runId, code: job.code, limits: this.limits });
  }

  private release(worker: SandboxWorker): void {
    if (worker.dead || this.closed) return;
    const next = this.queue.shift();
    if (next !== undefined) this.dispatch(worker, next);
    else this.idle.push(worker);
  }

  private onMessage(worker: SandboxWorker, message: ToMain): void {
    const current = worker.job;
    if (message.type === 'spoiled') {
      // Its last run's objects could not be freed after the run ended well: replace it once it is free.
      worker.spoiled = true;
      if (current === undefined) this.retire(worker);
      return;
    }
    if (message.type === 'ready' || current === undefined || message.runId !== current.runId) return;
    if (message.type === 'calls') {
      const { runId, calls } = message;
      const onCall = current.job.onCall;
      worker.outstanding += Math.floor(calls.length / CALL_FIELDS);
      for (let at = 0; at + CALL_FIELDS <= calls.length; at += CALL_FIELDS) {
        const callId = calls[at] as number;
        let args: unknown;
        try {
          args = JSON.parse(calls[at + 3] as string);
        } catch {
          args = {};
        }
        onCall(calls[at + 1] as string, calls[at + 2] as string, args).then(
          (value) =>
            value.text === undefined
              ? worker.answer(runId, callId, AnswerKind.Json, value.json)
              : worker.answer(runId, callId, AnswerKind.Text, value.text),
          (error: unknown) =>
            worker.answer(runId, callId, AnswerKind.Fail, error instanceof Error ? error.message : String(error)),
        );
      }
      return;
    }
    clearTimeout(current.timer);
    worker.job = undefined;
    worker.clear();
    current.job.resolve(message.outcome);
    if (message.retire || worker.spoiled) this.retire(worker);
    else this.release(worker);
  }

  /** Ends a run from outside (wall time, cancellation): the worker is terminated and replaced. */
  private kill(worker: SandboxWorker, why: 'timeout' | 'cancelled'): void {
    const current = worker.job;
    if (current === undefined) return;
    clearTimeout(current.timer);
    worker.job = undefined;
    worker.clear();
    current.job.resolve(
      why === 'timeout'
        ? failure('timeout', `the script ran longer than ${this.limits.timeMs} ms`)
        : failure('runtime', 'the script was cancelled'),
    );
    this.retire(worker);
  }

  private retire(worker: SandboxWorker): void {
    const at = this.idle.indexOf(worker);
    if (at !== -1) this.idle.splice(at, 1);
    if (!this.all.delete(worker)) return;
    void worker.worker.terminate();
    this.spawn();
  }

  private onExit(worker: SandboxWorker): void {
    const current = worker.job;
    if (current !== undefined) {
      clearTimeout(current.timer);
      worker.job = undefined;
      current.job.resolve(failure('runtime', 'the sandbox stopped unexpectedly'));
    }
    if (this.all.has(worker)) this.retire(worker);
  }
}

function failure(kind: Extract<ScriptOutcome, { ok: false }>['kind'], message: string): ScriptOutcome {
  return { ok: false, kind, message, logs: '' };
}
