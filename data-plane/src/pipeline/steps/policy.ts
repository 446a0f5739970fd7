import type { ApprovalGate } from '../../approvals/approval-gate.ts';
import type { AppliedConfig } from '../../config/applied-config.ts';
import { isPlainObject } from '../../mcp/json-rpc.ts';
import { RpcErrorCode } from '../../mcp/protocol.ts';
import { GatewayError } from '../gateway-error.ts';
import { refused, type Step } from '../operation.ts';
import { toolNotFound } from './authorize.ts';

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * Per-tool execution policy: whether an admitted `tools/call` runs now (auto), waits on this node
 * for a person (approve, through `approvals`), or is refused exactly as a tool outside the key's
 * allow-list (deny; unconditional denials are already folded into the allow-list, so lists hide
 * them). Of the rules of the call's upstream, its key's team and its key, the strictest wins
 * (policy/execution-policy.ts). A retry continuing a call that was already let through is not
 * asked again.
 */
export function policyStep(getConfig: () => AppliedConfig | undefined, approvals?: ApprovalGate): Step {
  return {
    name: 'policy',
    // Not async: a call without a policy (nearly all) goes on with no promise or microtask turns of its own.
    run(operation, next) {
      const target = operation.target;
      if (operation.method !== 'tools/call' || target?.kind !== 'upstream' || operation.resumes !== undefined)
        return next(operation);
      const policies = getConfig()?.policies;
      if (policies === undefined || policies.empty) return next(operation);
      const principal = operation.principal!;
      const name = operation.params['name'] as string;
      const args = isPlainObject(operation.params['arguments']) ? operation.params['arguments'] : EMPTY;
      const decision = policies.decide(principal.keyId, principal.teamId, name, target.upstream, args);
      if (decision.verdict === 'auto') return next(operation);
      if (decision.verdict === 'deny') return Promise.resolve(toolNotFound(name));
      if (approvals === undefined) {
        return Promise.resolve(
          refused(
            new GatewayError(
              RpcErrorCode.Forbidden,
              `Tool ${name} needs a person's approval, and this node cannot hold calls for approval`,
              { reason: 'APPROVAL_UNAVAILABLE' },
              403,
            ),
          ),
        );
      }
      return approvals
        .hold({ operation, tool: name, upstream: target.upstream, arguments: args, decision })
        .then((ended) => ended ?? next(operation));
    },
  };
}
