import { createHash } from 'node:crypto';

/** The fields of a tool's definition that steer a model: what pinning compares. */
export const PINNED_TOOL_FIELDS = [
  'name',
  'title',
  'description',
  'inputSchema',
  'outputSchema',
  'annotations',
] as const;

/** JSON with object keys sorted at every depth (arrays keep their order), no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const entries = Object.keys(value)
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

/**
 * Hex SHA-256 of the canonical JSON of a tool's model-steering fields (name, title, description,
 * inputSchema, outputSchema, annotations; absent fields left out), with the upstream's own name.
 */
export function definitionSha256(tool: Readonly<Record<string, unknown>>): string {
  const picked: Record<string, unknown> = {};
  for (const field of PINNED_TOOL_FIELDS) if (tool[field] !== undefined) picked[field] = tool[field];
  return createHash('sha256').update(canonicalJson(picked)).digest('hex');
}
