import type { Step } from '../operation.ts';

/**
 * Per-tool execution policy (auto, approve, deny) will decide here whether an admitted call runs
 * now, waits for a person, or is refused. Today every admitted operation runs.
 */
export function policyStep(): Step {
  return { name: 'policy', run: (operation, next) => next(operation) };
}
