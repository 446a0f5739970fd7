// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UpstreamErrorCode } from '../../data-plane/src/upstream/upstream-errors.ts';
import type { UpstreamPool } from '../../data-plane/src/upstream/upstream-pool.ts';
import type { RpcMessage, UpstreamRouter } from '../../data-plane/src/upstream/upstream-router.ts';
import { conformanceFixtureStdioCommand, startConformanceFixtureHttp } from '../support/conformance.ts';
import { connectAgent, type AgentOptions, type Json, type MatrixAgent } from '../support/matrix-agents.ts';
import {
  buildConfig,
  sessionKey,
  startServer,
  testKey,
  type RunningServer,
  type TestKey,
} from '../support/mcp-server-harness.ts';
import { EVERYTHING_SERVER, RunningProcess, freePort } from '../support/processes.ts';
import {
  DOWNSTREAMS,
  UPSTREAMS,
  matrixPlan,
  runKey,
  upstreamName,
  type DownstreamId,
  type MatrixCell,
  type MatrixRequirementId,
  type UpstreamId,
} from '../support/transport-matrix.ts';
import {
  DOWN,
  FILESYSTEM_SERVER,
  MEMORY_SERVER,
  PoolHarness,
  READY,
  everythingStdio,
  firstText,
  httpUpstream,
  sseUpstream,
  stdioUpstream,
} from '../support/upstream-pool-harness.ts';
import { eventually } from '../support/eventually.ts';

/**
 * The transport matrix (test/support/transport-matrix.ts): every matrix requirement in every cell of
 * (agent transport × upstream transport) that is not declared exempt, against real upstream
 * processes — server-everything over stdio, Streamable HTTP and legacy SSE, the conformance upstream
 * (2026-07-28) over Streamable HTTP and stdio — behind one node (the real UpstreamPool and HTTP
 * server, in process), driven by the official SDK clients. Then server-memory and server-filesystem
 * through each agent transport, and the fault cases per upstream transport. The upstream processes
 * are shared by every cell; a run that kills one waits until it is READY again before it ends.
 */

/** What each upstream server offers the runs. */
interface Scenario {
  readonly echo: { tool: string; args: Json };
  /** A call that runs until cancelled or killed. */
  readonly long: { tool: string; args: Json };
  readonly progress: { tool: string; args: Json; steps: readonly number[] };
  readonly resource: (uri: string) => boolean;
  readonly template: { uriTemplate: string; read: string };
  readonly prompt: string;
  readonly completion: { prompt: string; argument: string; value: string; expect: string };
  readonly elicit: { tool: string; args: Json; answer: Json };
}

const SCENARIOS: Record<'everything' | 'conformance', Scenario> = {
  everything: {
    echo: { tool: 'echo', args: { message: 'through the matrix' } },
    long: { tool: 'trigger-long-running-operation', args: { duration: 30, steps: 30 } },
    // Steps 150 ms apart (as for conformance below): a v1 SDK client drops progress it reads in the same chunk as
    // the result (it handles notifications a microtask late), so a stall longer than a step loses a step.
    progress: { tool: 'trigger-long-running-operation', args: { duration: 0.45, steps: 3 }, steps: [1, 2, 3] },
    resource: (uri) => uri.startsWith('demo://resource/static/'),
    template: { uriTemplate: 'demo://resource/dynamic/text/{resourceId}', read: 'demo://resource/dynamic/text/7' },
    prompt: 'simple-prompt',
    completion: { prompt: 'completable-prompt', argument: 'department', value: 'Eng', expect: 'Engineering' },
    elicit: { tool: 'trigger-elicitation-request', args: {}, answer: { name: 'Ada Matrix' } },
  },
  conformance: {
    echo: { tool: 'test_simple_text', args: {} },
    long: { tool: 'test_cancellable', args: {} },
    progress: { tool: 'test_tool_with_progress', args: { intervalMs: 150 }, steps: [0, 50, 100] },
    resource: (uri) => uri === 'test://static-text',
    template: { uriTemplate: 'test://template/{id}/data', read: 'test://template/123/data' },
    prompt: 'test_simple_prompt',
    completion: { prompt: 'test_prompt_with_arguments', argument: 'arg1', value: 'pa', expect: 'paris' },
    elicit: { tool: 'test_elicitation', args: { message: 'Who is there?' }, answer: { response: 'Ada Matrix' } },
  },
};

