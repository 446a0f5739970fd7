import type { CallOutcome } from './run-calls.ts';
import type { Operation } from './protocol.ts';

/** The request body (up to the id) and the result check of an operation, shared by the lean drivers. */

export function requestPrefix(operation: Operation): string {
  const params =
    operation.method === 'tools/call'
      ? `{"name":${JSON.stringify(operation.tool)},"arguments":{"message":"hello"}}`
      : '{}';
  return `{"jsonrpc":"2.0","method":"${operation.method}","params":${params},"id":`;
}

export function checkResult(operation: Operation, result: unknown): CallOutcome {
  if (operation.method === 'tools/call') {
    if ((result as { isError?: boolean } | undefined)?.isError)
      return { ok: false, error: `tool error: ${JSON.stringify(result).slice(0, 200)}` };
    return { ok: true };
  }
  const tools = (result as { tools?: unknown[] } | undefined)?.tools;
  if (!Array.isArray(tools)) return { ok: false, error: 'tools/list result has no tools' };
  if (tools.length !== operation.expectTools)
    return { ok: false, error: `tools/list returned ${tools.length} tools, expected ${operation.expectTools}` };
  return { ok: true };
}
