import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { legacyAgent } from '../support/protocol-agents.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Hostile scripts against a real node: each ends with a clear isError result naming its kind, the
 * node's host is untouched, and another agent on the same node keeps being served meanwhile (its
 * latency is measured before and during the attack and reported as test diagnostics).
 */

const TIME_MS = 1500;
const MEMORY_BYTES = 32 * 1024 * 1024;
const MAX_CALLS = 50;
const MAX_OUTPUT = 64 * 1024;

type Result = { content?: Array<{ text?: string }>; isError?: boolean };

/** Each hostile script and what its result must say (kind, and for some the message). */
const HOSTILE: ReadonlyArray<{ name: string; code: string; expect: RegExp }> = [
  {
    name: 'infinite loop',
    code: 'for (;;) {}',
    expect: /^timeout error( at line 1)?: the script ran longer than 1500 ms$/,
  },
  { name: 'busy loop in a built-in', code: 'while (true) JSON.stringify([1, 2, 3]);', expect: /^timeout error/ },
  {
    name: 'one huge allocation',
    code: 'const b = new ArrayBuffer(1 << 30);\nreturn b.byteLength;',
    expect: /^memory error at line 1: the script used more than 33554432 bytes of memory$/,
  },
  // Growing memory near the limit can stall QuickJS' allocator: it ends as memory or, stopped by the pool, as timeout.
  { name: 'memory bomb (array)', code: 'new Array(1e8).fill(0);', expect: /^(memory|timeout) error/ },
  { name: 'memory bomb (strings)', code: 'let s = "x";\nfor (;;) s = s + s;', expect: /^(memory|timeout) error/ },
  {
    name: 'memory bomb (objects)',
    code: 'const a = [];\nfor (let i = 0; ; i++) a.push({ i, s: "y" + i });',
    expect: /^(memory|timeout) error/,
  },
  {
    name: 'deep recursion',
    code: 'function f(n) { return f(n + 1) + 1; }\nreturn f(0);',
    expect: /^limit error at line 1: stack overflow/,
  },
  {
    name: 'huge return value',
    code: 'return "x".repeat(200_000);',
    expect: /^limit error: the script's output is larger than 65536 bytes$/,
  },
  {
    name: 'huge console output',
    code: 'for (let i = 0; ; i++) console.log("line " + i);',
    expect: /^limit error: the script's output is larger than 65536 bytes$/,
  },
  // Queued jobs take memory too: on a fast turn the limit comes before the wall time.
  {
    name: 'promise flood (microtasks)',
    code: 'for (;;) Promise.resolve().then(() => {});',
    expect: /^(memory|timeout) error/,
  },
  {
    name: 'promise flood (pending promises)',
    code: 'const ps = [];\nfor (let i = 0; i < 1e8; i++) ps.push(new Promise(() => {}));',
    expect: /^(memory|timeout) error/,
  },
  {
    name: '100,000 tool calls in sequence',
    code: 'for (let i = 0; i < 100000; i++) await tools.ev.echo({ message: "x" });',
    expect: /^limit error: the script made more than 50 tool calls$/,
  },
  {
    name: '100,000 tool calls at once',
    code: 'await Promise.all(Array.from({ length: 100000 }, () => tools.ev.echo({ message: "x" })));',
    expect: /^limit error: the script made more than 50 tool calls$/,
  },
  {
    name: 'require',
    code: 'return require("fs");',
    expect: /^runtime error at line 1: ReferenceError: 'require' is not defined$/,
  },
  {
    name: 'process',
    code: 'return process.env;',
    expect: /^runtime error at line 1: ReferenceError: 'process' is not defined$/,
  },
  {
    name: 'import()',
    code: 'return await import("node:fs");',
    expect: /^runtime error: ReferenceError: could not load module 'node:fs'$/,
  },
  {
    name: 'Function constructor escape',
    code: 'return this.constructor.constructor("return process")().env;',
    expect: /^runtime error at line 1: ReferenceError: 'process' is not defined$/,
  },
  {
    name: 'globalThis escape',
    code: 'const g = (0, eval)("globalThis");\nreturn g.process.mainModule.require("child_process");',
    expect: /^runtime error at line 2: TypeError: cannot read property 'mainModule' of undefined$/,
  },
  {
    name: 'never-settling await',
    code: 'await new Promise(() => {});',
    expect: /^runtime error: the script awaits something that never settles/,
  },
];

