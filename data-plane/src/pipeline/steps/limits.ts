import type { Step } from '../operation.ts';

/**
 * Rate limits and budget leases (key, team, customer; the tightest applies) will be taken here,
 * before the upstream is called. Today nothing is limited.
 */
export function limitsStep(): Step {
  return { name: 'limits', run: (operation, next) => next(operation) };
}
