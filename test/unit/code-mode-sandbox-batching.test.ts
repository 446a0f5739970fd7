import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SANDBOX_LIMITS, SandboxPool, type ToolAnswer } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { textAsJson } from '../../data-plane/src/code-mode/sandbox-protocol.ts';
import { SharedCancellation } from '../../data-plane/src/upstream/cancellation.ts';

const sandbox = new SandboxPool({
  workers: 1,
  limits: { ...DEFAULT_SANDBOX_LIMITS, timeMs: 5_000, maxToolCalls: 500 },
  maxQueued: 4,
});
after(() => sandbox.close());

interface Call {
  readonly upstream: string;
  readonly tool: string;
  readonly args: unknown;
  readonly answer: (value: ToolAnswer) => void;
  readonly fail: (error: Error) => void;
}

/** A handler that holds every call until the test answers it; `reached(n)` resolves once n calls arrived. */
function heldCalls() {
  const calls: Call[] = [];
  const waiting: Array<{ n: number; resolve: () => void }> = [];
  const onCall = (upstream: string, tool: string, args: unknown) =>
    new Promise<ToolAnswer>((answer, fail) => {
      calls.push({ upstream, tool, args, answer, fail });
      for (const wait of waiting.filter((w) => calls.length >= w.n)) {
        waiting.splice(waiting.indexOf(wait), 1);
        wait.resolve();
      }
    });
  const reached = (n: number) =>
    new Promise<void>((resolve) => (calls.length >= n ? resolve() : waiting.push({ n, resolve })));
  return { calls, onCall, reached };
}

test('a Promise.all of calls reaches the main thread whole; answers in any order reach the right await', async () => {
  const { calls, onCall, reached } = heldCalls();
  const run = sandbox.run(
    'const all = await Promise.all(Array.from({ length: 200 }, (_, i) => tools.up.echo({ i })));' +
      ' return all.map((v) => v.i).join(",") === Array.from({ length: 200 }, (_, i) => i).join(",");',
    onCall,
  );
  // Every call of the script's first turn arrives before any is answered (one message).
  await reached(200);
  assert.deepEqual(calls[7]?.args, { i: 7 });
  for (const call of [...calls].reverse()) call.answer({ json: JSON.stringify(call.args) });
  assert.deepEqual(await run, { ok: true, valueJson: 'true', logs: '' });
});

test('a text answer is parsed when it is JSON and a string otherwise; a failure throws its text', async () => {
  const { calls, onCall, reached } = heldCalls();
  const run = sandbox.run(
    'const [a, b, c, d] = await Promise.all([tools.up.t({}), tools.up.t({}), tools.up.t({}), tools.up.t({})]);' +
      ' let e; try { await tools.up.bad({}); } catch (error) { e = error.name + ": " + error.message; }' +
      ' return { a, b, c, d, e };',
    onCall,
  );
  await reached(4);
  calls[0]!.answer({ text: '{"n":1}' });
  calls[1]!.answer({ text: 'Echo: x' });
  calls[2]!.answer({ text: '- not json' });
  calls[3]!.answer({ json: '[1,2]' });
  await reached(5);
  calls[4]!.fail(new Error('no such thing'));
  const outcome = await run;
  assert.equal(outcome.ok, true);
  assert.deepEqual(JSON.parse(outcome.ok ? outcome.valueJson : ''), {
    a: { n: 1 },
    b: 'Echo: x',
    c: '- not json',
    d: [1, 2],
    e: 'ToolError: no such thing',
  });
});

test('a sequential loop gets each answer before its next call, and a call never awaited still runs', async () => {
  const { calls, onCall, reached } = heldCalls();
  const run = sandbox.run(
    'let n = 0; for (let i = 0; i < 3; i++) n += await tools.up.inc({ i }); tools.up.last({}); return n;',
    onCall,
  );
  for (let i = 0; i < 3; i++) {
    await reached(i + 1);
    assert.deepEqual(calls[i]?.args, { i });
    calls[i]!.answer({ json: String(i + 1) });
  }
  assert.deepEqual(await run, { ok: true, valueJson: '6', logs: '' });
  await reached(4);
  assert.equal(calls[3]?.tool, 'last');
});

