import { parentPort, workerData } from 'node:worker_threads';
import {
  newQuickJSWASMModuleFromVariant,
  RELEASE_SYNC,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten';
import {
  ANSWER_FIELDS,
  AnswerKind,
  textAsJson,
  type SandboxLimits,
  type SandboxWorkerData,
  type ScriptErrorKind,
  type ScriptOutcome,
  type ToMain,
  type ToWorker,
} from './sandbox-protocol.ts';

/**
 * One sandbox worker: runs scripts in QuickJS (a WebAssembly interpreter with no host bindings),
 * one at a time, each in a fresh runtime and context. The script sees only what the prelude
 * defines: `tools` (calls answered by the main thread, through the gateway's pipeline) and
 * `console`. No fs, network, process, timers, modules or host eval exist inside. Limits on memory,
 * stack, tool calls and output are enforced here; the main thread terminates this worker when a
 * run overruns its wall time (a memory bomb inside a built-in can block the interrupt handler).
 */

const port = parentPort;
if (port === null) throw new Error('sandbox-worker.ts runs only as a worker thread');

/**
 * Defines `tools` and `console` from the two host functions, keeping intrinsics the script cannot replace.
 * A tool call is `call(upstream, tool, argsJson)`, which hands back the call's id; its promise is made here and
 * waits in `waiting` (no prototype: nothing the script changes is consulted) until the host settles a batch of
 * answers with one call of `settle`: `[id, kind, value, …]` as JSON, kind 0 a value, 2 an error's text. Returns
 * the function that turns the script's value into JSON, and `settle`.
 */
const PRELUDE = `(function (call, log) {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, ProxyOf = Proxy, PromiseOf = Promise, ErrorOf = Error;
  const toText = String, freeze = Object.freeze, waiting = Object.create(null);
  const format = (v) => {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? toText(v) : s; } catch { return toText(v); }
  };
  const server = (upstream) => new ProxyOf({}, { get(_, tool) {
    if (typeof tool !== 'string' || tool === 'then') return undefined;
    return (args) => {
      const json = stringify(args === undefined ? {} : args) ?? '{}';
      return new PromiseOf((resolve, reject) => { waiting[call(upstream, tool, json)] = { resolve, reject }; });
    };
  } });
  const tools = new ProxyOf({}, { get(_, upstream) {
    return typeof upstream !== 'string' || upstream === 'then' ? undefined : server(upstream);
  } });
  const write = (...values) => { log(values.map(format).join(' ')); };
  const settle = (batch) => {
    const answers = parse(batch);
    for (let at = 0; at + 2 < answers.length; at += 3) {
      const id = answers[at], entry = waiting[id];
      if (entry === undefined) continue;
      delete waiting[id];
      if (answers[at + 1] !== 2) entry.resolve(answers[at + 2]);
      else { const error = new ErrorOf(answers[at + 2]); error.name = 'ToolError'; entry.reject(error); }
    }
  };
  Object.defineProperty(globalThis, 'tools', { value: tools, enumerable: true });
  globalThis.console = freeze({ log: write, info: write, warn: write, error: write, debug: write });
  return [(v) => { const s = stringify(v); return s === undefined ? 'null' : s; }, settle];
})`;

const FILE = 'script.js';

/** Why the run was stopped from inside (the interrupt handler then ends it, uncatchably). */
interface Abort {
  readonly kind: ScriptErrorKind;
  readonly message: string;
}

interface Run {
  readonly id: number;
  readonly limits: SandboxLimits;
  readonly runtime: QuickJSRuntime;
  readonly context: QuickJSContext;
  readonly deadline: number;
  /** Ids of the calls sent and not answered yet. */
  readonly pending: Set<number>;
  /** Calls made since the last message to the main thread (CALL_FIELDS entries each), sent together. */
  outbox: (number | string)[];
  readonly handles: QuickJSHandle[];
  result: QuickJSHandle | undefined;
  readonly stringify: QuickJSHandle;
  /** The prelude's `settle`: answers a batch of calls. */
  readonly settle: QuickJSHandle;
  abort: Abort | undefined;
  calls: number;
  logs: string[];
  logBytes: number;
  timer: NodeJS.Timeout | undefined;
  finished: boolean;
}

/**
 * A fresh runtime and context with the prelude already run, made while the worker is idle so that a run
 * starts by evaluating the script: creating a context and running the prelude take most of a start
 * (about 0.6 ms of 0.7 here). Every run still gets a new one; none is ever used twice.
 */
interface Sandbox {
  readonly runtime: QuickJSRuntime;
  readonly context: QuickJSContext;
  /** `call`, `log` and the prelude function. */
  readonly handles: QuickJSHandle[];
  readonly stringify: QuickJSHandle;
  readonly settle: QuickJSHandle;
  readonly memoryBytes: number;
  readonly stackBytes: number;
  /** The run using it, which its host functions and interrupt handler read; set when the run starts. */
  readonly slot: { run: Run | undefined };
}

let quickjs: QuickJSWASMModule;
let current: Run | undefined;
let spare: Sandbox | undefined;
const started = workerData as SandboxWorkerData;
/** 1 while `spare` holds a sandbox (see SandboxWorkerData): kept by setSpare. */
const spareMade = new Int32Array(started.spareMade);

function setSpare(sandbox: Sandbox | undefined): void {
  spare = sandbox;
  Atomics.store(spareMade, 0, sandbox === undefined ? 0 : 1);
}

function send(message: ToMain): void {
  port!.postMessage(message);
}

function lineOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { lineNumber, stack } = error as { lineNumber?: unknown; stack?: unknown };
  if (typeof stack === 'string') {
    const match = /script\.js:(\d+)/.exec(stack);
    if (match) return Number(match[1]);
  }
  return typeof lineNumber === 'number' ? lineNumber : undefined;
}

