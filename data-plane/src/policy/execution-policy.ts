import { ErrorCode, PortcullisError } from '../../../common/src/index.ts';
import {
  ApprovalVia,
  ExecutionPolicy,
  type ExecutionPolicyRule,
  type UpstreamConfig,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { NAME_SEPARATOR } from './allow-list.ts';

/** What a call's policy says: it runs, it waits for a person, or it is refused as an unknown tool. */
export type PolicyVerdict = 'auto' | 'approve' | 'deny';

/** The verdict for one call, with how long an approval may take (0: the node's default). */
export interface PolicyDecision {
  readonly verdict: PolicyVerdict;
  readonly approvalTimeoutMs: number;
  /** The argument condition that made it `approve`, when one did (for the approval request's reason). */
  readonly because?: string;
  /**
   * `approve`: who is asked. `client`: the person at the agent's client by elicitation, where the agent can be asked
   * (else an operator); absent: an operator. Of several approvals that apply, an operator's wins.
   */
  readonly viaClient?: boolean;
}

const AUTO: PolicyDecision = Object.freeze({ verdict: 'auto', approvalTimeoutMs: 0 });
const STRICTNESS: Readonly<Record<PolicyVerdict, number>> = { auto: 0, approve: 1, deny: 2 };

/** One rule, compiled: which tools it names (by exposed name and upstream) and what it says. */
interface CompiledRule {
  /** Exact exposed name, or undefined with `upstream` for a whole upstream, or neither for everything. */
  readonly exposedName: string | undefined;
  readonly upstream: string | undefined;
  readonly verdict: PolicyVerdict;
  readonly argument: string | undefined;
  readonly pattern: RegExp | undefined;
  readonly approvalTimeoutMs: number;
  /** What the rule decides (made once: a call allocates nothing to decide). */
  readonly decision: PolicyDecision;
}

const VERDICTS: ReadonlyMap<ExecutionPolicy, PolicyVerdict> = new Map([
  [ExecutionPolicy.EXECUTION_POLICY_AUTO, 'auto'],
  [ExecutionPolicy.EXECUTION_POLICY_APPROVE, 'approve'],
  [ExecutionPolicy.EXECUTION_POLICY_DENY, 'deny'],
]);

function badRule(index: number, reason: string): PortcullisError {
  return new PortcullisError(ErrorCode.BAD_CONFIG, `execution_policies.${index}: ${reason}`);
}

/** An exposed-name pattern of a team or key rule: `*`, `up__*` or one exposed name. */
function patternScope(tool: string): Pick<CompiledRule, 'exposedName' | 'upstream'> {
  if (tool === '*') return { exposedName: undefined, upstream: undefined };
  if (tool.endsWith(`${NAME_SEPARATOR}*`))
    return { exposedName: undefined, upstream: tool.slice(0, -(NAME_SEPARATOR.length + 1)) };
  return { exposedName: tool, upstream: undefined };
}

function compile(
  rule: ExecutionPolicyRule,
  index: number,
  upstreams: ReadonlyMap<string, UpstreamConfig>,
): CompiledRule | undefined {
  const verdict = VERDICTS.get(rule.policy);
  if (verdict === undefined) throw badRule(index, 'policy must be AUTO, APPROVE or DENY');
  if (rule.tool === '') throw badRule(index, 'tool must not be empty');
  const scopes = [rule.upstreamId, rule.teamId, rule.keyId].filter((scope) => scope !== '').length;
  if (scopes !== 1) throw badRule(index, 'exactly one of upstream_id, team_id and key_id must be set');
  if ((rule.argument === '') !== (rule.pattern === '')) throw badRule(index, 'argument and pattern go together');
  if (rule.argument !== '' && verdict !== 'approve') throw badRule(index, 'only an APPROVE rule may have a condition');
  let pattern: RegExp | undefined;
  if (rule.pattern !== '') {
    try {
      pattern = new RegExp(rule.pattern, 'u');
    } catch (error) {
      throw badRule(index, `pattern is not a valid regular expression: ${(error as Error).message}`);
    }
  }
  let scope: Pick<CompiledRule, 'exposedName' | 'upstream'>;
  if (rule.upstreamId !== '') {
    const upstream = upstreams.get(rule.upstreamId);
    // A rule of an upstream this snapshot does not hold applies to nothing.
    if (upstream === undefined) return undefined;
    scope =
      rule.tool === '*'
        ? { exposedName: undefined, upstream: upstream.name }
        : {
            exposedName: upstream.exposeUnprefixed ? rule.tool : `${upstream.name}${NAME_SEPARATOR}${rule.tool}`,
            upstream: upstream.name,
          };
  } else {
    scope = patternScope(rule.tool);
  }
  const because = pattern === undefined ? undefined : `argument "${rule.argument}" matches /${pattern.source}/`;
  const viaClient = verdict === 'approve' && rule.approvalVia === ApprovalVia.APPROVAL_VIA_CLIENT;
  return {
    ...scope,
    verdict,
    argument: rule.argument === '' ? undefined : rule.argument,
    pattern,
    approvalTimeoutMs: rule.approvalTimeoutMs,
    decision: Object.freeze({
      verdict,
      approvalTimeoutMs: rule.approvalTimeoutMs,
      ...(because === undefined ? {} : { because }),
      ...(viaClient ? { viaClient } : {}),
    }),
  };
}

function names(rule: CompiledRule, exposedName: string, upstream: string): boolean {
  if (rule.exposedName !== undefined)
    return rule.exposedName === exposedName && (rule.upstream ?? upstream) === upstream;
  return rule.upstream === undefined || rule.upstream === upstream;
}

function conditionHolds(rule: CompiledRule, args: Readonly<Record<string, unknown>> | undefined): boolean {
  if (rule.pattern === undefined) return true;
  const value = args?.[rule.argument!];
  if (value === undefined) return false;
  return rule.pattern.test(typeof value === 'string' ? value : JSON.stringify(value));
}

function push<K>(map: Map<K, CompiledRule[]>, key: K, rule: CompiledRule): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [rule]);
  else list.push(rule);
}

