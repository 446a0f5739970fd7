import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { badInput } from './validation.ts';

/**
 * The most rows one page of a top-level list returns, and its default: a list of 100,000 keys
 * must not come back in one answer. Documented in schema.graphql; automation pages with `after`.
 */
export const MAX_PAGE_SIZE = 1000;

/** One page of a list: at most `first` rows after the row whose id is `after` (in the list's order). */
export interface Page {
  readonly first: number;
  readonly after: string | null;
}

const pageSchema = z.object({
  first: z
    .number()
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(MAX_PAGE_SIZE, `must be at most ${MAX_PAGE_SIZE}; fetch further pages with after: <id of the last row>`)
    .nullish(),
  after: z
    .string()
    .min(1, 'is empty; give the id of the last row of the previous page, or omit it')
    .max(256, 'is not an id')
    .nullish(),
});

/** Reads `first`/`after` arguments (both optional); errors name the argument and the fix. */
export function parsePage(args: unknown): Page {
  const parsed = pageSchema.safeParse(args ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badInput(String(issue?.path[0] ?? 'first'), issue?.message ?? 'is invalid');
  }
  const page = parsed.data;
  return { first: page.first ?? MAX_PAGE_SIZE, after: page.after ?? null };
}

/** The cursor row is gone (deleted since the previous page): say so rather than answer an empty page. */
export function unknownCursor(what: string, after: string): PortcullisError {
  return new PortcullisError(
    ErrorCode.NOT_FOUND,
    `after: no ${what} has id "${after}" (deleted since the previous page?); start again without after`,
    {
      field: 'after',
    },
  );
}

/** Tool.changes: the newest 100 of a tool's history unless `first` says otherwise (at most MAX_PAGE_SIZE). */
export const DEFAULT_CHANGES = 100;

/** A `first` argument of a nested list: `fallback` when omitted, else 1..MAX_PAGE_SIZE. */
export function parseFirst(first: number | null | undefined, fallback: number): number {
  return first == null ? fallback : parsePage({ first }).first;
}
