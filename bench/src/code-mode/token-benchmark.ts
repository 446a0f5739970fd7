import { isDeepStrictEqual } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { connectThroughGateway } from '../../../test/support/real-servers.ts';
import {
  CATALOG_DIR,
  type Catalog,
  RECORDED_UPSTREAM,
  type ToolRef,
  catalogFile,
  exposableTools,
  exposedName,
  toolSubset,
} from './catalog.ts';
import type { Task } from './tasks.ts';
import { jsonTokens } from './tokens.ts';

/**
 * The code-mode token benchmark (issue 17), run against a real gateway node with one recorded-catalog
 * upstream per recorded server behind it. For each catalog size N, two keys allowed the same N tools:
 * one classic (code mode off), one in code mode. For each task:
 *  - classic trajectory: the task's script run in this process, each `tools.<server>.<tool>(args)` a
 *    `tools/call` through the gateway with the classic key, one call a turn; every turn holds the whole
 *    tool list (N schemas, as `tools/list` gave them), the prompt and every call and result so far. Its
 *    return value is the expected answer.
 *  - code-mode trajectory: the four meta-tool definitions (the code key's `tools/list`), the prompt, one
 *    turn of `search_tools` calls (one per tool the task needs, `limit` 5), one turn of `read_tool_file`
 *    calls (the stub of each), one `run_script` with the script, its result, and the final turn.
 *    The task passes when the script's result equals the expected answer (and each search found its tool).
 * Input tokens are `o200k_base` over the exact JSON of each piece (tokens.ts), summed over every turn.
 */

export interface GatewayAccess {
  readonly mcpUrl: string;
  /** A GraphQL operation with the admin token; throws on errors. */
  gql<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
}

/** Registers one recorded-catalog upstream (stdio) per catalog, named after its server. */
export async function registerRecordedUpstreams(
  gateway: GatewayAccess,
  catalogs: readonly Catalog[],
  dir = CATALOG_DIR,
): Promise<void> {
  for (const catalog of catalogs) {
    await gateway.gql(`mutation($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }`, {
      input: {
        name: catalog.server,
        transport: 'STDIO',
        command: process.execPath,
        args: [RECORDED_UPSTREAM, catalogFile(catalog.server, dir)],
      },
    });
  }
}

interface ToolCall {
  readonly name: string;
  readonly arguments: Record<string, unknown>;
}

/** One turn's output (the calls a model made) and what came back, as the next turns hold them. */
interface Step {
  readonly calls: readonly ToolCall[];
  readonly results: readonly CallToolResult[];
}

/** What an agent holds: the tool list, the prompt, then its steps; a turn per step plus the final one. */
interface Trajectory {
  readonly tools: readonly unknown[];
  readonly prompt: string;
  readonly steps: readonly Step[];
}

/** Input tokens of every turn of a trajectory, summed (the tool list's tokens given, counted once per N). */
export function trajectoryTokens(trajectory: Trajectory, toolsTokens = jsonTokens(trajectory.tools)): number {
  const fixed = toolsTokens + jsonTokens({ role: 'user', content: trajectory.prompt });
  let held = fixed;
  let total = held; // the first turn
  for (const step of trajectory.steps) {
    held += jsonTokens({ role: 'assistant', tool_calls: step.calls });
    step.results.forEach((result, i) => {
      held += jsonTokens({ role: 'tool', name: step.calls[i]!.name, content: result.content });
    });
    total += held;
  }
  return total;
}