/**
 * The execution policy rules of one snapshot, compiled and indexed by scope so that a call looks
 * only at the rules of its upstream, its key's team and its key (none, for most calls: `auto` at
 * once, nothing allocated). Of the rules that apply, the strictest wins.
 */
export class ExecutionPolicies {
  static readonly NONE = new ExecutionPolicies(new Map(), new Map(), new Map(), '[]');

  private constructor(
    private readonly byUpstream: ReadonlyMap<string, readonly CompiledRule[]>,
    private readonly byTeam: ReadonlyMap<string, readonly CompiledRule[]>,
    private readonly byKey: ReadonlyMap<string, readonly CompiledRule[]>,
    /** The rules as sent (JSON): equal fingerprints, equal policies. */
    readonly fingerprint: string,
  ) {}

  /** Compiles a snapshot's rules against its upstreams; throws BAD_CONFIG naming the rule. */
  static of(rules: readonly ExecutionPolicyRule[], upstreams: readonly UpstreamConfig[]): ExecutionPolicies {
    if (rules.length === 0) return ExecutionPolicies.NONE;
    const upstreamsById = new Map(upstreams.map((upstream) => [upstream.id, upstream]));
    const byUpstream = new Map<string, CompiledRule[]>();
    const byTeam = new Map<string, CompiledRule[]>();
    const byKey = new Map<string, CompiledRule[]>();
    rules.forEach((rule, index) => {
      const compiled = compile(rule, index, upstreamsById);
      if (compiled === undefined) return;
      if (rule.upstreamId !== '') push(byUpstream, compiled.upstream!, compiled);
      else if (rule.teamId !== '') push(byTeam, rule.teamId, compiled);
      else push(byKey, rule.keyId, compiled);
    });
    const upstreamNames = [...upstreamsById.values()].map((u) => [u.id, u.name, u.exposeUnprefixed]);
    return new ExecutionPolicies(byUpstream, byTeam, byKey, JSON.stringify([rules, upstreamNames]));
  }

  /** Whether no rule at all is configured. */
  get empty(): boolean {
    return this.byUpstream.size === 0 && this.byTeam.size === 0 && this.byKey.size === 0;
  }

  /** Whether `keyId` (of `teamId`) may never call this tool: an unconditional DENY applies. Lists hide such tools. */
  denies(keyId: string, teamId: string | undefined, exposedName: string, upstream: string): boolean {
    return (
      this.anyDeny(this.byUpstream.get(upstream), exposedName, upstream) ||
      this.anyDeny(teamId === undefined ? undefined : this.byTeam.get(teamId), exposedName, upstream) ||
      this.anyDeny(this.byKey.get(keyId), exposedName, upstream)
    );
  }

  /** The policy of one call: the strictest rule among its upstream's, its team's and its key's that apply. */
  decide(
    keyId: string,
    teamId: string | undefined,
    exposedName: string,
    upstream: string,
    args: Readonly<Record<string, unknown>> | undefined,
  ): PolicyDecision {
    let decision = AUTO;
    decision = this.strictest(decision, this.byUpstream.get(upstream), exposedName, upstream, args);
    if (teamId !== undefined) decision = this.strictest(decision, this.byTeam.get(teamId), exposedName, upstream, args);
    return this.strictest(decision, this.byKey.get(keyId), exposedName, upstream, args);
  }

  private anyDeny(rules: readonly CompiledRule[] | undefined, exposedName: string, upstream: string): boolean {
    if (rules === undefined) return false;
    for (const rule of rules) if (rule.verdict === 'deny' && names(rule, exposedName, upstream)) return true;
    return false;
  }

  private strictest(
    decision: PolicyDecision,
    rules: readonly CompiledRule[] | undefined,
    exposedName: string,
    upstream: string,
    args: Readonly<Record<string, unknown>> | undefined,
  ): PolicyDecision {
    if (rules === undefined) return decision;
    for (const rule of rules) {
      const stricter = STRICTNESS[rule.verdict] - STRICTNESS[decision.verdict];
      if (stricter < 0 || !names(rule, exposedName, upstream) || !conditionHolds(rule, args)) continue;
      if (stricter > 0) decision = rule.decision;
      else if (rule.verdict === 'approve') {
        if (rule.approvalTimeoutMs !== decision.approvalTimeoutMs) {
          // Of several approvals that apply, the shortest timeout (0 is the node's default, the longest here).
          const shorter = Math.min(rule.approvalTimeoutMs || Infinity, decision.approvalTimeoutMs || Infinity);
          decision = { ...decision, approvalTimeoutMs: shorter === Infinity ? 0 : shorter };
        }
        // An operator's approval is stricter than the client's: one rule asking for it is enough.
        if (decision.viaClient === true && rule.decision.viaClient !== true) {
          const { viaClient: _, ...operator } = decision;
          decision = operator;
        }
      }
    }
    return decision;
  }
}
