import type { Logger } from 'pino';
import type { LogLevels, ResourceSubscriptions } from '../../mcp/agent-state.ts';
import type { CatalogViews } from '../../mcp/catalog-views.ts';
import { LIST_FIELD } from '../../mcp/catalog-views.ts';
import { isPlainObject } from '../../mcp/json-rpc.ts';
import { RpcErrorCode } from '../../mcp/protocol.ts';
import { wrapTaskId } from '../../mcp/task-ids.ts';
import type { TraceSpan } from '../../../../common/src/tracing.ts';
import type { RpcMessage, UpstreamRouter } from '../../upstream/upstream-router.ts';
import { GatewayError } from '../gateway-error.ts';
import { refused, type Operation, type Outcome, type Step, type Target, type UpstreamAnswer } from '../operation.ts';
import type { TaskIds } from '../task-wrapping.ts';
import { upstreamFailureResult } from '../tool-results.ts';
import { directRelayOptions, forwardParams, forwardableMeta, type RelayContext } from '../upstream-relay.ts';

export interface ExecuteOptions {
  readonly router: UpstreamRouter;
  readonly views: CatalogViews;
  readonly subscriptions: ResourceSubscriptions;
  readonly logLevels: LogLevels;
  readonly tasks: TaskIds;
  readonly logger: Logger;
}

const EMPTY_RESULT: Outcome = Object.freeze({ kind: 'json', json: '{}', cacheable: false });
const UNKNOWN_CURSOR: Outcome = refused(GatewayError.invalidParams('Invalid params: unknown cursor'));

/**
 * Does what authorize admitted, on the target it chose: a page of a filtered catalog, a request
 * relayed to one upstream (through the era's UpstreamCaller, else directly), the gateway's own
 * answers. Failures become outcomes here: an upstream's JSON-RPC error as it came, an unreachable
 * upstream as UpstreamUnavailable, except for `tools/call`, whose failure the model gets as an
 * isError result.
 */