/** The kind and text of an error the script ended with (a dumped QuickJS value). */
function classify(run: Run, error: unknown, compiling: boolean): ScriptOutcome {
  const logs = run.logs.join('\n');
  if (run.abort !== undefined) return { ok: false, kind: run.abort.kind, message: run.abort.message, logs };
  const { name, message } =
    typeof error === 'object' && error !== null
      ? (error as { name?: unknown; message?: unknown })
      : { name: undefined, message: undefined };
  const text = typeof message === 'string' ? message : (JSON.stringify(error) ?? String(error));
  const line = lineOf(error);
  if (compiling && name === 'SyntaxError')
    return { ok: false, kind: 'syntax', message: `SyntaxError: ${text}`, line, logs };
  if (name === 'InternalError' && text === 'interrupted') {
    return { ok: false, kind: 'timeout', message: `the script ran longer than ${run.limits.timeMs} ms`, line, logs };
  }
  if (text === 'out of memory' || (name === 'InternalError' && /out of memory/.test(text))) {
    return {
      ok: false,
      kind: 'memory',
      message: `the script used more than ${run.limits.memoryBytes} bytes of memory`,
      line,
      logs,
    };
  }
  if (name === 'InternalError' && text === 'string too long') {
    return { ok: false, kind: 'memory', message: 'a string grew past the longest QuickJS allows', line, logs };
  }
  if (name === 'InternalError' && text === 'stack overflow') {
    return {
      ok: false,
      kind: 'limit',
      message: `stack overflow: recursion deeper than the ${run.limits.stackBytes}-byte stack allows`,
      line,
      logs,
    };
  }
  return { ok: false, kind: 'runtime', message: typeof name === 'string' ? `${name}: ${text}` : text, line, logs };
}

function stop(run: Run, abort: Abort): void {
  run.abort ??= abort;
}

function prepare(limits: SandboxLimits): Sandbox {
  const runtime = quickjs.newRuntime();
  runtime.setMemoryLimit(limits.memoryBytes);
  runtime.setMaxStackSize(limits.stackBytes);
  const context = runtime.newContext();
  const slot: Sandbox['slot'] = { run: undefined };
  runtime.setInterruptHandler(() => {
    const run = slot.run;
    return run !== undefined && (run.abort !== undefined || performance.now() > run.deadline);
  });
  const call = context.newFunction('call', (upstreamHandle, toolHandle, argsHandle) => {
    const run = slot.run!;
    run.calls++;
    if (run.calls > run.limits.maxToolCalls) {
      // The run ends here (the interrupt handler stops it); the call's promise never settles.
      stop(run, { kind: 'limit', message: `the script made more than ${run.limits.maxToolCalls} tool calls` });
      return context.newNumber(0);
    }
    const callId = run.calls;
    run.pending.add(callId);
    run.outbox.push(
      callId,
      context.getString(upstreamHandle),
      context.getString(toolHandle),
      context.getString(argsHandle),
    );
    return context.newNumber(callId);
  });
  const log = context.newFunction('log', (textHandle) => {
    const run = slot.run!;
    const text = context.getString(textHandle);
    run.logBytes += Buffer.byteLength(text) + 1;
    if (run.logBytes > run.limits.maxOutputBytes) {
      stop(run, { kind: 'limit', message: `the script's output is larger than ${run.limits.maxOutputBytes} bytes` });
      return;
    }
    run.logs.push(text);
  });
  const preludeFn = context.unwrapResult(context.evalCode(PRELUDE, 'prelude.js'));
  const exported = context.unwrapResult(context.callFunction(preludeFn, context.undefined, call, log));
  const sandbox: Sandbox = {
    runtime,
    context,
    handles: [call, log, preludeFn],
    stringify: context.getProp(exported, 0),
    settle: context.getProp(exported, 1),
    memoryBytes: limits.memoryBytes,
    stackBytes: limits.stackBytes,
    slot,
  };
  exported.dispose();
  return sandbox;
}

