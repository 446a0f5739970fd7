/** Separates the upstream name from the tool name in exposed names: `<upstream>__<tool>`. */
export const NAME_SEPARATOR = '__';

/**
 * A compiled tool allow-list. Patterns are exact exposed names (`up__tool`), upstream wildcards
 * (`up__*`) or `*` for everything; compiled once per snapshot so a check is a set lookup.
 */
export class AllowList {
  private readonly all: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly upstreams: ReadonlySet<string>;

  /**
   * `denied`: tools an execution policy denies this key (policy/execution-policy.ts), hidden and
   * refused exactly as tools outside the patterns.
   */
  constructor(
    patterns: readonly string[],
    private readonly denied?: (exposedName: string, upstream: string) => boolean,
  ) {
    const exact = new Set<string>();
    const upstreams = new Set<string>();
    let all = false;
    for (const pattern of patterns) {
      if (pattern === '*') all = true;
      else if (pattern.endsWith(`${NAME_SEPARATOR}*`)) upstreams.add(pattern.slice(0, -(NAME_SEPARATOR.length + 1)));
      else exact.add(pattern);
    }
    this.all = all;
    this.exact = exact;
    this.upstreams = upstreams;
  }

  /** Whether the tool `exposedName` (offered by `upstream`) may be seen and called. */
  allows(exposedName: string, upstream: string): boolean {
    if (!(this.all || this.exact.has(exposedName) || this.upstreams.has(upstream))) return false;
    return this.denied === undefined || !this.denied(exposedName, upstream);
  }
}