const UPSTREAM_IDS = Object.keys(UPSTREAMS) as UpstreamId[];

function scenario(upstream: UpstreamId): Scenario {
  return SCENARIOS[UPSTREAMS[upstream].server];
}

/** An HTTP upstream process that a run can kill and start again on the same port. */
class HttpUpstreamProcess {
  process: RunningProcess | undefined;
  private constructor(
    readonly upstream: UpstreamId,
    readonly port: number,
  ) {}

  static async start(upstream: UpstreamId): Promise<HttpUpstreamProcess> {
    const started = new HttpUpstreamProcess(upstream, await freePort());
    await started.restart();
    return started;
  }

  get url(): string {
    return UPSTREAMS[this.upstream].transport === 'sse'
      ? `http://127.0.0.1:${this.port}/sse`
      : `http://127.0.0.1:${this.port}/mcp`;
  }

  async restart(): Promise<void> {
    if (UPSTREAMS[this.upstream].server === 'conformance') {
      this.process = (await startConformanceFixtureHttp({}, this.port)).process;
      return;
    }
    const sse = UPSTREAMS[this.upstream].transport === 'sse';
    this.process = new RunningProcess(
      `server-everything (${this.upstream})`,
      process.execPath,
      [EVERYTHING_SERVER, sse ? 'sse' : 'streamableHttp'],
      { PORT: String(this.port) },
    );
    await this.process.waitFor(sse ? /Server is running on port/ : /listening on port/);
  }
}

/** One relayed request as the node's upstream side saw it: what, and how it ended. */
interface Relayed {
  readonly upstream: string;
  readonly method: string;
  readonly name: string | undefined;
  outcome?: string;
}

/** The pool, with every relayed request recorded (to see that an agent's cancellation reached the relay). */
function recordingRouter(pool: UpstreamPool, log: Relayed[]): UpstreamRouter {
  const record = (upstream: string, message: RpcMessage, promise: Promise<Record<string, unknown>>) => {
    const entry: Relayed = {
      upstream,
      method: message.method,
      name: typeof message.params?.['name'] === 'string' ? message.params['name'] : undefined,
    };
    log.push(entry);
    promise.then(
      () => (entry.outcome = 'ok'),
      (error: unknown) => (entry.outcome = String((error as { code?: unknown }).code ?? 'error')),
    );
    return promise;
  };
  return new Proxy(pool, {
    get(target, property) {
      if (property === 'request')
        return (upstream: string, message: RpcMessage, options?: object) =>
          record(upstream, message, target.request(upstream, message, options));
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

let harness: PoolHarness;
let server: RunningServer;
/** The same node's upstreams behind a server that pages lists by 4, for MX-PAGINATION. */
let paged: RunningServer;
const relayed: Relayed[] = [];
const httpProcesses = new Map<UpstreamId, HttpUpstreamProcess>();
let workDir: string;

/** Per upstream: a key for its tools only, and one for it and the next upstream (pagination across two). */
const keys = new Map<UpstreamId, TestKey>(UPSTREAM_IDS.map((u) => [u, testKey(`k-${u}`, [`${upstreamName(u)}__*`])]));
const pairKeys = new Map<UpstreamId, TestKey>(
  UPSTREAM_IDS.map((u) => [u, testKey(`kp-${u}`, [`${upstreamName(u)}__*`, `${upstreamName(nextUpstream(u))}__*`])]),
);
const realServersKey = testKey('k-real', ['memory__*', 'files__*']);

function nextUpstream(upstream: UpstreamId): UpstreamId {
  return UPSTREAM_IDS[(UPSTREAM_IDS.indexOf(upstream) + 1) % UPSTREAM_IDS.length]!;
}

/** HTTP upstreams are pinged often, so a stopped one is seen DOWN (and back) quickly. */
const FAST_HEALTH = { healthIntervalMs: 200, healthFailureThreshold: 1 };

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'portcullis-matrix-'));
  const [evHttp, evSse, confHttp] = await Promise.all(
    (['ev-http', 'ev-sse', 'conf-http'] as const).map((u) => HttpUpstreamProcess.start(u)),
  );
  httpProcesses.set('ev-http', evHttp!).set('ev-sse', evSse!).set('conf-http', confHttp!);
  const confStdio = conformanceFixtureStdioCommand();
  harness = PoolHarness.start([
    everythingStdio('evstdio'),
    httpUpstream('evhttp', evHttp!.url, FAST_HEALTH),
    sseUpstream('evsse', evSse!.url, FAST_HEALTH),
    httpUpstream('confhttp', confHttp!.url, FAST_HEALTH),
    stdioUpstream('confstdio', confStdio.command, confStdio.args),
    stdioUpstream('memory', process.execPath, [MEMORY_SERVER], {
      env: [{ name: 'MEMORY_FILE_PATH', value: join(workDir, 'memory.jsonl') }],
    }),
    stdioUpstream('files', process.execPath, [FILESYSTEM_SERVER, workDir]),
  ]);
  await Promise.all(
    ['evstdio', 'evhttp', 'evsse', 'confhttp', 'confstdio', 'memory', 'files'].map((name) =>
      harness.waitForState(name, READY, 30_000),
    ),
  );
  const router = recordingRouter(harness.pool, relayed);
  const config = buildConfig([...keys.values(), ...pairKeys.values(), realServersKey], [sessionKey('s1')]);
  server = await startServer(router, config, { eventStore: { retryMs: 100 } });
  paged = await startServer(router, config, { listPageSize: 4 });
});

