import type { ApprovalGate } from '../approvals/approval-gate.ts';
import { codeModeStep } from '../code-mode/code-mode-step.ts';
import type { SandboxPool } from '../code-mode/sandbox-pool.ts';
import type { AuditRecorder } from '../audit/audit-recorder.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { RateLimitGate } from '../policy/rate-limits.ts';
import type { BudgetLedger } from '../policy/budget-ledger.ts';
import type { DataPlaneMetrics } from '../observability/metrics.ts';
import type { Tracing } from '../../../common/src/tracing.ts';
import type { Operation, Outcome, Step } from './operation.ts';
import { authenticateStep } from './steps/authenticate.ts';
import { authorizeStep, type AuthorizeOptions } from './steps/authorize.ts';
import { executeStep, type ExecuteOptions } from './steps/execute.ts';
import { limitsStep } from './steps/limits.ts';
import { policyStep } from './steps/policy.ts';
import { recordStep } from './steps/record.ts';

/** Runs one operation through the pipeline and resolves with its outcome; never rejects for a refusal. */
export type RunOperation = (operation: Operation) => Promise<Outcome>;

/** The default steps' names, in the order an operation meets them. */
export const STEP_NAMES = ['record', 'authenticate', 'authorize', 'policy', 'limits', 'execute'] as const;

/**
 * Chains steps as middleware (Hono, Envoy's filter chain): the first step gets the operation and a
 * `next` that runs the rest. Composed once, so an operation costs one call per step and no closure.
 * `record` comes first in the chain because it acts last: it wraps the others and sees every
 * outcome, refusals included. The chain must end in a step that answers (execute).
 */
export function composeSteps(steps: readonly Step[]): RunOperation {
  let run: RunOperation = unanswered;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    const next = run;
    run = (operation) => step.run(operation, next);
  }
  return run;
}

/** A new step placed right before the step named `before` (for later capabilities and tests). */
export function insertBefore(steps: readonly Step[], before: string, step: Step): Step[] {
  const at = steps.findIndex((s) => s.name === before);
  if (at === -1) throw new Error(`no pipeline step named "${before}" (steps: ${steps.map((s) => s.name).join(', ')})`);
  return [...steps.slice(0, at), step, ...steps.slice(at)];
}

function unanswered(operation: Operation): Promise<Outcome> {
  return Promise.reject(
    new Error(`the pipeline ended without an answer for ${operation.method}: its last step must be execute`),
  );
}

/** What the default steps need of the node. */
export interface PipelineOptions extends AuthorizeOptions, ExecuteOptions {
  readonly getConfig: () => AppliedConfig | undefined;
  readonly metrics?: DataPlaneMetrics | undefined;
  /** Where calls whose policy is `approve` wait for a person; absent, they are refused. */
  readonly approvals?: ApprovalGate | undefined;
  /** Code mode (the meta-tools and their sandbox); absent, no key sees it. */
  readonly codeMode?: { readonly sandbox: SandboxPool; readonly run: RunOperation } | undefined;
  /** This node's rate-limit buckets; absent, nothing is rate limited. */
  readonly rateLimiter?: RateLimitGate | undefined;
  /** This node's budget leases; absent, budgets are not enforced. */
  readonly budgetLedger?: BudgetLedger | undefined;
  /** Where the record step writes audit records (none written when undefined). */
  readonly audit?: AuditRecorder | undefined;
  /** OpenTelemetry traces (a span per operation and per upstream call); absent, none are made. */
  readonly tracing?: Tracing | undefined;
}

/**
 * The default steps, in chain order (see composeSteps): record, authenticate, (code-mode,) authorize, policy, limits,
 * execute.
 */
export function defaultSteps(options: PipelineOptions): Step[] {
  const codeMode = options.codeMode;
  return [
    recordStep(options.metrics, options.audit, options.tracing),
    authenticateStep(options.getConfig),
    ...(codeMode === undefined
      ? []
      : [codeModeStep({ ...codeMode, views: options.views, getConfig: options.getConfig, metrics: options.metrics })]),
    authorizeStep(options),
    policyStep(options.getConfig, options.approvals),
    limitsStep(options),
    executeStep(options),
  ];
}