/** What a script gets from a result: structuredContent, else the text (parsed when JSON); isError throws. */
function scriptValue(result: CallToolResult, call: string): unknown {
  const text = result.content
    .filter((c): c is { type: 'text'; text: string } => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
  if (result.isError) throw new Error(text === '' ? `${call} failed` : text);
  if (result.structuredContent !== undefined) return result.structuredContent;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

type AsyncFunctionOf = new (...args: string[]) => (tools: unknown) => Promise<unknown>;
const AsyncFunction = (async () => {}).constructor as AsyncFunctionOf;

/**
 * The classic trajectory of a task: its script run here, every tool call a classic `tools/call` through the
 * gateway, recorded in the order made. Throws when a call fails or the script calls a tool its `find` omits.
 */
export async function runClassic(
  client: Client,
  task: Task,
): Promise<{ answer: unknown; steps: Step[]; used: Set<ToolRef> }> {
  const steps: Step[] = [];
  const used = new Set<ToolRef>();
  const tools = new Proxy(
    {},
    {
      get: (_, server) =>
        typeof server !== 'string' || server === 'then'
          ? undefined
          : new Proxy(
              {},
              {
                get: (__, tool) =>
                  typeof tool !== 'string' || tool === 'then'
                    ? undefined
                    : async (args: Record<string, unknown> = {}) => {
                        const ref = `${server}/${tool}` as ToolRef;
                        if (!(ref in task.find)) throw new Error(`${task.id}: calls ${ref}, not in its find list`);
                        used.add(ref);
                        const call = { name: exposedName(ref), arguments: args };
                        const step = { calls: [call], results: [] as CallToolResult[] };
                        steps.push(step);
                        const result = (await client.callTool(call, undefined, { timeout: 30_000 })) as CallToolResult;
                        step.results.push(result);
                        return scriptValue(result, ref);
                      },
              },
            ),
    },
  );
  const value = await new AsyncFunction('tools', task.code)(tools);
  // The sandbox hands the value back as JSON text: compare the same.
  return { answer: value === undefined ? null : (JSON.parse(JSON.stringify(value)) as unknown), steps, used };
}

/** An error's message with its causes (fetch failures carry the reason there). */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e !== undefined && parts.length < 4; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.join(': ');
}

function textOf(result: CallToolResult): string {
  const first = result.content[0];
  return first?.type === 'text' ? first.text : '';
}

export interface TaskOutcome {
  readonly task: string;
  readonly calls: number;
  readonly classicTokens: number;
  readonly codeModeTokens: number;
  readonly passed: boolean;
  /** Every tool the task needs was among the 5 results of its search. */
  readonly found: boolean;
  /** The expected answer (the classic run's). */
  readonly answer?: unknown;
  readonly why?: string;
}

export interface SizeResult {
  readonly tools: number;
  readonly toolListTokens: number;
  readonly metaToolTokens: number;
  readonly classicTokens: number;
  readonly codeModeTokens: number;
  /** 1 − code mode / classic over all tasks' turns. */
  readonly reduction: number;
  readonly passed: number;
  readonly tasks: readonly TaskOutcome[];
}

export interface TokenBenchmarkOptions {
  readonly catalogs: readonly Catalog[];
  readonly tasks: readonly Task[];
  /** Catalog sizes; each is capped at the catalog's size. */
  readonly sizes: readonly number[];
  readonly progress?: (line: string) => void;
}

const SEARCH_LIMIT = 5;

async function createKey(gateway: GatewayAccess, name: string, tools: readonly string[], codeMode: 'ON' | 'OFF') {
  const data = await gateway.gql<{ createVirtualKey: { secret: string } }>(
    `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { secret } }`,
    { input: { name, allowedTools: tools, codeMode } },
  );
  return data.createVirtualKey.secret;
}

/** Connects with a new key once the node has it (keys reach nodes moments after they are created). */
async function connectWhenAccepted(mcpUrl: string, secret: string, timeoutMs = 60_000): Promise<Client> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectThroughGateway(mcpUrl, secret);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 401 || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Every page of tools/list, each request given `timeoutMs`. */
async function listTools(client: Client, timeoutMs: number): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: timeoutMs });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return tools;
}

/**
 * Lists tools until the key sees `count` of them: the node connects the recorded upstreams in the background,
 * and on a busy machine starting a score of them can take minutes.
 */
