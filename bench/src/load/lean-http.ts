import http from 'node:http';
import type { Driver } from './driver.ts';
import { CLIENT_INFO } from './driver.ts';
import { checkResult, requestPrefix } from './operation.ts';
import type { Operation } from './protocol.ts';
import type { CallOutcome } from './run-calls.ts';

/**
 * The lean load generator over Streamable HTTP: raw keep-alive `node:http` POSTs on one initialized
 * session, request bodies built by string concatenation, replies parsed only as far as needed to find
 * the JSON-RPC response (a JSON body, or the `data:` lines of an SSE body).
 */

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export async function openLeanHttp(
  url: string,
  extraHeaders: Record<string, string>,
  concurrency: number,
  operation: Operation,
  protocolVersion: string,
): Promise<Driver> {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const baseHeaders: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...extraHeaders,
  };

  const post = (body: string, headers: Record<string, string>): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname + target.search,
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const init = await post(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion, capabilities: {}, clientInfo: CLIENT_INFO },
    }),
    baseHeaders,
  );
  const initReply = findResponse(init, 0);
  if (init.status !== 200 || !initReply || !('result' in initReply)) {
    throw new Error(`initialize failed: HTTP ${init.status}: ${init.body.slice(0, 300)}`);
  }
  const negotiated = String((initReply.result as { protocolVersion?: string }).protocolVersion ?? protocolVersion);
  const headers: Record<string, string> = { ...baseHeaders, 'mcp-protocol-version': negotiated };
  const sessionId = init.headers['mcp-session-id'];
  if (typeof sessionId === 'string') headers['mcp-session-id'] = sessionId;
  const initialized = await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers);
  if (initialized.status >= 300)
    throw new Error(`notifications/initialized: HTTP ${initialized.status}: ${initialized.body.slice(0, 300)}`);

  const prefix = requestPrefix(operation);
  return {
    protocolVersion: negotiated,
    async call(seq: number): Promise<CallOutcome> {
      const id = seq + 1;
      const reply = await post(`${prefix + id}}`, headers);
      if (reply.status !== 200) return { ok: false, error: `HTTP ${reply.status}: ${reply.body.slice(0, 200)}` };
      const response = findResponse(reply, id);
      if (!response) return { ok: false, error: `no response for id ${id}: ${reply.body.slice(0, 200)}` };
      if ('error' in response)
        return { ok: false, error: `JSON-RPC error: ${JSON.stringify(response.error).slice(0, 200)}` };
      return checkResult(operation, response.result);
    },
    async close(): Promise<void> {
      if (typeof sessionId === 'string') {
        await new Promise<void>((done) => {
          const req = http.request(
            { agent, host: target.hostname, port: target.port, path: target.pathname, method: 'DELETE', headers },
            (res) => {
              res.resume();
              res.on('end', done);
            },
          );
          req.on('error', () => done());
          req.setTimeout(1_000, () => req.destroy());
          req.end();
        });
      }
      agent.destroy();
    },
  };
}

type JsonRpcMessage = { id?: unknown; result?: unknown; error?: unknown };

/** The JSON-RPC response with `id` in a JSON or SSE reply body. */
function findResponse(reply: Reply, id: number): JsonRpcMessage | undefined {
  const type = String(reply.headers['content-type'] ?? '');
  const candidates: string[] = [];
  if (type.includes('text/event-stream')) {
    // SSE: events separated by blank lines; a data field may span several `data:` lines.
    for (const event of reply.body.split(/\r?\n\r?\n/)) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
        .join('\n');
      if (data.trim()) candidates.push(data);
    }
  } else {
    candidates.push(reply.body);
  }
  for (const text of candidates) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      continue;
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
      if (message && typeof message === 'object' && (message as JsonRpcMessage).id === id)
        return message as JsonRpcMessage;
    }
  }
  return undefined;
}
