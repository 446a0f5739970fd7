import { In, type FindOptionsWhere, type Repository, type SelectQueryBuilder } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { badInput, parseId } from './validation.ts';

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

/** How a list is ordered for keyset paging: by one column, then by id. */
export interface KeysetOrder {
  /** The query's alias for the table. */
  readonly alias: string;
  /** The entity property to order by, and its column and table as SQL names. */
  readonly property: string;
  readonly column: string;
  readonly table: string;
  /** What a row is, for the error when the cursor row is gone ("team", "virtual key"). */
  readonly what: string;
}

/**
 * One page of a list in `order`: at most `page.first` rows after the row whose id is `page.after`. The cursor row's
 * values are compared in SQL (timestamps there have microseconds, a JavaScript Date only milliseconds). `where` narrows
 * the list (an `andWhere` condition on the alias).
 */
export async function keysetPage<T extends { id: string }>(
  repository: Repository<T>,
  order: KeysetOrder,
  page: Page,
  where?: (query: SelectQueryBuilder<T>) => void,
): Promise<T[]> {
  const { alias: a, property, column, table, what } = order;
  const query = repository
    .createQueryBuilder(a)
    .where('TRUE')
    .orderBy(`${a}.${property}`, 'ASC')
    .addOrderBy(`${a}.id`, 'ASC')
    .take(page.first);
  where?.(query);
  if (page.after !== null) {
    const after = parseId(page.after, 'after');
    if (!(await repository.existsBy({ id: after } as FindOptionsWhere<T>))) throw unknownCursor(what, after);
    query.andWhere(
      `(${a}.${column}, ${a}.id) > (SELECT cursor_row.${column}, cursor_row.id FROM ${table} cursor_row ` +
        'WHERE cursor_row.id = :after)',
      { after },
    );
  }
  return query.getMany();
}

/** The rows with these ids, by id (one query; ids with no row are absent). */
export async function rowsById<T extends { id: string }>(
  repository: Repository<T>,
  ids: readonly string[],
): Promise<Map<string, T>> {
  if (ids.length === 0) return new Map();
  const rows = await repository.findBy({ id: In([...ids]) } as FindOptionsWhere<T>);
  return new Map(rows.map((row) => [row.id, row]));
}

/** Tool.changes: the newest 100 of a tool's history unless `first` says otherwise (at most MAX_PAGE_SIZE). */
export const DEFAULT_CHANGES = 100;

/** A `first` argument of a nested list: `fallback` when omitted, else 1..MAX_PAGE_SIZE. */
export function parseFirst(first: number | null | undefined, fallback: number): number {
  return first == null ? fallback : parsePage({ first }).first;
}
