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
 * The JSON body of a POST: checks the content type (415), reads within `maxBytes` (413), parses (400
 * parse error). Answers those refusals itself and resolves undefined; otherwise with the parsed body.
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
  try {
    return { body: JSON.parse(read.text) as unknown };
  } catch {
    sendRpcError(res, 400, RpcErrorCode.ParseError, 'Parse error: Invalid JSON');
    return undefined;
  }
}
