import type { AccessLists } from '../../proto/gen/portcullis/v1/config.ts';

/**
 * Access lists (AccessLists in proto/portcullis/v1/config.proto): one allow-list and one
 * deny-list per kind; deny wins. What the control plane resolves omitted lists to and what a node
 * assumes for a snapshot carrying only a key's tool allow-list are the same rule, kept here once.
 */
export type ResolvedAccessLists = AccessLists;

/** The upstream wildcard suffix of tool, prompt and resource patterns: `<upstream>__*`. */
export const UPSTREAM_WILDCARD = '__*';

/** Resource patterns implied by tool patterns: the upstreams they grant anything on (`*` for `*`). */
export function resourcesOfToolPatterns(patterns: readonly string[]): string[] {
  const upstreams = new Set<string>();
  for (const pattern of patterns) {
    if (pattern === '*') return ['*'];
    const separator = pattern.indexOf('__');
    if (separator > 0) upstreams.add(`${pattern.slice(0, separator)}${UPSTREAM_WILDCARD}`);
  }
  return [...upstreams];
}

/**
 * Fills the omitted lists: tools default to everything, prompts follow the tool allow-list, resources
 * are those of the upstreams the tool allow-list grants anything on, deny-lists deny nothing.
 */
export function resolveAccessLists(lists: Partial<ResolvedAccessLists>): ResolvedAccessLists {
  const allowedTools = lists.allowedTools ?? ['*'];
  return {
    allowedTools,
    deniedTools: lists.deniedTools ?? [],
    allowedPrompts: lists.allowedPrompts ?? allowedTools,
    deniedPrompts: lists.deniedPrompts ?? [],
    allowedResources: lists.allowedResources ?? resourcesOfToolPatterns(allowedTools),
    deniedResources: lists.deniedResources ?? [],
  };
}