export function executeStep(options: ExecuteOptions): Step {
  const relay: RelayContext = { logLevels: options.logLevels, tasks: options.tasks };
  async function relayed(operation: Operation, target: Extract<Target, { kind: 'upstream' }>): Promise<Outcome> {
    const { upstream, subject } = target;
    operation.upstreamStartedAt = performance.now();
    try {
      if (operation.method === 'resources/subscribe') {
        await options.subscriptions.subscribe(
          operation.sessionId!,
          subject,
          upstream,
          forwardableMeta(operation.params['_meta']),
        );
        return EMPTY_RESULT;
      }
      const message: RpcMessage = { method: operation.method, params: forwardParams(target.params) };
      let result: Record<string, unknown>;
      const caller = operation.callUpstream;
      // Without an era's caller the request is relayed directly (no caller closure, no answer object on the hot path).
      if (caller === undefined) {
        result = await options.router.request(upstream, message, directRelayOptions(operation, upstream, relay));
      } else {
        const answer: UpstreamAnswer = await caller(operation, upstream, message);
        if (answer.kind === 'input') {
          operation.upstreamEndedAt = performance.now();
          return answer;
        }
        result = answer.result;
      }
      operation.upstreamEndedAt = performance.now();
      return { kind: 'result', result: withTaskIds(operation, upstream, result) };
    } catch (error) {
      operation.upstreamEndedAt = performance.now();
      if (error instanceof RangeError && operation.method === 'resources/subscribe')
        return refused(GatewayError.invalidParams(error.message));
      const failure = GatewayError.fromUpstream(error, upstream, subject);
      if (failure === undefined) {
        options.logger.error({ err: error, upstream, subject }, 'relayed request failed unexpectedly');
        return refused(
          new GatewayError(RpcErrorCode.InternalError, `Internal error relaying to upstream "${upstream}"`),
        );
      }
      if (operation.method === 'tools/call' && failure.code === RpcErrorCode.UpstreamUnavailable) {
        return { kind: 'result', result: upstreamFailureResult(failure), unavailable: true };
      }
      return refused(failure);
    }
  }

  /** Task ids the agent sees name their upstream and key: a task-augmented call's, and those of tasks/* results. */
  function withTaskIds(
    operation: Operation,
    upstream: string,
    result: Record<string, unknown>,
  ): Record<string, unknown> {
    const keyId = operation.principal!.keyId;
    if (operation.method === 'tools/call') {
      return operation.params['task'] !== undefined && isPlainObject(result['task'])
        ? options.tasks.remember(result, upstream, keyId, operation.sessionKeys)
        : result;
    }
    return operation.method.startsWith('tasks/')
      ? options.tasks.rewrite(result, upstream, keyId, operation.sessionKeys)
      : result;
  }

  /**
   * `tasks/list` over the target upstreams, merged (first page of each). Upstream connections are
   * shared, so only tasks this key created are returned: the upstream's ids are re-wrapped for the
   * key and kept when the key created them on this node.
   */
  async function listTasks(operation: Operation, upstreams: readonly string[]): Promise<Outcome> {
    const keyId = operation.principal!.keyId;
    const tasks: unknown[] = [];
    for (const upstream of upstreams) {
      try {
        const result = await options.router.request(
          upstream,
          { method: 'tasks/list', params: {} },
          { cancellation: operation.cancellation },
        );
        for (const task of Array.isArray(result['tasks']) ? result['tasks'] : []) {
          if (!isPlainObject(task) || typeof task['taskId'] !== 'string') continue;
          const wrapped = wrapTaskId({ upstream, taskId: task['taskId'] }, keyId, operation.sessionKeys);
          if (options.tasks.owns(keyId, wrapped)) tasks.push({ ...task, taskId: wrapped });
        }
      } catch (error) {
        options.logger.debug({ err: error, upstream }, 'tasks/list failed on one upstream');
      }
    }
    return { kind: 'result', result: { tasks } };
  }

  function gateway(operation: Operation): Outcome {
    if (operation.method === 'resources/unsubscribe')
      options.subscriptions.unsubscribe(operation.sessionId!, String(operation.params['uri']));
    if (operation.method === 'logging/setLevel') {
      const level = operation.params['level'];
      if (
        typeof level !== 'string' ||
        operation.sessionId === undefined ||
        !options.logLevels.set(operation.sessionId, level)
      ) {
        return refused(GatewayError.invalidParams(`Invalid logging/setLevel request: unknown level ${String(level)}`));
      }
    }
    return EMPTY_RESULT;
  }

  /** `relayed` inside a span of its own (traces on), whose trace context the relay passes on to the upstream. */
  async function traced(
    operation: Operation,
    target: Extract<Target, { kind: 'upstream' }>,
    parent: TraceSpan,
  ): Promise<Outcome> {
    const span = parent.upstreamCall(`${operation.method} ${target.upstream}`, {
      'mcp.method.name': operation.method,
      'portcullis.upstream': target.upstream,
      'gen_ai.tool.name': operation.method === 'tools/call' ? target.subject : undefined,
    });
    operation.upstreamTraceparent = span.traceparent;
    const outcome = await relayed(operation, target);
    if (outcome.kind === 'error') span.fail(outcome.error.message, { 'rpc.jsonrpc.error_code': outcome.error.code });
    else if (outcome.kind === 'result' && (outcome.unavailable === true || outcome.result['isError'] === true))
      span.fail(outcome.unavailable === true ? 'upstream unavailable' : 'tool error');
    span.end();
    return outcome;
  }

  return {
    name: 'execute',
    run(operation) {
      const target = operation.target;
      switch (target?.kind) {
        case 'upstream':
          return operation.span === undefined ? relayed(operation, target) : traced(operation, target, operation.span);
        case 'catalog': {
          const page = options.views.page(target.allowList, target.catalog, target.offset);
          if (page === undefined) return Promise.resolve(UNKNOWN_CURSOR);
          const next = page.nextCursor === undefined ? '' : `,"nextCursor":"${page.nextCursor}"`;
          return Promise.resolve({
            kind: 'json',
            json: `{"${LIST_FIELD[target.catalog]}":${page.json}${next}}`,
            cacheable: true,
          });
        }
        case 'tasks':
          return listTasks(operation, target.upstreams);
        case 'gateway':
          return Promise.resolve(gateway(operation));
        default:
          return Promise.resolve(
            refused(
              new GatewayError(
                RpcErrorCode.InternalError,
                `Internal error: ${operation.method} reached execute without a target`,
              ),
            ),
          );
      }
    },
  };
}
