import type { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';

/**
 * Parses `value` with `schema`; on failure throws BAD_USER_INPUT naming the first offending field
 * (as a dotted path under `root`, e.g. `input.url`) with the schema's message, which says the fix.
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = [root, ...(issue?.path ?? []).map(String)].join('.');
  const message = issue?.message ?? 'is invalid';
  throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `${field}: ${message}`, { field });
}

/** A BAD_USER_INPUT error for one field. */
export function badInput(field: string, message: string): PortcullisError {
  return new PortcullisError(ErrorCode.BAD_USER_INPUT, `${field}: ${message}`, { field });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks an id argument is a UUID (every id the control plane hands out is one). */
export function parseId(value: string, field: string): string {
  if (!UUID.test(value))
    throw badInput(field, `"${value}" is not an id; pass the id field of an object returned by this API`);
  return value.toLowerCase();
}

/** Whether `error` is Postgres' unique violation (23505), optionally of one constraint. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const driverError =
    (error as { driverError?: { code?: string; constraint?: string } } | null)?.driverError ??
    (error as { code?: string; constraint?: string } | null);
  return driverError?.code === '23505' && (constraint === undefined || driverError.constraint === constraint);
}
