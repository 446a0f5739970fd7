import { randomUUID } from 'node:crypto';
import type { DataPlaneMetrics } from '../observability/metrics.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { CatalogView, CatalogViews } from '../mcp/catalog-views.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { GatewayError } from '../pipeline/gateway-error.ts';
import { refused, type Operation, type Outcome, type Step } from '../pipeline/operation.ts';
import type { RunOperation } from '../pipeline/pipeline.ts';
import type { Principal } from '../policy/principal.ts';
import { SharedCancellation } from '../upstream/cancellation.ts';
import type { CatalogEntry } from '../upstream/upstream-router.ts';
import { codeModeScope, type CodeModeScope } from './code-mode-scope.ts';
import { isMetaTool, META_TOOL_ARGUMENTS, META_TOOL_DEFINITIONS, type MetaToolName } from './meta-tools.ts';
import type { SandboxPool, ToolAnswer } from './sandbox-pool.ts';
import type { ScriptOutcome } from './sandbox-protocol.ts';
import { callExpression } from './tool-stubs.ts';
import { ToolTree } from './tool-tree.ts';

export interface CodeModeStepOptions {
  readonly views: CatalogViews;
  readonly getConfig: () => AppliedConfig | undefined;
  readonly sandbox: SandboxPool;
  /** The whole pipeline, from its first step: a script's tool calls go through it as any call does. */
  readonly run: RunOperation;
  /** Counts script runs by outcome; absent, nothing is counted. */
  readonly metrics?: DataPlaneMetrics | undefined;
}

const DEFAULT_SEARCH_LIMIT = 10;

/** What one catalog view yields in code mode, per scope (the upstreams behind the meta-tools). */
interface ScopedView {
  readonly tree: ToolTree;
  /** `tools/list` for this scope: the meta-tools plus the tools of upstreams outside it. */
  readonly listJson: string;
}

interface ViewIndex {
  readonly scopes: Map<string, ScopedView>;
  /** Exposed name by `<upstream>\0<tool>`: what a script's `tools[up][tool]` calls (any tool the key may call). */
  readonly exposed: ReadonlyMap<string, string>;
}

/**
 * Code mode as one pipeline step, after authenticate: for a principal in code mode it answers
 * `tools/list` (the meta-tools plus the classic tools of upstreams not in code mode) and the
 * meta-tool calls; everything else goes on unchanged. A script's tool calls are new operations
 * through the whole pipeline (authorization, policy, limits, record), with the principal of the
 * `run_script` call and that call as their parent.
 */
