import { isPlainObject } from './json-rpc.ts';

/**
 * SEP-2243 custom request headers (2026-07-28): a tool's `inputSchema` may mark primitive
 * properties with `x-mcp-header: <Name>`, and a `tools/call` then carries each such argument in an
 * `Mcp-Param-<Name>` header too, so that HTTP infrastructure can route on it. The gateway is the
 * server its agents talk to (it checks their headers against the body, as the SDK's HTTP entry
 * does) and the client of its upstreams (it sends the headers the upstream's tool declares).
 * Ported from the SDK, which does not export these rungs; same rules, same wording.
 */

export interface ParamHeaderDeclaration {
  /** The property's path under `arguments`, through `properties` keys only. */
  readonly path: readonly string[];
  readonly headerName: string;
  readonly type: string | undefined;
}

export interface ParamHeaderMismatch {
  readonly message: string;
  readonly data: { mismatch: { header: string; body: string } };
}

export const MCP_PARAM_HEADER_PREFIX = 'Mcp-Param-';
const X_MCP_HEADER_KEY = 'x-mcp-header';
/** RFC 9110 §5.1 `token`. */
const RFC9110_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BASE64_SENTINEL_PREFIX = '=?base64?';
const BASE64_SENTINEL_SUFFIX = '?=';
const BASE64_CANONICAL = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const CANONICAL_DECIMAL = /^-?\d+(\.\d+)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Scans are kept per schema object: catalogs are immutable, so each tool is scanned once. */
const scans = new WeakMap<object, readonly ParamHeaderDeclaration[]>();

/** The `x-mcp-header` declarations of a tool's input schema (properties chains only; malformed names are skipped). */
export function paramHeaderDeclarations(inputSchema: unknown): readonly ParamHeaderDeclaration[] {
  if (!isPlainObject(inputSchema)) return [];
  const cached = scans.get(inputSchema);
  if (cached !== undefined) return cached;
  const found: ParamHeaderDeclaration[] = [];
  const visit = (schema: Record<string, unknown>, path: readonly string[]): void => {
    const name = schema[X_MCP_HEADER_KEY];
    if (path.length > 0 && typeof name === 'string' && RFC9110_TOKEN.test(name)) {
      found.push({ path, headerName: name, type: typeof schema['type'] === 'string' ? schema['type'] : undefined });
    }
    const properties = schema['properties'];
    if (!isPlainObject(properties)) return;
    for (const [key, child] of Object.entries(properties)) if (isPlainObject(child)) visit(child, [...path, key]);
  };
  visit(inputSchema, []);
  scans.set(inputSchema, found);
  return found;
}

/** The `Mcp-Param-*` headers a client sends for these arguments (absent and non-primitive values are omitted). */
export function paramHeaders(declarations: readonly ParamHeaderDeclaration[], args: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const declaration of declarations) {
    const value = primitiveString(valueAt(args, declaration.path));
    if (value !== undefined) headers[`${MCP_PARAM_HEADER_PREFIX}${declaration.headerName}`] = encodeValue(value);
  }
  return headers;
}

/**
 * The rejection (HTTP 400, -32020) for a call whose `Mcp-Param-*` headers disagree with its
 * arguments: a value in the body needs its header, decoding (Base64 sentinel included) to the same
 * value; a header without a body value is ignored. `header(name)` reads a request header, OWS stripped.
 */
export function checkParamHeaders(
  declarations: readonly ParamHeaderDeclaration[],
  args: unknown,
  header: (name: string) => string | undefined,
): ParamHeaderMismatch | undefined {
  for (const declaration of declarations) {
    const headerName = `${MCP_PARAM_HEADER_PREFIX}${declaration.headerName}`;
    const bodyRaw = valueAt(args, declaration.path);
    const bodyString = primitiveString(bodyRaw);
    if (bodyString === undefined) continue;
    const where = declaration.path.join('.');
    const sent = header(headerName);
    if (sent === undefined)
      return mismatch(
        headerName,
        `the body carries ${where}=${JSON.stringify(bodyRaw)} but the ${headerName} header is absent`,
      );
    const decoded = decodeValue(sent);
    if (decoded === undefined)
      return mismatch(headerName, `the ${headerName} header carries an invalid Base64 sentinel value`);
    const numeric =
      (declaration.type === 'integer' || declaration.type === 'number') &&
      typeof bodyRaw === 'number' &&
      CANONICAL_DECIMAL.test(decoded);
    if (numeric ? Number(decoded) !== bodyRaw : decoded !== bodyString) {
      return mismatch(
        headerName,
        `the ${headerName} header decodes to ${JSON.stringify(decoded)} but the body carries ` +
          `${where}=${JSON.stringify(bodyRaw)}`,
      );
    }
  }
  return undefined;
}

function mismatch(header: string, body: string): ParamHeaderMismatch {
  return {
    message: `Bad Request: the request headers and body disagree: ${body}`,
    data: { mismatch: { header, body } },
  };
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (!isPlainObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

function primitiveString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value !== 'number' || !Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value)))
    return undefined;
  return String(value);
}

/**
 * Plain when the value is a safe ASCII field value; else the `=?base64?…?=` sentinel (also for values that look like
 * one).
 */
function encodeValue(value: string): string {
  const plain =
    value.length > 0 &&
    value === value.trim() &&
    !(value.startsWith(BASE64_SENTINEL_PREFIX) && value.endsWith(BASE64_SENTINEL_SUFFIX)) &&
    /^[\t\x20-\x7e]*$/.test(value);
  return plain
    ? value
    : `${BASE64_SENTINEL_PREFIX}${Buffer.from(value, 'utf8').toString('base64')}${BASE64_SENTINEL_SUFFIX}`;
}

/**
 * A header value as sent, or the sentinel's payload decoded; undefined when the sentinel's Base64 or UTF-8 is invalid.
 */
export function decodeValue(value: string): string | undefined {
  if (!(value.startsWith(BASE64_SENTINEL_PREFIX) && value.endsWith(BASE64_SENTINEL_SUFFIX))) return value;
  const b64 = value.slice(BASE64_SENTINEL_PREFIX.length, value.length - BASE64_SENTINEL_SUFFIX.length);
  if (!BASE64_CANONICAL.test(b64)) return undefined;
  try {
    return utf8.decode(Buffer.from(b64, 'base64'));
  } catch {
    return undefined;
  }
}