test('textAsJson keeps JSON text as it is and turns other text into a JSON string', () => {
  assert.equal(textAsJson('{"a":1}'), '{"a":1}');
  assert.equal(textAsJson(' [1, 2] '), ' [1, 2] ');
  assert.equal(textAsJson('-3'), '-3');
  assert.equal(textAsJson('true '), 'true ');
  assert.equal(textAsJson('"quoted"'), '"quoted"');
  assert.equal(textAsJson('true story'), '"true story"');
  assert.equal(textAsJson('{ not json'), '"{ not json"');
  assert.equal(textAsJson('Echo: x'), '"Echo: x"');
  assert.equal(textAsJson(''), '""');
});

test('a SharedCancellation tells each listener once, forgets removed ones, and aborts its signal', () => {
  const cancellation = new SharedCancellation();
  const told: string[] = [];
  const a = () => told.push('a');
  const b = () => told.push('b');
  for (let i = 0; i < 10_000; i++) cancellation.onAbort(() => undefined);
  cancellation.onAbort(a);
  cancellation.onAbort(b);
  cancellation.offAbort(b);
  assert.equal(cancellation.aborted, false);
  assert.equal(cancellation.reason, undefined);
  cancellation.abort('gone');
  cancellation.abort('again');
  assert.deepEqual(told, ['a']);
  assert.equal(cancellation.aborted, true);
  assert.equal(cancellation.reason, 'gone');
  assert.equal(cancellation.signal().aborted, true);
  assert.equal(cancellation.signal().reason, 'gone');
  cancellation.onAbort(b);
  assert.deepEqual(told, ['a']);
});

test("a script that replaces intrinsics and poisons prototypes still gets its calls' answers", async () => {
  const { calls, onCall, reached } = heldCalls();
  const run = sandbox.run(
    'for (const key of ["1", "2", "resolve", "reject"]) Object.defineProperty(Object.prototype, key, ' +
      '{ set() { throw new Error("poisoned " + key); }, get() { throw new Error("poisoned " + key); } });' +
      ' JSON.parse = () => "parse replaced"; JSON.stringify = () => "stringify replaced";' +
      ' Array.prototype.push = null; Map.prototype.get = null; Promise.prototype.then = Promise.prototype.then;' +
      ' const [a, b] = await Promise.all([tools.up.one({ x: 1 }), tools.up.two({})]);' +
      ' let e; try { await tools.up.bad({}); } catch (error) { e = error.message; }' +
      ' return [a.n, b, e].join("|");',
    onCall,
  );
  await reached(2);
  assert.deepEqual(calls[0]?.args, { x: 1 });
  calls[1]!.answer({ text: 'plain' });
  calls[0]!.answer({ json: '{"n":1}' });
  await reached(3);
  calls[2]!.fail(new Error('refused'));
  assert.deepEqual(await run, { ok: true, valueJson: '"1|plain|refused"', logs: '' });
});

test('each run gets a runtime of its own, made ahead: nothing one script leaves is seen by the next', async () => {
  const noCalls = () => Promise.reject(new Error('no calls here'));
  const first = await sandbox.run('globalThis.left = 1; Object.prototype.polluted = 2; return 1;', noCalls);
  assert.deepEqual(first, { ok: true, valueJson: '1', logs: '' });
  const next = await sandbox.run('return [typeof left, ({}).polluted === undefined];', noCalls);
  assert.deepEqual(next, { ok: true, valueJson: '["undefined",true]', logs: '' });
});

test('memory running out while QuickJS builds its error is a memory error; a script throwing null is not', async () => {
  const small = new SandboxPool({
    workers: 1,
    limits: { ...DEFAULT_SANDBOX_LIMITS, timeMs: 20_000, memoryBytes: 4 * 1024 * 1024 },
    maxQueued: 1,
  });
  try {
    const noCalls = () => Promise.reject(new Error('no calls here'));
    const flood = await small.run('for (;;) Promise.resolve().then(() => {});', noCalls);
    assert.equal(flood.ok, false);
    assert.equal(!flood.ok && flood.kind, 'memory', JSON.stringify(flood));
    const thrown = await small.run('throw null;', noCalls);
    assert.deepEqual(!thrown.ok && [thrown.kind, thrown.message], ['runtime', 'null']);
  } finally {
    await small.close();
  }
});
