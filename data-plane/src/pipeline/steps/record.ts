import type { CallOutcome, DataPlaneMetrics } from '../../observability/metrics.ts';
import { RpcErrorCode } from '../../mcp/protocol.ts';
import type { Operation, Outcome, Step } from '../operation.ts';

/**
 * What happened, once it is known: wraps every later step, so it sees each outcome, refusals
 * included. Today it measures tool calls routed to an upstream (duration, the gateway's own share,
 * outcome); audit events and spans come here too. A call still waiting for a 2026-07-28 agent's
 * input is measured when it completes, on the retry that completes it.
 */
export function recordStep(metrics: DataPlaneMetrics | undefined): Step {
  if (metrics === undefined) return { name: 'record', run: (operation, next) => next(operation) };
  return {
    name: 'record',
    async run(operation, next) {
      const outcome = await next(operation);
      const target = operation.target;
      if (operation.method === 'tools/call' && target?.kind === 'upstream' && outcome.kind !== 'input') {
        const now = performance.now();
        const started = operation.upstreamStartedAt;
        const upstreamSeconds = started === undefined ? 0 : ((operation.upstreamEndedAt ?? now) - started) / 1000;
        metrics.toolCall(
          target.upstream,
          callOutcome(operation, outcome),
          (now - operation.receivedAt) / 1000,
          upstreamSeconds,
        );
      }
      return outcome;
    },
  };
}

function callOutcome(operation: Operation, outcome: Outcome): CallOutcome {
  if (outcome.kind === 'error') {
    if (operation.upstreamStartedAt === undefined) return 'refused';
    return outcome.error.code === RpcErrorCode.UpstreamUnavailable ? 'unavailable' : 'rpc_error';
  }
  if (outcome.kind !== 'result') return 'ok';
  if (outcome.unavailable === true) return 'unavailable';
  return outcome.result['isError'] === true ? 'tool_error' : 'ok';
}