after(async () => {
  for (const running of [server, paged]) {
    running?.gateway.server.closeAllConnections();
    await running?.close();
  }
  await harness?.close();
  await Promise.all([...httpProcesses.values()].map((p) => p.process?.stop()));
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Runs `fn` with an agent of the cell's transport on the cell's key, closing it afterwards. */
async function withAgent<T>(
  cell: MatrixCell,
  fn: (agent: MatrixAgent, name: string) => Promise<T>,
  options: AgentOptions & { on?: 'paged'; key?: TestKey } = {},
): Promise<T> {
  const key = options.key ?? keys.get(cell.upstream)!;
  const agent = await connectAgent(cell.downstream, (options.on === 'paged' ? paged : server).url, key.secret, options);
  try {
    return await fn(agent, upstreamName(cell.upstream));
  } finally {
    await agent.close();
  }
}

function names(entries: readonly Json[], field = 'name'): string[] {
  return entries.map((e) => String(e[field])).sort();
}

function catalogKeys(
  kind: 'tools' | 'prompts' | 'resources' | 'resourceTemplates',
  upstreams: readonly string[],
): string[] {
  return harness.pool
    .catalog(kind)
    .filter((e) => upstreams.includes(e.upstreamName))
    .map((e) => e.key)
    .sort();
}

const SERVER_INFO = 'io.modelcontextprotocol/serverInfo';

/**
 * A result without what the protocol reserves in `_meta` (`io.modelcontextprotocol/…`: the 2026-07-28
 * envelope, set by whoever answers the agent), restricted to `fields` when given.
 */
function withoutEnvelope(result: Json, fields: readonly string[] = Object.keys(result)): Json {
  const copy: Json = Object.fromEntries(fields.filter((f) => f in result).map((f) => [f, result[f]]));
  const meta = copy['_meta'] as Json | undefined;
  if (meta !== undefined) {
    const rest = Object.fromEntries(Object.entries(meta).filter(([k]) => !k.startsWith('io.modelcontextprotocol/')));
    if (Object.keys(rest).length === 0) delete copy['_meta'];
    else copy['_meta'] = rest;
  }
  return copy;
}

function textOf(result: Json): string {
  return ((result['content'] as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('\n');
}

/**
 * A JSON-RPC error (the SDK clients throw McpError / ProtocolError with a numeric code) or an isError result, names
 * masked.
 */
async function refusal(call: Promise<Json>, name: string): Promise<Json> {
  const mask = (text: string) => text.split(name).join('<tool>');
  try {
    const result = await call;
    return { isError: result['isError'], text: mask(textOf(result)) };
  } catch (error) {
    return { code: (error as { code?: unknown }).code, message: mask(String((error as Error).message)) };
  }
}

/** Each step an upstream reported, in order; the SDK clients may drop a last one read with the result. */
function assertProgressPrefix(seen: readonly number[], steps: readonly number[], atLeast: number): void {
  assert.ok(seen.length >= atLeast, `progress arrived: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen, steps.slice(0, seen.length));
}

/** Kills the cell's upstream process as a crash would. */
async function killUpstream(upstream: UpstreamId): Promise<void> {
  const http = httpProcesses.get(upstream);
  if (http) return http.process!.kill();
  const pid = harness.connection(upstreamName(upstream)).pid;
  assert.ok(pid, 'the stdio upstream process is known');
  process.kill(pid, 'SIGKILL');
}

/** After a kill: HTTP upstreams are started again on their port (stdio ones the node restarts); resolves when READY. */
async function bringBack(upstream: UpstreamId): Promise<void> {
  await httpProcesses.get(upstream)?.restart();
  await harness.waitForState(upstreamName(upstream), READY, 30_000);
}

/** Resolves when a relayed tools/call of `tool` to `upstream` is in flight; returns its record. */
async function inFlight(upstream: string, tool: string): Promise<Relayed> {
  let found: Relayed | undefined;
  await eventually(
    `${upstream}__${tool} in flight upstream`,
    () =>
      (found = relayed.findLast((r) => r.upstream === upstream && r.name === tool && r.outcome === undefined)) !==
      undefined,
    10_000,
  );
  return found!;
}

async function conformanceCancellations(upstream: string): Promise<number> {
  return Number(
    firstText(
      await harness.pool.request(upstream, {
        method: 'tools/call',
        params: { name: 'test_cancellations', arguments: {} },
      }),
    ),
  );
}

type Run = (cell: MatrixCell) => Promise<void>;

const RUNS: Record<MatrixRequirementId, Run> = {
  'MX-TOOLS-LIST': (cell) =>
    withAgent(cell, async (agent, up) => {
      const listed = await agent.listTools();
      assert.deepEqual(names(listed), catalogKeys('tools', [up]), "exactly the upstream's tools this key may call");
      const echoName = `${up}__${scenario(cell.upstream).echo.tool}`;
      const echo = listed.find((t) => t['name'] === echoName)!;
      const definition = harness.pool.find('tools', echoName)!.definition;
      assert.deepEqual(
        { description: echo['description'], inputSchema: echo['inputSchema'] },
        { description: definition['description'], inputSchema: definition['inputSchema'] },
      );
    }),

  'MX-TOOLS-CALL': (cell) =>
    withAgent(cell, async (agent, up) => {
      const { tool, args } = scenario(cell.upstream).echo;
      const direct = await harness.pool.request(up, { method: 'tools/call', params: { name: tool, arguments: args } });
      const through = await agent.callTool(`${up}__${tool}`, args);
      assert.ok(textOf(direct).length > 0);
      assert.deepEqual(withoutEnvelope(through, Object.keys(direct)), withoutEnvelope(direct));
      if (cell.downstream === 'v2-http') {
        assert.deepEqual(
          (through['_meta'] as Json | undefined)?.[SERVER_INFO],
          { name: 'portcullis-test', version: '0.0.0' },
          'a 2026-07-28 agent is told the gateway answered',
        );
      }
    }),

  'MX-TOOLS-REFUSED': (cell) =>
    withAgent(cell, async (agent, up) => {
      const other = nextUpstream(cell.upstream);
      const forbidden = `${upstreamName(other)}__${scenario(other).echo.tool}`;
      assert.ok(harness.pool.find('tools', forbidden), `${forbidden} exists on its upstream`);
      const unknown = `${up}__no_such_tool`;
      const refusedUnknown = await refusal(agent.callTool(unknown, {}), unknown);
      const refusedForbidden = await refusal(agent.callTool(forbidden, {}), forbidden);
      assert.ok(
        refusedUnknown['code'] !== undefined || refusedUnknown['isError'] === true,
        JSON.stringify(refusedUnknown),
      );
      assert.deepEqual(refusedForbidden, refusedUnknown);
      assert.ok(!relayed.some((r) => r.name === 'no_such_tool'), 'nothing was relayed');
    }),

  'MX-PROGRESS': (cell) =>
    withAgent(cell, async (agent, up) => {
      const { tool, args, steps } = scenario(cell.upstream).progress;
      const seen: number[] = [];
      const result = await agent.callTool(`${up}__${tool}`, args, { onprogress: (p) => void seen.push(p.progress) });
      assert.notEqual(result['isError'], true);
      assertProgressPrefix(seen, steps, 2);
    }),

  'MX-CANCEL': (cell) =>
    withAgent(cell, async (agent, up) => {
      const { tool, args } = scenario(cell.upstream).long;
      const conformance = UPSTREAMS[cell.upstream].server === 'conformance';
      const before = conformance ? await conformanceCancellations(up) : 0;
      const controller = new AbortController();
      const call = agent.callTool(`${up}__${tool}`, args, { signal: controller.signal });
      const relay = await inFlight(up, tool);
      controller.abort(new Error('the agent gave up'));
      await assert.rejects(call);
      // Generous: with other test files beside it on two cores the cancellation's hops (agent → node → upstream and
      // back) have taken over 5 s; a pass does not wait for the deadline.
      await eventually('the relayed call to end cancelled', () => relay.outcome !== undefined, 20_000);
      assert.equal(
        relay.outcome,
        UpstreamErrorCode.CANCELLED,
        'the node cancelled the upstream call (notifications/cancelled, or a closed 2026-07-28 request)',
      );
      if (conformance)
        await eventually(
          'the upstream handler to see its request cancelled',
          async () => (await conformanceCancellations(up)) > before,
          20_000,
        );
      const { tool: echo, args: echoArgs } = scenario(cell.upstream).echo;
      assert.ok(textOf(await agent.callTool(`${up}__${echo}`, echoArgs)).length > 0, 'the session goes on');
    }),

  'MX-RESOURCES': (cell) =>
    withAgent(cell, async (agent, up) => {
      const listed = await agent.listResources();
      assert.deepEqual(names(listed, 'uri'), catalogKeys('resources', [up]));
      const uri = listed.map((r) => String(r['uri'])).find(scenario(cell.upstream).resource);
      assert.ok(uri, `a known resource is listed: ${JSON.stringify(names(listed, 'uri').slice(0, 5))}`);
      const direct = await harness.pool.request(up, { method: 'resources/read', params: { uri } });
      const read = await agent.readResource(uri);
      assert.deepEqual(read['contents'], direct['contents']);
    }),

  'MX-TEMPLATES': (cell) =>
    withAgent(cell, async (agent, up) => {
      const { uriTemplate, read } = scenario(cell.upstream).template;
      const listed = await agent.listResourceTemplates();
      assert.deepEqual(names(listed, 'uriTemplate'), catalogKeys('resourceTemplates', [up]));
      assert.ok(
        listed.some((t) => t['uriTemplate'] === uriTemplate),
        uriTemplate,
      );
      const contents = (await agent.readResource(read))['contents'] as Json[];
      assert.equal(contents[0]?.['uri'], read);
    }),

  'MX-PROMPTS': (cell) =>
    withAgent(cell, async (agent, up) => {
      const listed = await agent.listPrompts();
      assert.deepEqual(names(listed), catalogKeys('prompts', [up]));
      const prompt = scenario(cell.upstream).prompt;
      const direct = await harness.pool.request(up, { method: 'prompts/get', params: { name: prompt } });
      const got = await agent.getPrompt(`${up}__${prompt}`);
      assert.ok((direct['messages'] as unknown[]).length > 0);
      assert.deepEqual(got['messages'], direct['messages']);
    }),

  'MX-COMPLETION': (cell) =>
    withAgent(cell, async (agent, up) => {
      const { prompt, argument, value, expect } = scenario(cell.upstream).completion;
      assert.ok((await agent.completePrompt(`${up}__${prompt}`, argument, value)).includes(expect));
    }),

  'MX-PAGINATION': (cell) =>
    withAgent(
      cell,
      async (agent, up) => {
        const expected = catalogKeys('tools', [up, upstreamName(nextUpstream(cell.upstream))]);
        const seen: string[] = [];
        const pagesBefore = agent.sent('tools/list');
        let cursor: string | undefined;
        do {
          const page = await agent.listToolsPage(cursor);
          seen.push(...page.tools.map((t) => String(t['name'])));
          cursor = page.nextCursor;
        } while (cursor !== undefined);
        assert.deepEqual([...seen].sort(), expected, 'every tool of both upstreams, once');
        assert.ok(
          agent.sent('tools/list') - pagesBefore >= Math.ceil(expected.length / 4),
          `paged by 4: ${agent.sent('tools/list') - pagesBefore} requests for ${expected.length} tools`,
        );
        await assert.rejects(agent.listToolsPage('not-a-cursor'), (e: { code?: unknown }) => e.code === -32602);
      },
      { on: 'paged', key: pairKeys.get(cell.upstream)! },
    ),

  'MX-SERVER-REQUEST': async (cell) => {
    const asked: Json[] = [];
    const { tool, args, answer } = scenario(cell.upstream).elicit;
    await withAgent(
      cell,
      async (agent, up) => {
        const result = await agent.callTool(`${up}__${tool}`, args);
        assert.equal(asked.length, 1, 'the agent was asked once');
        assert.match(textOf(result), new RegExp(String(Object.values(answer)[0])), textOf(result));
      },
      {
        elicit: async (params) => {
          asked.push(params);
          return { action: 'accept', content: answer };
        },
      },
    );
  },

  'MX-LIST-CHANGED': (cell) =>
    withAgent(cell, async (agent, up) => {
      const watch = await agent.watchListChanged(['tools', 'resources']);
      try {
        if (UPSTREAMS[cell.upstream].server === 'everything') {
          // server-everything cannot change a tool at run time; its gzip tool adds a session resource
          // (resources/list_changed).
          const file = `matrix-${cell.downstream}-${Date.now()}.gz`;
          await agent.callTool(`${up}__gzip-file-as-resource`, {
            name: file,
            data: 'data:text/plain;base64,bWF0cml4',
            outputType: 'resourceLink',
          });
          await eventually('resources/list_changed at the agent', () => watch.count('resources') > 0, 10_000);
          assert.ok(
            (await agent.listResources()).some((r) => r['uri'] === `demo://resource/session/${file}`),
            'the new resource is listed',
          );
        } else {
          const revision = /revision (\d+)/.exec(textOf(await agent.callTool(`${up}__test_revise_tool`, {})))?.[1];
          assert.ok(revision);
          await eventually('tools/list_changed at the agent', () => watch.count('tools') > 0, 10_000);
          const revised = (await agent.listTools()).find((t) => t['name'] === `${up}__test_revised_tool`);
          assert.match(
            String(revised?.['description']),
            new RegExp(`revision ${revision}$`),
            'the changed definition is listed',
          );
        }
      } finally {
        await watch.close();
      }
    }),

  'MX-KILL-MID-CALL': (cell) =>
    withAgent(cell, async (agent, up) => {
      const { tool, args } = scenario(cell.upstream).long;
      const call = agent.callTool(`${up}__${tool}`, args).then(
        (result) => ({ result, error: undefined, at: Date.now() }),
        (error: unknown) => ({ result: undefined, error, at: Date.now() }),
      );
      await inFlight(up, tool);
      const killedAt = Date.now();
      await killUpstream(cell.upstream);
      const { result, error, at } = await call;
      // Issue 13: an upstream that could not run the call is an execution failure the model sees (isError), not a
      // protocol error.
      assert.equal(error, undefined, `an isError result, not an exception: ${String(error)}`);
      assert.equal(result?.['isError'], true, `the call failed: ${JSON.stringify(result)}`);
      assert.match(textOf(result!), new RegExp(`upstream "${up}"`));
      assert.ok(at - killedAt < 2_000, `failed ${at - killedAt} ms after the kill`);
      await bringBack(cell.upstream);
      const { tool: echo, args: echoArgs } = scenario(cell.upstream).echo;
      assert.ok(textOf(await agent.callTool(`${up}__${echo}`, echoArgs)).length > 0, 'calls work again');
    }),

  'MX-SSE-RESUME': (cell) =>
    withAgent(cell, async (agent, up) => {
      const everything = UPSTREAMS[cell.upstream].server === 'everything';
      const { tool, steps } = scenario(cell.upstream).progress;
      // Steps 600 ms apart (the conformance fixture's default is 50): on a loaded machine the agent may handle the
      // first progress late, and the rest must not have arrived on the first stream by then, or there is nothing
      // left to resume.
      const args = everything ? { duration: 1.8, steps: 3 } : { intervalMs: 600 };
      const seen: number[] = [];
      let dropped = 0;
      const result = await agent.callTool(`${up}__${tool}`, args, {
        onprogress: (p) => {
          seen.push(p.progress);
          if (seen.length === 1) dropped = agent.dropAnswerStreams();
        },
      });
      assert.equal(dropped, 1, 'the answer stream was dropped after the first progress');
      assert.ok(agent.resumes.length >= 1, 'the agent resumed with Last-Event-ID');
      assert.notEqual(result['isError'], true);
      // server-everything's steps are 600 ms apart, so the second one arrives on the resumed stream.
      assertProgressPrefix(seen, steps, everything ? 2 : 1);
    }),
};

