import type { TargetCheck } from '../results.ts';
import { graphql, startPortcullis } from '../targets/portcullis.ts';
import { exposableTools, loadCatalogs } from './catalog.ts';
import { TASKS } from './tasks.ts';
import { registerRecordedUpstreams, runTokenBenchmark, type SizeResult } from './token-benchmark.ts';

/**
 * The code-mode section of `npm run bench` (`--only code-mode`): a gateway of its own (control plane and one
 * node, as `startPortcullis` starts them) with every recorded catalog behind it, the task suite at 100, 250
 * and 500 tools (and the whole catalog), a row per size.
 */

export const CODE_MODE_SIZES = [100, 250, 500] as const;
export const CODE_MODE_TARGET_REDUCTION = 0.99;

export interface CodeModeSection {
  readonly rows: Record<string, string | number>[];
  readonly targets: TargetCheck[];
  readonly notes: string[];
  readonly failures: string[];
  readonly results: SizeResult[];
}

export async function measureCodeModeTokens(progress: (line: string) => void): Promise<CodeModeSection> {
  const catalogs = loadCatalogs();
  const recorded = catalogs.reduce((s, c) => s + c.tools.length, 0);
  const total = catalogs.reduce((s, c) => s + exposableTools(c).length, 0);
  progress(
    `code mode: ${recorded} recorded tools from ${catalogs.length} servers, ${total} with names the gateway ` +
      'exposes; starting a gateway…',
  );
  // A busy machine (two cores shared) can take minutes to start both planes.
  const running = await startPortcullis(undefined, { startTimeoutMs: 240_000 });
  try {
    const { gateway } = running;
    const access = {
      mcpUrl: gateway.mcpUrl,
      gql: <T>(query: string, variables?: Record<string, unknown>) =>
        graphql<T>(gateway.graphqlUrl, gateway.adminToken, query, variables),
    };
    await registerRecordedUpstreams(access, catalogs);
    const results = await runTokenBenchmark(access, {
      catalogs,
      tasks: TASKS,
      sizes: [...CODE_MODE_SIZES, total],
      progress,
    });
    return summarize(results, catalogs.length, total, recorded);
  } finally {
    await running.stop();
  }
}

export function summarize(
  results: readonly SizeResult[],
  servers: number,
  total: number,
  recorded: number,
): CodeModeSection {
  const rows = results.map((r) => {
    const tasks = r.tasks.length;
    const calls = r.tasks.reduce((s, t) => s + t.calls, 0);
    return {
      tools: r.tools,
      'tool list tokens': r.toolListTokens,
      'meta-tool tokens': r.metaToolTokens,
      tasks,
      'classic calls': calls,
      'classic input tokens': r.classicTokens,
      'code-mode input tokens': r.codeModeTokens,
      'per task classic': Math.round(r.classicTokens / tasks),
      'per task code mode': Math.round(r.codeModeTokens / tasks),
      reduction: `${(r.reduction * 100).toFixed(2)}%`,
      passed: `${r.passed}/${tasks}`,
    };
  });
  const failures = results.flatMap((r) =>
    r.tasks.filter((t) => !t.passed).map((t) => `${r.tools} tools: ${t.task}: ${t.why ?? 'failed'}`),
  );
  const at500 = results.find((r) => r.tools === 500);
  const targets: TargetCheck[] = [
    at500
      ? {
          target: 'code mode: input tokens at 500 tools ≥ 99% fewer than classic, every task passing',
          measured: Number((at500.reduction * 100).toFixed(2)),
          unit: '% fewer',
          met: at500.reduction >= CODE_MODE_TARGET_REDUCTION && at500.passed === at500.tasks.length,
          why: `${at500.passed}/${at500.tasks.length} tasks passed`,
        }
      : {
          target: 'code mode: input tokens at 500 tools ≥ 99% fewer than classic, every task passing',
          unit: '% fewer',
          why: `the recorded catalog has ${total} tools, fewer than 500`,
        },
  ];
  const notes = [
    `code mode: ${recorded} real tool definitions recorded from ${servers} MCP servers on npm ` +
      `(bench/fixtures/catalogs), ${total} of them with a name the gateway exposes (<server>__<tool> within 64 ` +
      'characters), each served back by a recorded-catalog upstream (stdio) behind one gateway ' +
      "node; per size, a classic key and a code-mode key allowed the same tools (the tasks' tools first, then " +
      'the others a server at a time)',
    'code mode: classic = every turn holds the whole tools/list JSON, the prompt and each call and result so ' +
      'far, one call a turn; code mode = the meta-tools, the prompt, a turn of search_tools (limit 5, one per ' +
      'tool needed), a turn of read_tool_file (each stub), one run_script and its result, then the final turn; ' +
      "tokens are o200k_base (js-tiktoken) over each piece's JSON, summed over every turn; a task passes when " +
      "the script's result equals the classic run's answer (its calls made one by one through the gateway)",
  ];
  return { rows, targets, notes, failures, results: [...results] };
}
