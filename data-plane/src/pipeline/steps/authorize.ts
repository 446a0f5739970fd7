import { CallToolRequestParamsSchema } from '@modelcontextprotocol/core';
import type { CatalogViews } from '../../mcp/catalog-views.ts';
import { decodeCursor } from '../../mcp/catalog-views.ts';
import { isPlainObject } from '../../mcp/json-rpc.ts';
import { RpcErrorCode } from '../../mcp/protocol.ts';
import { isPlainCallToolParams } from '../../mcp/sdk-shapes.ts';
import { unwrapTaskId } from '../../mcp/task-ids.ts';
import type { Principal } from '../../policy/principal.ts';
import type { CatalogKind, UpstreamRouter } from '../../upstream/upstream-router.ts';
import { GatewayError } from '../gateway-error.ts';
import type { KnownTools } from '../known-tools.ts';
import { refused, type Operation, type Outcome, type Step, type Target } from '../operation.ts';
import { unavailableToolResult } from '../tool-results.ts';

export interface AuthorizeOptions {
  readonly router: UpstreamRouter;
  readonly views: CatalogViews;
  readonly knownTools: KnownTools;
}

/** Routes one method: the target the principal may act on, or the outcome that ends the operation. */
type Route = (operation: Operation, principal: Principal, options: AuthorizeOptions) => Target | Outcome;

const LIST_KINDS: ReadonlyMap<string, CatalogKind> = new Map<string, CatalogKind>([
  ['tools/list', 'tools'],
  ['prompts/list', 'prompts'],
  ['resources/list', 'resources'],
  ['resources/templates/list', 'resourceTemplates'],
]);

const GATEWAY: Target = Object.freeze({ kind: 'gateway' });

/**
 * Admission: what the principal may see and call. Lists are filtered by its allow-list (the target
 * names it); a call is routed to the upstream serving the name it may use, or refused exactly as if
 * the name did not exist, so a key cannot learn what lies beyond its allow-list. A retry bound to a
 * parked call must still be allowed on that call's upstream. A known tool whose upstream is away
 * ends here with a retryable isError result. Methods are looked up in a Map: a method named like an
 * Object.prototype member (`constructor`, `toString`, `__proto__`) is simply unknown.
 */
export function authorizeStep(options: AuthorizeOptions): Step {
  return {
    name: 'authorize',
    run(operation, next) {
      const principal = operation.principal;
      if (principal === undefined)
        return Promise.resolve(refused(new GatewayError(RpcErrorCode.Unauthenticated, 'Unauthorized')));
      const route = ROUTES.get(operation.method);
      const routed =
        route === undefined ? refused(GatewayError.methodNotFound()) : route(operation, principal, options);
      if (isOutcome(routed)) return Promise.resolve(routed);
      operation.target = routed;
      return next(operation);
    },
  };
}

/** The one answer for a tool that does not exist or may not be called (the SDK server's wording). */
export function toolNotFound(name: string): Outcome {
  return refused(GatewayError.invalidParams(`Tool ${name} not found`));
}

const TOOL_NOT_FOUND = /^Tool .+ not found$/s;

/** Whether a refusal is toolNotFound's (the REST API answers it with 404). */
export function isToolNotFound(error: GatewayError): boolean {
  return error.code === RpcErrorCode.InvalidParams && TOOL_NOT_FOUND.test(error.message);
}

function isOutcome(routed: Target | Outcome): routed is Outcome {
  return routed.kind === 'error' || routed.kind === 'result' || routed.kind === 'json' || routed.kind === 'input';
}

function invalid(message: string, data?: unknown): Outcome {
  return refused(GatewayError.invalidParams(message, data));
}

/** The SDK server's answer for an unknown resource (on every revision). */
function resourceNotFound(uri: string): Outcome {
  return invalid(`Resource not found: ${uri}`, { uri });
}