const passed = new Set<string>();

describe('the transport matrix: agent transport × upstream transport', () => {
  for (const run of matrixPlan()) {
    test(run.name, async () => {
      await RUNS[run.requirement](run.cell);
      passed.add(runKey(run.requirement, run.cell));
    });
  }

  test('MX-COVERAGE: every matrix requirement passed in every cell not declared exempt', () => {
    const missing = matrixPlan()
      .map((run) => runKey(run.requirement, run.cell))
      .filter((key) => !passed.has(key));
    assert.deepEqual(missing, []);
  });
});

describe('server-memory and server-filesystem through every agent transport', () => {
  for (const downstream of Object.keys(DOWNSTREAMS) as DownstreamId[]) {
    test(`UP-REAL-SERVERS DN-TOOLS-LIST DN-TOOLS-CALL [${downstream}]: server-memory and server-filesystem (a \
temporary directory) are listed and called`, async () => {
      const agent = await connectAgent(downstream, server.url, realServersKey.secret);
      try {
        assert.deepEqual(names(await agent.listTools()), catalogKeys('tools', ['memory', 'files']));
        const entity = `matrix-${downstream}`;
        await agent.callTool('memory__create_entities', {
          entities: [{ name: entity, entityType: 'test', observations: ['seen through the gateway'] }],
        });
        assert.match(textOf(await agent.callTool('memory__read_graph', {})), new RegExp(entity));
        const path = join(workDir, `${downstream}.txt`);
        await agent.callTool('files__write_file', { path, content: `written by ${downstream}` });
        assert.equal(textOf(await agent.callTool('files__read_text_file', { path })), `written by ${downstream}`);
      } finally {
        await agent.close();
      }
    });
  }
});

