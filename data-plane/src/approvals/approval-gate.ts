import type { Operation, Outcome } from '../pipeline/operation.ts';
import type { PolicyDecision } from '../policy/execution-policy.ts';

/** What a person is asked to approve: one call, as the policy step saw it. */
export interface HeldCall {
  readonly operation: Operation;
  /** The exposed tool name the agent called. */
  readonly tool: string;
  readonly upstream: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly decision: PolicyDecision;
}

/**
 * Where calls whose policy is `approve` wait for a person. Resolves `undefined` once the call is
 * approved (it then runs), or with the outcome that ends it (denied, timed out, withdrawn).
 */
export interface ApprovalGate {
  hold(call: HeldCall): Promise<Outcome | undefined>;
}
