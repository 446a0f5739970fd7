import { PROTOCOL_VERSION_META_KEY, RELATED_TASK_META_KEY } from '@modelcontextprotocol/server';

/**
 * Structural checks for the common, well-formed cases of a few SDK schemas, for the per-request hot
 * path where a zod parse (and, on the SDK's classifier, the failed parses before the one that
 * matches) costs more than the call's own work. Each accepts only a subset of what its SDK schema
 * accepts; callers fall back to the schema for everything else, so the SDK's schemas stay the
 * definition of a valid message (`sdk-shapes.test.ts` runs both over a corpus).
 */

export function isObjectValue(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The SDK's `RequestIdSchema` and `ProgressTokenSchema`: a string or a safe integer (zod 4's `int()`). */
export function isRequestId(value: unknown): boolean {
  return typeof value === 'string' || Number.isSafeInteger(value);
}

/**
 * A `params._meta` the SDK's `RequestMetaSchema` accepts and that carries no rule of its own: absent,
 * or an object with a well-typed progress token (if any), without the 2026-07-28 envelope claim
 * and without the related-task key.
 */
export function isPlainRequestMeta(meta: unknown): boolean {
  if (meta === undefined) return true;
  if (!isObjectValue(meta) || PROTOCOL_VERSION_META_KEY in meta || RELATED_TASK_META_KEY in meta) return false;
  const token = meta['progressToken'];
  return token === undefined || isRequestId(token);
}

/**
 * `tools/call` params the SDK's `CallToolRequestParamsSchema` accepts: a string name, object arguments, a plain
 * `_meta`, no task.
 */
export function isPlainCallToolParams(params: unknown): boolean {
  if (!isObjectValue(params) || typeof params['name'] !== 'string' || params['task'] !== undefined) return false;
  const args = params['arguments'];
  return (args === undefined || isObjectValue(args)) && isPlainRequestMeta(params['_meta']);
}
