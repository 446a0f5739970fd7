import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadCatalogs } from '../../bench/src/code-mode/catalog.ts';
import { digestOf } from '../../bench/src/code-mode/fake-results.mjs';
import { TASKS, type Task } from '../../bench/src/code-mode/tasks.ts';
import { registerRecordedUpstreams, runTokenBenchmark } from '../../bench/src/code-mode/token-benchmark.ts';
import { startTestEnv } from '../support/test-env.ts';

/**
 * The mechanics of the code-mode token benchmark (issue 17) on a small catalog: three recorded catalogs
 * (everything, memory, thinking: 27 tools) served by recorded-catalog upstreams behind a real node, three
 * tasks of the suite and two that must fail, at 10 tools and the whole catalog.
 */

const task = (id: string): Task => TASKS.find((t) => t.id === id)!;

test('code-mode benchmark: trajectories counted, answers checked against classic calls through the node', async () => {
  const catalogs = loadCatalogs().filter((c) => ['everything', 'memory', 'thinking'].includes(c.server));
  const total = catalogs.reduce((sum, c) => sum + c.tools.length, 0);
  await using env = await startTestEnv({ controlPlane: 'in-process', nodes: ['node-a'] });
  const gateway = {
    mcpUrl: env.node('node-a').mcpUrl,
    gql: <T>(q: string, v?: Record<string, unknown>) => env.gqlOk<T>(q, v),
  };
  await registerRecordedUpstreams(gateway, catalogs);
  const tasks: Task[] = [
    task('sum-and-echo'),
    task('memory-graph-relations'),
    // The sandbox has no `process`: the script's answer differs from the classic run's, so it fails.
    {
      id: 'differs-in-sandbox',
      prompt: 'Echo, then say whether a process object exists.',
      find: { 'everything/echo': 'echo message' },
      code: 'await tools.everything.echo({ message: "x" }); return typeof process;',
    },
    // A script calling a tool its find list does not name: the classic run refuses it.
    {
      id: 'undeclared-tool',
      prompt: 'Add two numbers.',
      find: { 'everything/echo': 'echo message' },
      code: 'return await tools.everything["get-sum"]({ a: 1, b: 2 });',
    },
  ];
  const results = await runTokenBenchmark(gateway, {
    catalogs,
    tasks,
    sizes: [10, 1000],
  });
  assert.deepEqual(
    results.map((r) => r.tools),
    [10, total],
  );
  for (const size of results) {
    const byId = new Map(size.tasks.map((t) => [t.task, t]));
    assert.equal(byId.get('sum-and-echo')?.passed, true, JSON.stringify(byId.get('sum-and-echo')));
    assert.equal(byId.get('memory-graph-relations')?.passed, true, JSON.stringify(byId.get('memory-graph-relations')));
    assert.equal(byId.get('sum-and-echo')?.calls, 3);
    assert.equal(byId.get('differs-in-sandbox')?.passed, false);
    assert.match(byId.get('differs-in-sandbox')?.why ?? '', /answer "undefined" differs from expected "object"/);
    assert.equal(byId.get('undeclared-tool')?.passed, false);
    assert.match(byId.get('undeclared-tool')?.why ?? '', /calls everything\/get-sum, not in its find list/);
    assert.equal(size.passed, 2);
    assert.ok(size.codeModeTokens > 0 && size.classicTokens > 0);
    assert.ok(size.metaToolTokens > 0 && size.metaToolTokens < size.toolListTokens);
  }
  // Classic pays for every schema each turn; code mode does not grow with the catalog.
  const [small, whole] = results as [(typeof results)[0], (typeof results)[0]];
  assert.ok(whole.toolListTokens > 2 * small.toolListTokens, `${whole.toolListTokens} vs ${small.toolListTokens}`);
  assert.ok(whole.classicTokens > small.classicTokens);
  assert.ok(whole.reduction > small.reduction);
  assert.ok(Math.abs(whole.codeModeTokens - small.codeModeTokens) < 0.1 * small.codeModeTokens);
  // The answers are computable from the calls alone (fake-results.mjs), and the run agrees.
  const sum = digestOf('everything', 'get-sum', { a: 19, b: 23 }).n;
  const thought = {
    thought: `The sum is ${sum}`,
    thoughtNumber: 1,
    totalThoughts: 1,
    nextThoughtNeeded: false,
  };
  assert.deepEqual(whole.tasks.find((t) => t.task === 'sum-and-echo')?.answer, {
    sum,
    echo: digestOf('everything', 'echo', { message: `sum ${sum}` }).id,
    thought: digestOf('thinking', 'sequentialthinking', thought).n,
  });
});