/** The spare sandbox when it was made for these limits, else a new one. */
function takeSandbox(limits: SandboxLimits): Sandbox {
  const taken = spare;
  setSpare(undefined);
  if (taken !== undefined && taken.memoryBytes === limits.memoryBytes && taken.stackBytes === limits.stackBytes)
    return taken;
  if (taken !== undefined) dispose(taken);
  return prepare(limits);
}

function dispose(sandbox: Pick<Sandbox, 'runtime' | 'context' | 'handles' | 'stringify' | 'settle'>): void {
  sandbox.stringify.dispose();
  sandbox.settle.dispose();
  for (const handle of sandbox.handles) handle.dispose();
  sandbox.context.dispose();
  sandbox.runtime.dispose();
}

function start(id: number, code: string, limits: SandboxLimits): void {
  const sandbox = takeSandbox(limits);
  const { runtime, context } = sandbox;
  const run: Run = {
    id,
    limits,
    runtime,
    context,
    deadline: performance.now() + limits.timeMs,
    pending: new Set(),
    outbox: [],
    handles: sandbox.handles,
    result: undefined,
    stringify: sandbox.stringify,
    settle: sandbox.settle,
    abort: undefined,
    calls: 0,
    logs: [],
    logBytes: 0,
    timer: undefined,
    finished: false,
  };
  current = run;
  // Set before anything runs: the prepared sandbox's interrupt handler and host functions read it.
  sandbox.slot.run = run;
  run.timer = setTimeout(() => {
    stop(run, { kind: 'timeout', message: `the script ran longer than ${limits.timeMs} ms` });
    finish(run, classify(run, undefined, false));
  }, limits.timeMs);

  // The wrapper stays on the script's first line, so the script's line numbers are the file's.
  const evaluated = context.evalCode(`(async () => {${code}\n})()`, FILE);
  if (evaluated.error) {
    const error = context.dump(evaluated.error);
    evaluated.error.dispose();
    finish(run, classify(run, error, true));
    return;
  }
  run.result = evaluated.value;
  if (outOfMemoryWhileThrowing(run)) {
    stop(run, { kind: 'memory', message: `the script used more than ${limits.memoryBytes} bytes of memory` });
    return finish(run, classify(run, undefined, false));
  }
  pump(run);
}

/**
 * A flood of queued jobs can take the last memory while QuickJS builds its own "out of memory" error; the
 * script is then rejected with null. Told from a script's own `throw null` by the jobs it left queued.
 */
function outOfMemoryWhileThrowing(run: Run): boolean {
  const state = run.context.getPromiseState(run.result!);
  if (state.type !== 'rejected') {
    if (state.type === 'fulfilled' && !state.notAPromise) state.value.dispose();
    return false;
  }
  const isNull = run.context.typeof(state.error) === 'object' && run.context.dump(state.error) === null;
  state.error.dispose();
  return isNull && run.runtime.hasPendingJob();
}

/** Sends the calls the script made since the last message, in one message (a `Promise.all` of them is one). */
function flushCalls(run: Run): void {
  if (run.outbox.length === 0) return;
  send({ type: 'calls', runId: run.id, calls: run.outbox });
  run.outbox = [];
}

/** Runs the jobs the last event made ready and ends the run when the script's promise settled. */
function pump(run: Run): void {
  if (run.finished) return;
  const { context, runtime } = run;
  const jobs = runtime.executePendingJobs();
  flushCalls(run);
  if (jobs.error) {
    const error = context.dump(jobs.error);
    jobs.error.dispose();
    finish(run, classify(run, error, false));
    return;
  }
  if (run.abort !== undefined) return finish(run, classify(run, undefined, false));
  const state = context.getPromiseState(run.result!);
  if (state.type === 'pending') {
    if (run.pending.size === 0) {
      finish(run, {
        ok: false,
        kind: 'runtime',
        message: 'the script awaits something that never settles (only tool calls can be awaited)',
        logs: run.logs.join('\n'),
      });
    }
    return;
  }
  if (state.type === 'rejected') {
    const error = context.dump(state.error);
    state.error.dispose();
    finish(run, classify(run, error, false));
    return;
  }
  const json = context.callFunction(run.stringify!, context.undefined, state.value);
  state.value.dispose();
  if (json.error) {
    const error = context.dump(json.error);
    json.error.dispose();
    finish(run, classify(run, error, false));
    return;
  }
  const valueJson = context.getString(json.value);
  json.value.dispose();
  if (Buffer.byteLength(valueJson) + run.logBytes > run.limits.maxOutputBytes) {
    stop(run, { kind: 'limit', message: `the script's output is larger than ${run.limits.maxOutputBytes} bytes` });
    return finish(run, classify(run, undefined, false));
  }
  finish(run, { ok: true, valueJson, logs: run.logs.join('\n') });
}