function list(operation: Operation, principal: Principal): Target | Outcome {
  const cursor = operation.params['cursor'];
  let offset = 0;
  if (cursor !== undefined) {
    const decoded = typeof cursor === 'string' ? decodeCursor(cursor) : undefined;
    if (decoded === undefined) return invalid('Invalid params: unknown cursor');
    offset = decoded;
  }
  return { kind: 'catalog', catalog: LIST_KINDS.get(operation.method)!, allowList: principal.allowList, offset };
}

function callTool(operation: Operation, principal: Principal, options: AuthorizeOptions): Target | Outcome {
  const params = operation.params;
  if (!isPlainCallToolParams(params)) {
    const checked = CallToolRequestParamsSchema.safeParse(params);
    if (!checked.success) return invalid(`Invalid tools/call request: ${checked.error.message}`);
  }
  const name = params['name'] as string;
  const resumes = operation.resumes;
  if (resumes?.kind === 'parked') {
    return principal.allowList.allows(name, resumes.upstream)
      ? { kind: 'upstream', upstream: resumes.upstream, subject: name, params }
      : toolNotFound(name);
  }
  const tool = options.views.findAllowed(principal.allowList, 'tools', name);
  if (tool === undefined) {
    const away = options.knownTools.unavailableUpstream(name);
    if (away !== undefined && principal.allowList.allows(name, away))
      return { kind: 'result', result: unavailableToolResult(away, name), unavailable: true };
    return toolNotFound(name);
  }
  if (resumes !== undefined && tool.upstreamName !== resumes.upstream) return moved(name);
  return {
    kind: 'upstream',
    upstream: tool.upstreamName,
    subject: name,
    params: { ...params, name: tool.upstreamKey },
  };
}

function getPrompt(operation: Operation, principal: Principal, options: AuthorizeOptions): Target | Outcome {
  const name = operation.params['name'];
  if (typeof name !== 'string') return invalid('Invalid prompts/get request: name must be a string');
  const resumes = operation.resumes;
  const notFound = () => invalid(`Prompt ${name} not found`);
  if (resumes?.kind === 'parked') {
    return principal.allowList.allowsPrompt(name, resumes.upstream)
      ? { kind: 'upstream', upstream: resumes.upstream, subject: name, params: operation.params }
      : notFound();
  }
  const prompt = options.views.findAllowed(principal.allowList, 'prompts', name);
  if (prompt === undefined) return notFound();
  if (resumes !== undefined && prompt.upstreamName !== resumes.upstream) return moved(name);
  return {
    kind: 'upstream',
    upstream: prompt.upstreamName,
    subject: name,
    params: { ...operation.params, name: prompt.upstreamKey },
  };
}

function readResource(operation: Operation, principal: Principal, options: AuthorizeOptions): Target | Outcome {
  const uri = operation.params['uri'];
  if (typeof uri !== 'string') return invalid('Invalid resources/read request: uri must be a string');
  const resumes = operation.resumes;
  if (resumes?.kind === 'parked') {
    return options.views.mayReadResource(principal.allowList, uri, resumes.upstream)
      ? { kind: 'upstream', upstream: resumes.upstream, subject: uri, params: operation.params }
      : resourceNotFound(uri);
  }
  const upstream = resourceUpstream(uri, principal, options);
  if (upstream === undefined) return resourceNotFound(uri);
  if (resumes !== undefined && upstream !== resumes.upstream) return moved(uri);
  return { kind: 'upstream', upstream, subject: uri, params: operation.params };
}

