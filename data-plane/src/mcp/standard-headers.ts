import { isPlainObject } from './json-rpc.ts';
import { decodeValue } from './param-headers.ts';

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

function mismatch(header: string, body: string): HeaderMismatch {
  return {
    message: `Bad Request: the request headers and body disagree: ${body}`,
    data: { mismatch: { header, body } },
  };
}

/** Strips RFC 9110 optional whitespace (SP / HTAB). */
export function stripOws(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** The rejection for a modern request whose standard headers are missing or disagree with its body, if any. */
export function checkStandardHeaders(
  headers: StandardHeaders,
  method: string,
  params: unknown,
  claimedVersion: string | undefined,
): HeaderMismatch | undefined {
  if (headers.protocolVersion === undefined) {
    return mismatch(
      '(missing)',
      claimedVersion === undefined
        ? 'the body carries a modern per-request envelope but the required MCP-Protocol-Version header is absent'
        : `the body envelope names protocol version ${claimedVersion} but the required MCP-Protocol-Version header ` +
            `is absent`,
    );
  }
  if (headers.method === undefined)
    return mismatch('(missing)', `the body names method ${method} but the required Mcp-Method header is absent`);
  const field = Object.hasOwn(MCP_NAME_SOURCE, method) ? MCP_NAME_SOURCE[method] : undefined;
  if (field === undefined) return undefined;
  const raw = isPlainObject(params) ? params[field] : undefined;
  const bodyValue = typeof raw === 'string' ? raw : undefined;
  if (headers.name === undefined) {
    if (bodyValue === undefined) return undefined;
    return mismatch(
      '(missing)',
      `the body carries params.${field}="${bodyValue}" but the required Mcp-Name header is absent`,
    );
  }
  const decoded = decodeValue(headers.name);
  if (decoded === undefined)
    return mismatch(headers.name, 'the Mcp-Name header carries an invalid Base64 sentinel value');
  if (bodyValue !== undefined && decoded !== bodyValue)
    return mismatch(
      headers.name,
      `the body carries params.${field}="${bodyValue}" but the Mcp-Name header names "${decoded}"`,
    );
  return undefined;
}