function finish(run: Run, outcome: ScriptOutcome): void {
  if (run.finished) return;
  run.finished = true;
  clearTimeout(run.timer);
  // Calls the script started and did not await still run, as they would have been sent when made.
  flushCalls(run);
  if (current === run) current = undefined;
  // After a memory or time overrun the heap may be spoiled: the pool terminates this worker, which frees
  // everything at once (disposing could trip QuickJS' own assertions on objects the overrun left behind).
  if (!outcome.ok && (outcome.kind === 'memory' || outcome.kind === 'timeout')) {
    send({ type: 'done', runId: run.id, outcome, retire: true });
    return;
  }
  if (outcome.ok) {
    // A script that ended well left nothing behind: its answer goes first, the freeing and the next
    // sandbox are made while the agent reads it.
    send({ type: 'done', runId: run.id, outcome, retire: false });
    setImmediate(() => {
      if (free(run)) refill(run.limits);
      else send({ type: 'spoiled' });
    });
    return;
  }
  // A run that failed mid-way may leave objects its runtime refuses to free: find out before reuse.
  const freed = free(run);
  send({ type: 'done', runId: run.id, outcome, retire: !freed });
  if (freed) setImmediate(() => refill(run.limits));
}

/** Frees a finished run's QuickJS objects; false when QuickJS refused (the worker should not be reused). */
function free(run: Run): boolean {
  try {
    run.result?.dispose();
    dispose(run);
    return true;
  } catch {
    return false;
  }
}

/** Makes the next run's sandbox ahead, unless a run took the worker meanwhile or one is ready. */
function refill(limits: SandboxLimits): void {
  if (spare !== undefined || current !== undefined) return;
  try {
    setSpare(prepare(limits));
  } catch {
    // A run will make its own, and report what fails there.
  }
}

/** Settles the awaited calls answered, with one call into the script's context, then runs the script on once. */
function answer(message: Extract<ToWorker, { type: 'answers' }>): void {
  const run = current;
  if (run === undefined || run.id !== message.runId || run.finished) return;
  const { answers } = message;
  let batch = '';
  for (let at = 0; at + ANSWER_FIELDS <= answers.length; at += ANSWER_FIELDS) {
    const callId = answers[at] as number;
    if (!run.pending.delete(callId)) continue;
    const kind = answers[at + 1] as AnswerKind;
    const text = answers[at + 2] as string;
    const value = kind === AnswerKind.Json ? text : kind === AnswerKind.Text ? textAsJson(text) : JSON.stringify(text);
    batch += `${batch === '' ? '' : ','}${callId},${kind === AnswerKind.Fail ? 2 : 0},${value}`;
  }
  if (batch === '') return;
  const { context } = run;
  const batchHandle = context.newString(`[${batch}]`);
  const settled = context.callFunction(run.settle!, context.undefined, batchHandle);
  batchHandle.dispose();
  if (settled.error) {
    const error = context.dump(settled.error);
    settled.error.dispose();
    finish(run, classify(run, error, false));
    return;
  }
  settled.value.dispose();
  pump(run);
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'run') {
    try {
      start(message.runId, message.code, message.limits);
    } catch (error) {
      const run = current;
      const outcome: ScriptOutcome = {
        ok: false,
        kind: 'runtime',
        message: `the sandbox failed: ${error instanceof Error ? error.message : String(error)}`,
        logs: '',
      };
      if (run !== undefined) finish(run, outcome);
      else send({ type: 'done', runId: message.runId, outcome, retire: true });
    }
    return;
  }
  answer(message);
});

quickjs = await newQuickJSWASMModuleFromVariant(RELEASE_SYNC);
warmUp();
// The pool's limits, so that even the first run finds its sandbox made.
setSpare(prepare(started.limits));
send({ type: 'ready' });

/**
 * Runs a few throwaway scripts before the worker says it is ready: the first runs of a fresh
 * WebAssembly module are several times slower (baseline code, cold caches), and a warm pool should
 * start a model's script at full speed.
 */
function warmUp(): void {
  for (let i = 0; i < 30; i++) {
    const runtime = quickjs.newRuntime();
    const context = runtime.newContext();
    const result = context.evalCode(
      '(async () => { let n = 0; for (let i = 0; i < 200; i++) n += await Promise.resolve(i); return ' +
        'JSON.stringify({ n }); })()',
    );
    if (result.error) result.error.dispose();
    else {
      const jobs = runtime.executePendingJobs();
      if (jobs.error) jobs.error.dispose();
      result.value.dispose();
    }
    context.dispose();
    runtime.dispose();
  }
}