describe('faults per upstream transport (SDK v1 agent over Streamable HTTP)', () => {
  /**
   * The upstream's tools are withdrawn while it is DOWN: the agent is told (list_changed); a call to one
   * of them gets a retryable "unavailable" isError result (issue 12: not "Tool … not found").
   */
  async function assertWithdrawn(agent: MatrixAgent, up: string, tool: string, args: Json): Promise<void> {
    const exposed = `${up}__${tool}`;
    assert.ok(!(await agent.listTools()).some((t) => t['name'] === exposed), 'not listed while down');
    const result = await agent.callTool(exposed, args);
    assert.equal(result['isError'], true, JSON.stringify(result));
    assert.match(textOf(result), /temporarily unavailable/);
  }

  for (const upstream of ['ev-stdio', 'conf-stdio'] as const) {
    test(`UP-STDIO-RESTART DN-LIST-CHANGED [${upstream}]: killed while idle, the upstream is restarted (a new \
process), DOWN reported with why; the agent gets tools list_changed and its calls work again`, async () => {
      const cell: MatrixCell = { downstream: 'v1-http', upstream };
      await withAgent(cell, async (agent, up) => {
        const watch = await agent.watchListChanged(['tools']);
        const pid = harness.connection(up).pid;
        await killUpstream(upstream);
        await eventually(
          'a new process, READY',
          () => harness.connection(up).pid !== pid && harness.state(up) === READY,
          30_000,
        );
        assert.ok(
          harness.reports.some(
            (r) => r.upstreamId === harness.connection(up).config.id && r.state === DOWN && /exited/.test(r.error),
          ),
          'DOWN reported, saying why',
        );
        await eventually('tools/list_changed at the agent', () => watch.count('tools') > 0, 5_000);
        const { tool, args } = scenario(upstream).echo;
        assert.ok(textOf(await agent.callTool(`${up}__${tool}`, args)).length > 0);
      });
    });
  }

  for (const upstream of ['ev-http', 'ev-sse', 'conf-http'] as const) {
    test(`UP-HTTP-RECONNECT DN-LIST-CHANGED [${upstream}]: stopped while idle, the upstream is DOWN and its tools are \
withdrawn (list_changed; a call is answered unavailable, retryable); started again, calls work again`, async () => {
      const cell: MatrixCell = { downstream: 'v1-http', upstream };
      await withAgent(cell, async (agent, up) => {
        const watch = await agent.watchListChanged(['tools']);
        await httpProcesses.get(upstream)!.process!.stop();
        await harness.waitForState(up, DOWN, 10_000);
        await eventually('tools/list_changed at the agent', () => watch.count('tools') > 0, 5_000);
        const { tool, args } = scenario(upstream).echo;
        await assertWithdrawn(agent, up, tool, args);
        await bringBack(upstream);
        assert.ok(textOf(await agent.callTool(`${up}__${tool}`, args)).length > 0);
      });
    });
  }
});