export function codeModeStep(options: CodeModeStepOptions): Step {
  const indexes = new WeakMap<CatalogView, ViewIndex>();

  function indexOf(view: CatalogView): ViewIndex {
    let index = indexes.get(view);
    if (index === undefined) {
      const exposed = new Map<string, string>();
      for (const entry of view.entries) exposed.set(`${entry.upstreamName}\u0000${entry.upstreamKey}`, entry.key);
      indexes.set(view, (index = { scopes: new Map(), exposed }));
    }
    return index;
  }

  function scoped(view: CatalogView, scope: CodeModeScope): ScopedView {
    const index = indexOf(view);
    let found = index.scopes.get(scope.key);
    if (found === undefined) {
      const inScope: CatalogEntry[] = [];
      const classic: Readonly<Record<string, unknown>>[] = [...META_TOOL_DEFINITIONS];
      for (const entry of view.entries) {
        if (scope.includes(entry.upstreamName)) inScope.push(entry);
        else classic.push(entry.definition);
      }
      found = { tree: new ToolTree(inScope), listJson: `{"tools":${JSON.stringify(classic)}}` };
      index.scopes.set(scope.key, found);
    }
    return found;
  }

  const scopeOf = (principal: Principal) => codeModeScope(principal, options.getConfig(), options.views);

  async function runScript(operation: Operation, principal: Principal, view: CatalogView, code: string) {
    const exposed = indexOf(view).exposed;
    // Nested calls name the run_script call's audit record (its own id where nothing records).
    const parentId = operation.auditId ?? randomUUID();
    // The script and its calls end when the run_script call does. One cancellation of their own, which
    // thousands of pending nested calls can listen on at the cost of a Set entry each.
    const cancellation = new SharedCancellation();
    const caller = operation.cancellation;
    const abort = () => cancellation.abort(caller.reason);
    if (caller.aborted) abort();
    else caller.onAbort(abort);
    let calls = 0;
    try {
      const outcome = await options.sandbox.run(
        code,
        async (upstream, tool, args) => {
          const name = exposed.get(`${upstream}\u0000${tool}`);
          if (name === undefined)
            throw new Error(`Tool ${callExpression(upstream, tool)} not found; find tools with search_tools`);
          const nested = await options.run({
            id: `${parentId}/${++calls}`,
            method: 'tools/call',
            params: { name, arguments: isPlainObject(args) ? args : {} },
            principal,
            keyId: principal.keyId,
            parentId,
            sessionKeys: operation.sessionKeys,
            cancellation,
            receivedAt: performance.now(),
          });
          return scriptAnswer(nested, upstream, tool);
        },
        cancellation.signal(),
      );
      options.metrics?.sandboxRun(outcome.ok ? 'ok' : outcome.kind);
      return scriptResult(outcome);
    } finally {
      caller.offAbort(abort);
    }
  }

  async function callMetaTool(
    operation: Operation,
    principal: Principal,
    name: MetaToolName,
    scope: CodeModeScope,
  ): Promise<Outcome> {
    const checked = META_TOOL_ARGUMENTS[name].safeParse(operation.params['arguments'] ?? {});
    if (!checked.success) {
      const issue = checked.error.issues[0];
      return toolError(`Invalid arguments for ${name}: ${issue?.path.join('.') || 'arguments'}: ${issue?.message}`);
    }
    const view = options.views.view(principal.allowList, 'tools');
    const { tree } = scoped(view, scope);
    const args = checked.data as Record<string, unknown>;
    switch (name) {
      case 'search_tools': {
        const lines = tree.search(
          args['query'] as string,
          (args['limit'] as number | undefined) ?? DEFAULT_SEARCH_LIMIT,
        );
        return text(lines.length === 0 ? `No tools match "${args['query'] as string}".` : lines.join('\n'));
      }
      case 'list_tool_files': {
        const lines = tree.list(args['path'] as string | undefined);
        return lines === undefined
          ? toolError(`No directory ${String(args['path'])}; try servers`)
          : text(lines.join('\n'));
      }
      case 'read_tool_file': {
        const path = args['path'] as string;
        const content = tree.read(path);
        if (content === undefined) return toolError(`No file ${path}; find stubs with search_tools or list_tool_files`);
        const lines = content.split('\n');
        const start = (args['startLine'] as number | undefined) ?? 1;
        const end = (args['endLine'] as number | undefined) ?? lines.length;
        return text(lines.slice(start - 1, end).join('\n'));
      }
      case 'run_script':
        return runScript(operation, principal, view, args['code'] as string);
    }
  }

  return {
    name: 'code-mode',
    run(operation, next) {
      const principal = operation.principal;
      if (principal === undefined) return next(operation);
      if (operation.method === 'tools/list') {
        const scope = scopeOf(principal);
        if (scope === undefined) return next(operation);
        // The code-mode list is one page: a cursor is not one this key was given (classic pages would show hidden
        // tools).
        if (operation.params['cursor'] !== undefined)
          return Promise.resolve(refused(GatewayError.invalidParams('Invalid params: unknown cursor')));
        const view = options.views.view(principal.allowList, 'tools');
        // A key in code mode lists its tools first: start the sandbox workers now, not at its first script.
        void options.sandbox.warm().catch(() => undefined);
        return Promise.resolve({ kind: 'json', json: scoped(view, scope).listJson, cacheable: true });
      }
      if (operation.method === 'tools/call') {
        const name = operation.params['name'];
        if (!isMetaTool(name)) return next(operation);
        const scope = scopeOf(principal);
        if (scope === undefined) return next(operation);
        return callMetaTool(operation, principal, name, scope);
      }
      return next(operation);
    },
  };
}

function text(value: string): Outcome {
  return { kind: 'result', result: { content: [{ type: 'text', text: value }] } };
}

function toolError(message: string): Outcome {
  return { kind: 'result', result: { content: [{ type: 'text', text: message }], isError: true } };
}

/**
 * What a script's `await tools…(args)` gets: structuredContent, else the text (parsed when it is JSON, which the
 * sandbox worker decides, off this thread); isError throws.
 */
function scriptAnswer(outcome: Outcome, upstream: string, tool: string): ToolAnswer {
  if (outcome.kind === 'error') throw new Error(`${callExpression(upstream, tool)}: ${outcome.error.message}`);
  if (outcome.kind === 'input')
    throw new Error(`${callExpression(upstream, tool)} needs input from the user, which a script cannot give`);
  const result = outcome.kind === 'json' ? (JSON.parse(outcome.json) as Record<string, unknown>) : outcome.result;
  if (result['isError'] === true) {
    const texts = textOf(result);
    throw new Error(texts === '' ? `${callExpression(upstream, tool)} failed` : texts);
  }
  const structured = result['structuredContent'];
  return structured === undefined ? { text: textOf(result) } : { json: JSON.stringify(structured) ?? 'null' };
}

/** A result's text items, joined by newlines. */
function textOf(result: Record<string, unknown>): string {
  const content = result['content'];
  if (!Array.isArray(content)) return '';
  let texts: string | undefined;
  for (const item of content) {
    if (!isPlainObject(item) || typeof item['text'] !== 'string') continue;
    texts = texts === undefined ? item['text'] : `${texts}\n${item['text']}`;
  }
  return texts ?? '';
}

/** A script's ending as the model gets it: the value as JSON and the logs, or an isError naming kind and line. */
function scriptResult(outcome: ScriptOutcome): Outcome {
  const content: Array<{ type: 'text'; text: string }> = [];
  if (outcome.ok) content.push({ type: 'text', text: outcome.valueJson });
  else {
    const where = outcome.line === undefined ? '' : ` at line ${outcome.line}`;
    content.push({ type: 'text', text: `${outcome.kind} error${where}: ${outcome.message}` });
  }
  if (outcome.logs !== '') content.push({ type: 'text', text: outcome.logs });
  return { kind: 'result', result: outcome.ok ? { content } : { content, isError: true } };
}