function complete(operation: Operation, principal: Principal, options: AuthorizeOptions): Target | Outcome {
  const params = operation.params;
  const ref = params['ref'];
  if (!isPlainObject(ref)) return invalid('Invalid completion/complete request: ref is required');
  if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') {
    const prompt = options.views.findAllowed(principal.allowList, 'prompts', ref['name']);
    if (prompt === undefined) return invalid(`Prompt ${ref['name']} not found`);
    return {
      kind: 'upstream',
      upstream: prompt.upstreamName,
      subject: ref['name'],
      params: { ...params, ref: { ...ref, name: prompt.upstreamKey } },
    };
  }
  if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') {
    const uri = ref['uri'];
    const template = options.router.find('resourceTemplates', uri);
    const usable =
      template !== undefined && options.views.mayReadResource(principal.allowList, template.key, template.upstreamName);
    const upstream = usable ? template.upstreamName : resourceUpstream(uri, principal, options);
    if (upstream === undefined) return invalid(`Resource template ${uri} not found`);
    return { kind: 'upstream', upstream, subject: uri, params };
  }
  return invalid('Invalid completion/complete request: ref must be ref/prompt or ref/resource');
}

function subscription(operation: Operation, principal: Principal, options: AuthorizeOptions): Target | Outcome {
  const uri = operation.params['uri'];
  if (typeof uri !== 'string') return invalid(`Invalid ${operation.method} request: uri must be a string`);
  // Subscriptions live under a 2025-era session: without one there is nothing to subscribe.
  if (operation.sessionId === undefined) return refused(GatewayError.methodNotFound());
  if (operation.method === 'resources/unsubscribe') return GATEWAY;
  const upstream = resourceUpstream(uri, principal, options);
  return upstream === undefined
    ? resourceNotFound(uri)
    : { kind: 'upstream', upstream, subject: uri, params: operation.params };
}

function task(operation: Operation, principal: Principal, options: AuthorizeOptions): Target | Outcome {
  const wrapped = operation.params['taskId'];
  const unwrapped =
    typeof wrapped === 'string' ? unwrapTaskId(wrapped, principal.keyId, operation.sessionKeys) : undefined;
  if (unwrapped === undefined || !options.views.mayUseUpstream(principal.allowList, unwrapped.upstream))
    return invalid(`Task not found: ${String(wrapped)}`);
  return {
    kind: 'upstream',
    upstream: unwrapped.upstream,
    subject: operation.method,
    params: { ...operation.params, taskId: unwrapped.taskId },
  };
}

/** `tasks/list` fans out to every upstream declaring `tasks.list` that the key may use. */
function listTasks(_operation: Operation, principal: Principal, options: AuthorizeOptions): Target {
  const upstreams = options.router.upstreams().filter((u) => {
    const tasks = u.capabilities?.['tasks'];
    return (
      isPlainObject(tasks) && tasks['list'] !== undefined && options.views.mayUseUpstream(principal.allowList, u.name)
    );
  });
  return { kind: 'tasks', upstreams: upstreams.map((u) => u.name) };
}

function resourceUpstream(uri: string, principal: Principal, options: AuthorizeOptions): string | undefined {
  return options.router.routeResource(uri, (upstream) =>
    options.views.mayReadResource(principal.allowList, uri, upstream),
  );
}

/** A 2026-07-28 upstream's round whose name another upstream serves now: its state cannot be answered. */
function moved(subject: string): Outcome {
  const message =
    `requestState can no longer be answered: ${subject} is served by another upstream now; ` + 'call again without it';
  return refused(new GatewayError(RpcErrorCode.InputNotAwaited, message, { reason: 'moved' }));
}

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ...[...LIST_KINDS.keys()].map((method): [string, Route] => [method, list]),
  ['tools/call', callTool],
  ['prompts/get', getPrompt],
  ['resources/read', readResource],
  ['completion/complete', complete],
  ['resources/subscribe', subscription],
  ['resources/unsubscribe', subscription],
  ['tasks/get', task],
  ['tasks/result', task],
  ['tasks/cancel', task],
  ['tasks/list', listTasks],
  ['ping', () => GATEWAY],
  ['logging/setLevel', () => GATEWAY],
]);

/** The methods the pipeline serves (each era serves the subset its revision has). */
export const PIPELINE_METHODS: ReadonlySet<string> = new Set(ROUTES.keys());