describe('hostile code-mode scripts', () => {
  let env: TestEnv;
  let attacker: Client;
  let bystander: Client;

  before(async () => {
    env = await startTestEnv({
      nodes: [
        {
          id: 'node-a',
          args: [
            '--sandbox-workers',
            '2',
            '--sandbox-timeout-ms',
            String(TIME_MS),
            '--sandbox-memory-bytes',
            String(MEMORY_BYTES),
            '--sandbox-max-tool-calls',
            String(MAX_CALLS),
            '--sandbox-max-output-bytes',
            String(MAX_OUTPUT),
          ],
        },
      ],
      upstreams: [everythingUpstream('ev', { codeMode: true })],
      keys: [{ name: 'attacker' }, { name: 'bystander', codeMode: 'OFF' }],
    });
    const url = new URL(env.node('node-a').mcpUrl);
    attacker = (await legacyAgent(url, env.keys[0]!.secret)).client;
    bystander = (await legacyAgent(url, env.keys[1]!.secret)).client;
    await eventually('ev listed', async () => (await bystander.listTools()).tools.some((t) => t.name === 'ev__echo'));
    // Lists its tools as an agent does first, which starts the sandbox workers.
    await attacker.listTools();
  });
  after(async () => {
    await attacker?.close();
    await bystander?.close();
    await env?.dispose();
  });

  async function run(code: string): Promise<Result> {
    return (await attacker.callTool({ name: 'run_script', arguments: { code } }, undefined, {
      timeout: 60_000,
    })) as Result;
  }

  async function echoLatency(): Promise<number> {
    const start = performance.now();
    const result = (await bystander.callTool({ name: 'ev__echo', arguments: { message: 'still here' } })) as Result;
    assert.equal(result.content?.[0]?.text, 'Echo: still here');
    return performance.now() - start;
  }

  test('each hostile script ends with a clear error while another agent is served', async (t) => {
    const quiet: number[] = [];
    for (let i = 0; i < 200; i++) quiet.push(await echoLatency());

    const during: number[] = [];
    let attacking = true;
    const served = (async () => {
      while (attacking) during.push(await echoLatency());
    })();
    const seen: string[] = [];
    try {
      for (const { name, code, expect } of HOSTILE) {
        const before = during.length;
        const result = await run(code);
        const text = result.content?.[0]?.text ?? '';
        assert.equal(result.isError, true, `${name}: ${text}`);
        assert.match(text, expect, name);
        seen.push(`${name}: ${text.slice(0, 90)}`);
        // A script that held a sandbox for long (timeouts) must not have held the node: the other agent was served
        // meanwhile.
        if (/^timeout/.test(text)) assert.ok(during.length > before, `${name}: the bystander was served during it`);
      }
    } finally {
      attacking = false;
      await served;
    }
    // After all that, the sandbox still runs scripts (terminated workers were replaced), on fresh contexts.
    const polluted = await run(
      'Object.prototype.polluted = 1; Array.prototype.push = null; JSON.stringify = () => "x"; return 1;',
    );
    assert.equal(polluted.content?.[0]?.text, '1');
    const fresh = await run('return [({}).polluted, typeof [].push, JSON.stringify({ a: 1 })];');
    assert.deepEqual(JSON.parse(fresh.content?.[0]?.text ?? ''), [null, 'function', '{"a":1}']);
    const works = await run('return await tools.ev.echo({ message: "ok" });');
    assert.equal(works.content?.[0]?.text, '"Echo: ok"');

    const stats = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2);
      return `n=${sorted.length} p50=${at(0.5)} ms p99=${at(0.99)} ms max=${at(1)} ms`;
    };
    t.diagnostic(`bystander echo, quiet: ${stats(quiet)}`);
    t.diagnostic(`bystander echo, during the hostile scripts: ${stats(during)}`);
    for (const line of seen) t.diagnostic(line);
    assert.ok(during.length >= HOSTILE.length, 'the bystander kept being served');
    // Generous on a shared 2-core machine (other sessions' load spikes): a bystander call that waited for a
    // script would have waited its whole wall time, and scripts ran into it back to back.
    assert.ok(
      Math.max(...during) < 2 * TIME_MS,
      `no bystander call waited for a sandbox's wall time (max ${Math.max(...during)} ms)`,
    );
  });
});
