import type { IncomingMessage, ServerResponse } from 'node:http';
import { isJsonContentType } from '@modelcontextprotocol/server';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { sendRpcError } from './respond.ts';

export type BodyRead =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly reason: 'too-large' | 'aborted' };

/**
 * Reads a request body up to `maxBytes`, refusing early on a declared Content-Length over the
 * limit and stopping as soon as the streamed size passes it.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyRead> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.resolve({ ok: false, reason: 'too-large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        req.pause();
        resolve({ ok: false, reason: 'too-large' });
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () =>
      resolve({
        ok: true,
        text: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, size).toString('utf8'),
      }),
    );
    req.once('error', () => resolve({ ok: false, reason: 'aborted' }));
  });
}

/**
 * JSON nested deeper than this is refused at the edge, before any step runs: serializing it again (for the
 * upstream, the audit record, the answer) would overflow the stack. MCP arguments nest a few levels; 128 is
 * serde_json's default limit.
 */
export const MAX_JSON_DEPTH = 128;

export const TOO_DEEP_MESSAGE = `JSON nested more than ${MAX_JSON_DEPTH} levels deep; send flatter arguments`;

export type ParsedBody =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly tooDeep: boolean };

/** A request body's JSON, refused (`tooDeep`) when nested deeper than MAX_JSON_DEPTH. */
export function parseRequestJson(text: string): ParsedBody {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, tooDeep: false };
  }
  // Each level takes two characters at least ([ and ]): a shorter text cannot be too deep, and is not walked.
  if (text.length > 2 * MAX_JSON_DEPTH && deeperThan(value, MAX_JSON_DEPTH)) return { ok: false, tooDeep: true };
  return { ok: true, value };
}

/**
 * Whether `value` nests arrays and objects more than `max` levels deep. Recursive, but never more than `max + 1`
 * calls deep however deep the value, and without allocating (this runs on the request path).
 */
export function deeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max === 0) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (deeperThan(item, max - 1)) return true;
    return false;
  }
  const object = value as Record<string, unknown>;
  for (const key in object) if (deeperThan(object[key], max - 1)) return true;
  return false;
}

/**
 * The JSON body of a POST: checks the content type (415), reads within `maxBytes` (413), parses (400
 * parse error, or invalid request when nested too deeply). Answers those refusals itself and resolves
 * undefined; otherwise with the parsed body.
 */
export async function readJsonBody(
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
): Promise<{ readonly body: unknown } | undefined> {
  if (!isJsonContentType(req.headers['content-type'] ?? null)) {
    sendRpcError(
      res,
      415,
      RpcErrorCode.TransportError,
      'Unsupported Media Type: Content-Type must be application/json',
    );
    return undefined;
  }
  const read = await readBody(req, maxBytes);
  if (!read.ok) {
    if (read.reason === 'too-large')
      sendRpcError(
        res,
        413,
        RpcErrorCode.TransportError,
        `Payload Too Large: Request body must not exceed ${maxBytes} bytes`,
        { headers: { connection: 'close' } },
      );
    else res.destroy();
    return undefined;
  }
  const parsed = parseRequestJson(read.text);
  if (parsed.ok) return { body: parsed.value };
  if (parsed.tooDeep) sendRpcError(res, 400, RpcErrorCode.InvalidRequest, `Invalid Request: ${TOO_DEEP_MESSAGE}`);
  else sendRpcError(res, 400, RpcErrorCode.ParseError, 'Parse error: Invalid JSON');
  return undefined;
}
