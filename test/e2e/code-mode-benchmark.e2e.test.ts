import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadCatalogs } from '../../bench/src/code-mode/catalog.ts';
import { digestOf } from '../../bench/src/code-mode/fake-results.mjs';
import { TASKS, type Task } from '../../bench/src/code-mode/tasks.ts';
import { registerRecordedUpstreams, runTokenBenchmark } from '../../bench/src/code-mode/token-benchmark.ts';
import { DEFAULT_SANDBOX_POOL } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { startDataPlane } from '../../data-plane/src/index.ts';
import { startTestEnv } from '../support/test-env.ts';
import { testLogger } from './control-plane-harness.ts';

/**
 * The mechanics of the code-mode token benchmark (issue 17) on a small catalog: three recorded catalogs
 * (everything, memory, thinking: 27 tools) served by recorded-catalog upstreams (real processes) behind a
 * real node, two tasks of the suite and two that must fail, at 10 tools and the whole catalog.
 *
 * The node runs in this process (startDataPlane, as the CLI calls it; one sandbox worker: the tasks run in turn):
 * a node process of its own took 8-10 s to start through tsx on a loaded 2-core machine, and from the sources
 * transpiled once (PORTCULLIS_TEST_CLI) still cost this test 1-2 s more.
 * The upstreams are registered before the node starts, so its first snapshot has them and it connects
 * them while the test goes on.
 */

const task = (id: string): Task => TASKS.find((t) => t.id === id)!;

test('code-mode benchmark: trajectories counted, answers checked against classic calls through the node', async () => {
  const catalogs = loadCatalogs().filter((c) => ['everything', 'memory', 'thinking'].includes(c.server));
  const total = catalogs.reduce((sum, c) => sum + c.tools.length, 0);
  await using env = await startTestEnv({ controlPlane: 'in-process' });
  const gql = <T>(q: string, v?: Record<string, unknown>) => env.gqlOk<T>(q, v);
  await registerRecordedUpstreams({ mcpUrl: '', gql }, catalogs);
  const node = await startDataPlane({
    controlPlaneAddress: env.grpcAddress,
    nodeToken: env.nodeToken,
    nodeId: 'node-a',
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024 * 1024,
    snapshotCache: undefined,
    upstreamConnectTimeoutMs: 30_000,
    upstreamCallTimeoutMs: 30_000,
    sandbox: { ...DEFAULT_SANDBOX_POOL, workers: 1 },
    logger: testLogger(),
  });
  env.defer(() => node.close());
  const gateway = { mcpUrl: node.mcpUrl, gql };
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
