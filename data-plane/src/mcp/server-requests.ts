import { randomBytes } from 'node:crypto';
import { UpstreamRpcError } from '../upstream/tool-router.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import { isPlainObject } from './json-rpc.ts';
import { RpcErrorCode } from './protocol.ts';

interface Pending {
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
}

/**
 * Server-to-client requests (elicitation, sampling, roots) this node sent to 2025-era agents and
 * awaits answers to. The JSON-RPC id names this node (`pcn-<node tag>-<n>`), so a reply that lands
 * on another node can be recognised as foreign there; relaying it to the issuing node is a
 * follow-up (today it is answered 202 and dropped, and the upstream's request times out).
 */
export class ServerRequests {
  private readonly prefix: string;
  private next = 0;
  private readonly pending = new Map<string, Pending>();

  constructor(nodeTag: string = randomBytes(6).toString('base64url')) {
    this.prefix = `pcn-${nodeTag}-`;
  }

  /** Sends `message` through `write` and resolves with the agent's result; rejects on its error or when `signal` aborts. */
  send(write: (json: string) => void, message: RpcMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    if (signal?.aborted) return Promise.reject(new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled'));
    this.next += 1;
    const id = `${this.prefix}${this.next}`;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled: the agent went away'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (result) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(result);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
      write(JSON.stringify(message.params === undefined ? { jsonrpc: '2.0', id, method: message.method } : { jsonrpc: '2.0', id, method: message.method, params: message.params }));
    });
  }

  /** Settles the request a posted JSON-RPC response answers; false when it is not one of this node's. */
  settle(response: unknown): boolean {
    if (!isPlainObject(response)) return false;
    const id = response['id'];
    if (typeof id !== 'string') return false;
    const pending = this.pending.get(id);
    if (pending === undefined) return false;
    this.pending.delete(id);
    const error = response['error'];
    if (isPlainObject(error)) pending.reject(new UpstreamRpcError(typeof error['code'] === 'number' ? error['code'] : RpcErrorCode.InternalError, String(error['message'] ?? 'error'), error['data']));
    else pending.resolve(isPlainObject(response['result']) ? response['result'] : {});
    return true;
  }

  /** Whether an id was issued by this kind of node (any node), to tell foreign replies from garbage. */
  static isServerRequestId(id: unknown): boolean {
    return typeof id === 'string' && id.startsWith('pcn-');
  }

  get size(): number {
    return this.pending.size;
  }
}
