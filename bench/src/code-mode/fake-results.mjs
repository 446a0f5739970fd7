import { createHash } from 'node:crypto';

/**
 * The recorded-catalog upstream's answers: deterministic, computable from the call alone, so a task's
 * expected answer can be checked. For a call of `<server>/<tool>` with `args`:
 *   digest = sha256(`<server>/<tool>/<args as JSON with keys sorted>`) in hex
 *   id = digest[0..8), n = parseInt(digest[8..12), 16) % 1000
 * A tool without an `outputSchema` answers one text item, `{"id":…,"n":…}`. A tool with one answers a value
 * shaped by it (every property filled: strings are `id` (or a fixed value of their `format`: uri, date-time,
 * …), numbers `n`, booleans `n` is even, arrays one item, enums their first value, a `$ref` followed) as
 * `structuredContent` and as JSON text. A call missing a required argument answers `isError` naming it, as a
 * real server would refuse it.
 */

/** JSON with object keys sorted, so the same arguments give the same digest whatever their order. */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function digestOf(server, tool, args) {
  const digest = createHash('sha256')
    .update(`${server}/${tool}/${canonicalJson(args ?? {})}`)
    .digest('hex');
  return { id: digest.slice(0, 8), n: Number.parseInt(digest.slice(8, 12), 16) % 1000 };
}

const MAX_DEPTH = 24;

/** Strings of the JSON Schema formats the recorded output schemas use (a validating client checks them). */
const FORMATS = {
  uri: (id) => `https://example.com/${id}`,
  url: (id) => `https://example.com/${id}`,
  email: (id) => `${id}@example.com`,
  'date-time': () => '2026-01-01T00:00:00Z',
  date: () => '2026-01-01',
  uuid: (id) => `${id}-0000-4000-8000-000000000000`,
};

function resolveRef(root, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return undefined;
  let node = root;
  for (const part of ref.slice(2).split('/')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return node;
}

/** A value of the shape `schema` describes, filled from `id` and `n`. */
export function valueFromSchema(schema, root, id, n, depth = 0) {
  if (schema === null || typeof schema !== 'object' || depth > MAX_DEPTH) return id;
  if (schema.$ref !== undefined) return valueFromSchema(resolveRef(root, schema.$ref), root, id, n, depth + 1);
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const union = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(union) && union.length > 0) {
    const first = union.find((s) => s?.type !== 'null') ?? union[0];
    return valueFromSchema(first, root, id, n, depth + 1);
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0) {
    return valueFromSchema(Object.assign({}, ...schema.allOf), root, id, n, depth + 1);
  }
  const type = Array.isArray(schema.type) ? (schema.type.find((t) => t !== 'null') ?? 'null') : schema.type;
  if (type === 'object' || (type === undefined && schema.properties !== undefined)) {
    const properties = schema.properties ?? {};
    const keys = Object.keys(properties);
    if (keys.length === 0) {
      // A map (`additionalProperties` a schema): one entry, its key shaped by `propertyNames` when given.
      const values = schema.additionalProperties;
      if (values === null || typeof values !== 'object') return { id, n };
      const key =
        schema.propertyNames === undefined ? id : valueFromSchema(schema.propertyNames, root, id, n, depth + 1);
      return { [String(key)]: valueFromSchema(values, root, id, n, depth + 1) };
    }
    return Object.fromEntries(keys.map((k) => [k, valueFromSchema(properties[k], root, id, n, depth + 1)]));
  }
  if (type === 'array') {
    // A tuple (`prefixItems`) gets one value per position; a list, one item.
    if (Array.isArray(schema.prefixItems))
      return schema.prefixItems.map((s) => valueFromSchema(s, root, id, n, depth + 1));
    return [valueFromSchema(schema.items ?? {}, root, id, n, depth + 1)];
  }
  if (type === 'integer' || type === 'number') return n;
  if (type === 'string' || type === undefined) {
    const formatted = FORMATS[schema.format];
    if (formatted !== undefined) return formatted(id);
  }
  if (type === 'boolean') return n % 2 === 0;
  if (type === 'null') return null;
  return id;
}

/** The result of calling `tool` (a recorded definition) of `server` with `args`. */
export function fakeResult(server, tool, args) {
  const required = Array.isArray(tool.inputSchema?.required) ? tool.inputSchema.required : [];
  const missing = required.filter((name) => args?.[name] === undefined);
  if (missing.length > 0) {
    return {
      content: [{ type: 'text', text: `${tool.name}: missing required argument ${missing.join(', ')}` }],
      isError: true,
    };
  }
  const { id, n } = digestOf(server, tool.name, args);
  if (tool.outputSchema !== undefined) {
    const value = valueFromSchema(tool.outputSchema, tool.outputSchema, id, n);
    return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
  }
  return { content: [{ type: 'text', text: JSON.stringify({ id, n }) }] };
}