async function toolsWhenReady(client: Client, count: number, timeoutMs = 300_000): Promise<Tool[]> {
  const deadline = Date.now() + timeoutMs;
  let seen = 'no answer';
  for (;;) {
    try {
      const tools = await listTools(client, 120_000);
      if (tools.length >= count) return tools;
      seen = `${tools.length} of ${count} tools`;
    } catch (error) {
      seen = describeError(error);
    }
    if (Date.now() > deadline) throw new Error(`the gateway did not list ${count} tools in time: ${seen}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs the suite at each size against `gateway`, whose recorded upstreams are registered already. */
export async function runTokenBenchmark(gateway: GatewayAccess, options: TokenBenchmarkOptions): Promise<SizeResult[]> {
  const progress = options.progress ?? (() => {});
  const must = [...new Set(options.tasks.flatMap((t) => Object.keys(t.find) as ToolRef[]))];
  const total = options.catalogs.reduce((sum, c) => sum + exposableTools(c).length, 0);
  const sizes = [...new Set(options.sizes.map((n) => Math.min(n, total)))];
  const clients: Client[] = [];
  const collected: Array<{ size: number; toolList: Tool[]; metaTools: Tool[]; runs: Array<CodeModeRun | Error> }> = [];
  // The expected answers and classic steps do not depend on N (the same calls, the same answers): taken once,
  // with the classic key of the largest size.
  let classic: Map<string, Awaited<ReturnType<typeof runClassic>> | Error> | undefined;
  try {
    for (const size of [...sizes].sort((a, b) => b - a)) {
      const subset = toolSubset(options.catalogs, size, must).map(exposedName);
      const [classicSecret, codeSecret] = [
        await createKey(gateway, `classic-${size}`, subset, 'OFF'),
        await createKey(gateway, `code-${size}`, subset, 'ON'),
      ];
      const classicClient = await connectWhenAccepted(gateway.mcpUrl, classicSecret);
      clients.push(classicClient);
      const toolList = await toolsWhenReady(classicClient, size);
      const codeClient = await connectWhenAccepted(gateway.mcpUrl, codeSecret);
      clients.push(codeClient);
      const metaTools = await listTools(codeClient, 120_000);
      if (classic === undefined) {
        classic = new Map();
        for (const task of options.tasks) {
          classic.set(
            task.id,
            await runClassic(classicClient, task).catch((e: unknown) => new Error(describeError(e))),
          );
        }
      }
      const runs: Array<CodeModeRun | Error> = [];
      for (const task of options.tasks) {
        runs.push(await runCodeMode(codeClient, task).catch((e: unknown) => new Error(describeError(e))));
      }
      collected.push({ size, toolList, metaTools, runs });
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }
  // Every call first, then the counting: counting blocks this process for seconds, long enough for a server to
  // close an idle keep-alive connection under a request about to be sent.
  const results: SizeResult[] = [];
  for (const { size, toolList, metaTools, runs } of collected) {
    progress(`code mode: ${size} tools, counting tokens…`);
    const toolListTokens = jsonTokens(toolList);
    const metaToolTokens = jsonTokens(metaTools);
    const outcomes = options.tasks.map((task, i) =>
      scoreTask(task, runs[i]!, classic!.get(task.id)!, toolList, toolListTokens, metaTools),
    );
    const classicTokens = outcomes.reduce((s, o) => s + o.classicTokens, 0);
    const codeModeTokens = outcomes.reduce((s, o) => s + o.codeModeTokens, 0);
    const passed = outcomes.filter((o) => o.passed).length;
    progress(
      `code mode: ${size} tools: ${classicTokens} classic vs ${codeModeTokens} code-mode input tokens, ` +
        `${passed}/${outcomes.length} tasks passed`,
    );
    results.push({
      tools: size,
      toolListTokens,
      metaToolTokens,
      classicTokens,
      codeModeTokens,
      reduction: 1 - codeModeTokens / classicTokens,
      passed,
      tasks: outcomes,
    });
  }
  return results.sort((a, b) => a.tools - b.tools);
}

/** What the code-mode agent sent and got for one task. */
interface CodeModeRun {
  readonly steps: [Step, Step, Step];
  /** Paths of needed tools that their search did not list. */
  readonly missed: string[];
  readonly scriptResult: CallToolResult;
}

async function runCodeMode(client: Client, task: Task): Promise<CodeModeRun> {
  const refs = Object.keys(task.find) as ToolRef[];
  const call = async (name: string, args: Record<string, unknown>) =>
    (await client.callTool({ name, arguments: args }, undefined, { timeout: 60_000 })) as CallToolResult;
  const searches: ToolCall[] = refs.map((ref) => ({
    name: 'search_tools',
    arguments: { query: task.find[ref]!, limit: SEARCH_LIMIT },
  }));
  const searchResults = await Promise.all(searches.map((c) => call(c.name, c.arguments)));
  const paths = refs.map((ref) => `servers/${ref}.d.ts`);
  const missed = paths.filter(
    (path, i) =>
      !textOf(searchResults[i]!)
        .split('\n')
        .some((l) => l.startsWith(path)),
  );
  const reads: ToolCall[] = paths.map((path) => ({ name: 'read_tool_file', arguments: { path } }));
  const readResults = await Promise.all(reads.map((c) => call(c.name, c.arguments)));
  const script: ToolCall = { name: 'run_script', arguments: { code: task.code } };
  const scriptResult = await call(script.name, script.arguments);
  return {
    steps: [
      { calls: searches, results: searchResults },
      { calls: reads, results: readResults },
      { calls: [script], results: [scriptResult] },
    ],
    missed,
    scriptResult,
  };
}

function scoreTask(
  task: Task,
  run: CodeModeRun | Error,
  classic: Awaited<ReturnType<typeof runClassic>> | Error,
  toolList: readonly Tool[],
  toolListTokens: number,
  metaTools: readonly Tool[],
): TaskOutcome {
  if (run instanceof Error) {
    return {
      task: task.id,
      calls: 0,
      classicTokens: 0,
      codeModeTokens: 0,
      found: false,
      passed: false,
      why: run.message,
    };
  }
  const { missed, scriptResult } = run;
  const codeModeTokens = trajectoryTokens({ tools: metaTools, prompt: task.prompt, steps: run.steps });
  const base = { task: task.id, codeModeTokens, found: missed.length === 0 };
  if (classic instanceof Error) {
    return { ...base, calls: 0, classicTokens: 0, passed: false, why: `classic run failed: ${classic.message}` };
  }
  const classicTokens = trajectoryTokens(
    { tools: toolList, prompt: task.prompt, steps: classic.steps },
    toolListTokens,
  );
  const outcome = { ...base, calls: classic.steps.length, classicTokens, answer: classic.answer };
  if (scriptResult.isError) return { ...outcome, passed: false, why: `script failed: ${textOf(scriptResult)}` };
  let answer: unknown;
  try {
    answer = JSON.parse(textOf(scriptResult));
  } catch {
    return { ...outcome, passed: false, why: `script result is not JSON: ${textOf(scriptResult).slice(0, 200)}` };
  }
  if (!isDeepStrictEqual(answer, classic.answer)) {
    return {
      ...outcome,
      passed: false,
      why: `answer ${JSON.stringify(answer)} differs from expected ${JSON.stringify(classic.answer)}`,
    };
  }
  if (missed.length) return { ...outcome, passed: false, why: `search did not find ${missed.join(', ')}` };
  return { ...outcome, passed: true };
}
