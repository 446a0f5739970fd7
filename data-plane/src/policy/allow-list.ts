import { resolveAccessLists, UPSTREAM_WILDCARD } from '../../../common/src/index.ts';
import type { AccessLists } from '../../../proto/gen/portcullis/v1/config.ts';

/** Separates the upstream name from the tool name in exposed names: `<upstream>__<tool>`. */
export const NAME_SEPARATOR = '__';

/**
 * One compiled list of patterns: `*`, whole upstreams (`up__*`), exact names and (resources only)
 * URI prefixes, recognised by a ":" in them. A check is a few set lookups (plus one `startsWith` per
 * prefix for resources).
 */
class PatternSet {
  readonly all: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly upstreams: ReadonlySet<string>;
  private readonly prefixes: readonly string[];

  constructor(patterns: readonly string[], withPrefixes: boolean) {
    const exact = new Set<string>();
    const upstreams = new Set<string>();
    const prefixes: string[] = [];
    let all = false;
    for (const pattern of patterns) {
      if (pattern === '*') all = true;
      else if (pattern.endsWith(UPSTREAM_WILDCARD) && !pattern.includes(':'))
        upstreams.add(pattern.slice(0, -UPSTREAM_WILDCARD.length));
      else if (withPrefixes) prefixes.push(pattern);
      else exact.add(pattern);
    }
    this.all = all;
    this.exact = exact;
    this.upstreams = upstreams;
    this.prefixes = prefixes;
  }

  matches(name: string, upstream: string): boolean {
    if (this.all || this.upstreams.has(upstream) || this.exact.has(name)) return true;
    for (const prefix of this.prefixes) if (name.startsWith(prefix)) return true;
    return false;
  }

  /** Whether the whole upstream is named (`*` or `up__*`), whatever the name. */
  coversUpstream(upstream: string): boolean {
    return this.all || this.upstreams.has(upstream);
  }

  get empty(): boolean {
    return !this.all && this.exact.size === 0 && this.upstreams.size === 0 && this.prefixes.length === 0;
  }
}

/** An allow-list and a deny-list of one kind; deny wins. */
class Rule {
  private readonly allow: PatternSet;
  private readonly deny: PatternSet;

  constructor(allowed: readonly string[], denied: readonly string[], withPrefixes: boolean) {
    this.allow = new PatternSet(allowed, withPrefixes);
    this.deny = new PatternSet(denied, withPrefixes);
  }

  permits(name: string, upstream: string): boolean {
    return this.allow.matches(name, upstream) && (this.deny.empty || !this.deny.matches(name, upstream));
  }

  /** Whether every name of the upstream is allowed and none denied by a pattern that could match it. */
  grantsWholeUpstream(upstream: string): boolean {
    return this.allow.coversUpstream(upstream) && this.deny.empty;
  }
}

/** A key's access lists when the snapshot carries only its tool allow-list. */
export function accessOfToolPatterns(allowedTools: readonly string[]): AccessLists {
  return resolveAccessLists({ allowedTools: [...allowedTools] });
}

/**
 * What one principal may see and call, compiled once per snapshot: the key's own lists and its
 * team's, each an allow-list and a deny-list per kind. A name must pass all of them (deny wins).
 * Tools and prompts are matched by exposed name (`up__name`); resources and resource templates by
 * URI (or URI template) and upstream.
 */
export class AllowList {
  private readonly tools: readonly Rule[];
  private readonly prompts: readonly Rule[];
  private readonly resources: readonly Rule[];

  /**
   * Tool patterns (prompts by the same patterns, resources of the upstreams they grant anything on),
   * or whole access lists, every one of which a name must pass. `denied`: tools an execution policy
   * denies this key (policy/execution-policy.ts), hidden and refused exactly as tools outside the lists.
   */
  constructor(
    patterns: readonly string[] | { readonly lists: readonly AccessLists[] },
    private readonly denied?: (exposedName: string, upstream: string) => boolean,
  ) {
    const lists = 'lists' in patterns ? patterns.lists : [accessOfToolPatterns(patterns)];
    this.tools = lists.map((l) => new Rule(l.allowedTools, l.deniedTools, false));
    this.prompts = lists.map((l) => new Rule(l.allowedPrompts, l.deniedPrompts, false));
    this.resources = lists.map((l) => new Rule(l.allowedResources, l.deniedResources, true));
  }

  /** The lists of a key and (when it has one) its team. */
  static of(
    key: AccessLists,
    team?: AccessLists,
    denied?: (exposedName: string, upstream: string) => boolean,
  ): AllowList {
    return new AllowList({ lists: team === undefined ? [key] : [key, team] }, denied);
  }

  /** Whether the tool `exposedName` (offered by `upstream`) may be seen and called. */
  allows(exposedName: string, upstream: string): boolean {
    if (!everyPermits(this.tools, exposedName, upstream)) return false;
    return this.denied === undefined || !this.denied(exposedName, upstream);
  }

  /** Whether the prompt `exposedName` (offered by `upstream`) may be seen and got. */
  allowsPrompt(exposedName: string, upstream: string): boolean {
    return everyPermits(this.prompts, exposedName, upstream);
  }

  /** Whether the resource `uri` (or resource template) offered by `upstream` may be seen and read. */
  allowsResource(uri: string, upstream: string): boolean {
    return everyPermits(this.resources, uri, upstream);
  }

  /** Whether every resource of `upstream` may be read (what is granted on upstreams a router knows nothing of yet). */
  grantsUpstreamResources(upstream: string): boolean {
    for (const rule of this.resources) if (!rule.grantsWholeUpstream(upstream)) return false;
    return true;
  }
}

function everyPermits(rules: readonly Rule[], name: string, upstream: string): boolean {
  for (const rule of rules) if (!rule.permits(name, upstream)) return false;
  return true;
}
