import { z } from 'zod';
import { resolveAccessLists, UPSTREAM_WILDCARD } from '../../../common/src/index.ts';
import type { AccessLists, RateLimits } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AccessListsJson, RateLimitsJson } from '../db/entities.ts';
import { UPSTREAM_NAME_PATTERN } from './upstreams.ts';

const TOOL_NAME = /^[A-Za-z0-9_-]+$/;
const MAX_EXPOSED_NAME = 64;

/** Why `pattern` is not a valid allow-list entry, or undefined when it is. */
export function allowedToolProblem(pattern: string): string | undefined {
  if (pattern === '*') return undefined;
  const separator = pattern.indexOf('__');
  const fix = 'use "*", "<upstream>__*" or "<upstream>__<tool>" (letters, digits, "_" and "-")';
  if (separator <= 0) return `"${pattern}" has no "<upstream>__" prefix; ${fix}`;
  const upstream = pattern.slice(0, separator);
  const tool = pattern.slice(separator + 2);
  if (!UPSTREAM_NAME_PATTERN.test(upstream))
    return `"${upstream}" in "${pattern}" is not a valid upstream name; ${fix}`;
  if (tool === '*') return undefined;
  if (!TOOL_NAME.test(tool)) return `"${pattern}" is not a valid tool name or wildcard; ${fix}`;
  if (pattern.length > MAX_EXPOSED_NAME)
    return `"${pattern}" is longer than ${MAX_EXPOSED_NAME} characters, which no exposed tool name can be`;
  return undefined;
}

const MAX_PATTERNS = 1000;
const MAX_URI_PREFIX = 2048;
/** A per-minute rate above this is surely a typo (100 million a minute is more than any node serves). */
export const MAX_PER_MINUTE = 100_000_000;

/** Why `pattern` is not a valid resource pattern, or undefined when it is. */
export function resourcePatternProblem(pattern: string): string | undefined {
  const fix = 'use "*", "<upstream>__*" for a whole upstream, or a URI prefix such as "file:///docs/"';
  if (pattern === '*') return undefined;
  if (pattern.includes(':')) {
    return pattern.length > MAX_URI_PREFIX
      ? `"${pattern.slice(0, 40)}…" is longer than ${MAX_URI_PREFIX} characters`
      : undefined;
  }
  if (pattern.endsWith(UPSTREAM_WILDCARD) && UPSTREAM_NAME_PATTERN.test(pattern.slice(0, -UPSTREAM_WILDCARD.length)))
    return undefined;
  return `"${pattern}" is neither an upstream wildcard nor a URI prefix (no ":"); ${fix}`;
}

function patternList(problem: (pattern: string) => string | undefined, what: string) {
  return z
    .array(
      z.string().superRefine((pattern, ctx) => {
        const found = problem(pattern);
        if (found) ctx.addIssue({ code: 'custom', message: found });
      }),
    )
    .max(MAX_PATTERNS, `has more than ${MAX_PATTERNS} ${what} patterns; use "<upstream>__*" wildcards`)
    .transform((patterns) => [...new Set(patterns)]);
}

const toolPatterns = patternList(allowedToolProblem, 'tool');
const promptPatterns = patternList(allowedToolProblem, 'prompt');
const resourcePatterns = patternList(resourcePatternProblem, 'resource');

/**
 * The access-list fields of key and team inputs. Each may be omitted (key creation: the default;
 * update: unchanged) or null (update: back to the default).
 */
export const accessListFields = {
  allowedTools: toolPatterns.nullish(),
  deniedTools: toolPatterns.nullish(),
  allowedPrompts: promptPatterns.nullish(),
  deniedPrompts: promptPatterns.nullish(),
  allowedResources: resourcePatterns.nullish(),
  deniedResources: resourcePatterns.nullish(),
};

export const ACCESS_LIST_NAMES = Object.keys(accessListFields) as Array<keyof AccessListsJson>;

/** `stored` with the lists `input` names replaced (a null one removed: back to its default). */
export function mergeAccessLists(
  stored: AccessListsJson,
  input: Partial<Record<keyof AccessListsJson, string[] | null | undefined>>,
): AccessListsJson {
  const merged: AccessListsJson = { ...stored };
  for (const name of ACCESS_LIST_NAMES) {
    const value = input[name];
    if (value === null) delete merged[name];
    else if (value !== undefined) merged[name] = value;
  }
  return merged;
}

const perMinute = z
  .number()
  .int('must be a whole number')
  .min(0, 'must not be negative; 0 or null means no limit')
  .max(MAX_PER_MINUTE, `is above ${MAX_PER_MINUTE.toLocaleString('en')} a minute; 0 or null means no limit`)
  .nullish();

/** RateLimitsInput: each limit per minute, across every node; 0 or null = none. */
export const rateLimitsInput = z
  .object({ requestsPerMinute: perMinute, toolCallsPerMinute: perMinute, burst: perMinute })
  .strict();

/** The stored form of a RateLimitsInput (zeros and nulls dropped). */
export function storedRateLimits(input: z.output<typeof rateLimitsInput>): RateLimitsJson {
  const stored: RateLimitsJson = {};
  if (input.requestsPerMinute) stored.requestsPerMinute = input.requestsPerMinute;
  if (input.toolCallsPerMinute) stored.toolCallsPerMinute = input.toolCallsPerMinute;
  if (input.burst) stored.burst = input.burst;
  return stored;
}

/** Stored lists as read back from JSON: checked, since a snapshot is built from them. */
export const storedAccessLists = z
  .object(Object.fromEntries(ACCESS_LIST_NAMES.map((name) => [name, z.array(z.string()).optional()])))
  .loose();
export const storedRateLimitsSchema = z
  .object({
    requestsPerMinute: z.number().int().nonnegative().optional(),
    toolCallsPerMinute: z.number().int().nonnegative().optional(),
    burst: z.number().int().nonnegative().optional(),
  })
  .loose();

/** What nodes are sent for stored lists: every list resolved (see resolveAccessLists). */
export function accessListsConfig(stored: AccessListsJson): AccessLists {
  return resolveAccessLists(stored);
}

export function rateLimitsConfig(stored: RateLimitsJson): RateLimits | undefined {
  if (!stored.requestsPerMinute && !stored.toolCallsPerMinute) return undefined;
  return {
    requestsPerMinute: stored.requestsPerMinute ?? 0,
    toolCallsPerMinute: stored.toolCallsPerMinute ?? 0,
    burst: stored.burst ?? 0,
  };
}
