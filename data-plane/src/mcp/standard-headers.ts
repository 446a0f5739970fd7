import { isPlainObject } from './json-rpc.ts';

/**
 * The 2026-07-28 standard request headers (SEP-2243) as the SDK's HTTP entry checks them after
 * classifying a request as modern (the SDK does not export this rung, so it is ported here with
 * the SDK's wording; the classifier itself, which the SDK does export, already checks the
 * version and method headers against the body when they are present).
 */
export interface StandardHeaders {
  readonly protocolVersion: string | undefined;
  readonly method: string | undefined;
  readonly name: string | undefined;
}

export interface HeaderMismatch {
  readonly message: string;
  readonly data: { mismatch: { header: string; body: string } };
}

/** Which body field the `Mcp-Name` header mirrors, per method. */
const MCP_NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

const BASE64_SENTINEL_PREFIX = '=?base64?';
const BASE64_SENTINEL_SUFFIX = '?=';
const BASE64_CANONICAL = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function mismatch(header: string, body: string): HeaderMismatch {
  return { message: `Bad Request: the request headers and body disagree: ${body}`, data: { mismatch: { header, body } } };
}

/** Strips RFC 9110 optional whitespace (SP / HTAB). */
export function stripOws(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** A header value as sent, or the `=?base64?…?=` sentinel decoded; undefined when the sentinel is invalid. */
function decodeHeaderValue(value: string): string | undefined {
  if (!(value.startsWith(BASE64_SENTINEL_PREFIX) && value.endsWith(BASE64_SENTINEL_SUFFIX))) return value;
  const b64 = value.slice(BASE64_SENTINEL_PREFIX.length, value.length - BASE64_SENTINEL_SUFFIX.length);
  if (!BASE64_CANONICAL.test(b64)) return undefined;
  try {
    return utf8.decode(Buffer.from(b64, 'base64'));
  } catch {
    return undefined;
  }
}

/** The rejection for a modern request whose standard headers are missing or disagree with its body, if any. */
export function checkStandardHeaders(headers: StandardHeaders, method: string, params: unknown, claimedVersion: string | undefined): HeaderMismatch | undefined {
  if (headers.protocolVersion === undefined) {
    return mismatch(
      '(missing)',
      claimedVersion === undefined
        ? 'the body carries a modern per-request envelope but the required MCP-Protocol-Version header is absent'
        : `the body envelope names protocol version ${claimedVersion} but the required MCP-Protocol-Version header is absent`,
    );
  }
  if (headers.method === undefined) return mismatch('(missing)', `the body names method ${method} but the required Mcp-Method header is absent`);
  const field = Object.hasOwn(MCP_NAME_SOURCE, method) ? MCP_NAME_SOURCE[method] : undefined;
  if (field === undefined) return undefined;
  const raw = isPlainObject(params) ? params[field] : undefined;
  const bodyValue = typeof raw === 'string' ? raw : undefined;
  if (headers.name === undefined) {
    if (bodyValue === undefined) return undefined;
    return mismatch('(missing)', `the body carries params.${field}="${bodyValue}" but the required Mcp-Name header is absent`);
  }
  const decoded = decodeHeaderValue(headers.name);
  if (decoded === undefined) return mismatch(headers.name, 'the Mcp-Name header carries an invalid Base64 sentinel value');
  if (bodyValue !== undefined && decoded !== bodyValue) return mismatch(headers.name, `the body carries params.${field}="${bodyValue}" but the Mcp-Name header names "${decoded}"`);
  return undefined;
}
