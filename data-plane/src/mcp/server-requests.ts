import { randomBytes } from 'node:crypto';
import { UpstreamRpcError } from '../upstream/upstream-rpc-error.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import { isPlainObject } from './json-rpc.ts';
import { RpcErrorCode } from './protocol.ts';

/** The session a server-to-client request was sent to: only a reply from it settles the request. */
export interface ServerRequestOwner {
  /** The 2025-era session id (the signed token). */
  readonly sessionId: string;
  /** The virtual key the session was issued to. */
  readonly keyId: string;
}

interface Pending {
  readonly owner: ServerRequestOwner | undefined;
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
}

/** What every view of one node's server requests shares. */
interface RequestTable {
  readonly nodeTag: string;
  readonly prefix: string;
  next: number;
  readonly pending: Map<string, Pending>;
}

/** `pcn-<tag>-<n>`: the tag is base64url (it may hold "-"), the number decimal. */
const SERVER_REQUEST_ID = /^pcn-([A-Za-z0-9_-]{1,32})-\d{1,16}$/;

/**
 * Server-to-client requests (elicitation, sampling, roots) this node sent to 2025-era agents and
 * awaits answers to. The JSON-RPC id names this node (`pcn-<node tag>-<n>`), so a reply that lands
 * on another node is relayed here through the control plane (see data-plane/src/relay). A request
 * sent through `forSession(owner)` is settled only by a reply carrying the same session and key,
 * whichever node received it.
 */
export class ServerRequests {
  private readonly table: RequestTable;

  constructor(
    nodeTag: string | RequestTable = randomBytes(6).toString('base64url'),
    private readonly owner?: ServerRequestOwner,
  ) {
    this.table = typeof nodeTag === 'string' ? { nodeTag, prefix: `pcn-${nodeTag}-`, next: 0, pending: new Map() } : nodeTag;
  }

  /** The tag in this node's request ids; the node announces it to the control plane. */
  get nodeTag(): string {
    return this.table.nodeTag;
  }

  /** The same requests, sent on behalf of one session: replies must come from it. */
  forSession(owner: ServerRequestOwner): ServerRequests {
    return new ServerRequests(this.table, owner);
  }

  /** Sends `message` through `write` and resolves with the agent's result; rejects on its error or when `signal` aborts. */
  send(write: (json: string) => void, message: RpcMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    if (signal?.aborted) return Promise.reject(new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled'));
    const table = this.table;
    table.next += 1;
    const id = `${table.prefix}${table.next}`;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        table.pending.delete(id);
        reject(new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled: the agent went away'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      table.pending.set(id, {
        owner: this.owner,
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

  /**
   * Settles the request a JSON-RPC response answers; false when it is not one of this node's
   * pending requests, or was sent to another session or key than `owner` (then it stays pending).
   */
  settle(response: unknown, owner?: ServerRequestOwner): boolean {
    if (!isPlainObject(response)) return false;
    const id = response['id'];
    if (typeof id !== 'string') return false;
    const pending = this.table.pending.get(id);
    if (pending === undefined || !sameOwner(pending.owner, owner)) return false;
    this.table.pending.delete(id);
    const error = response['error'];
    if (isPlainObject(error)) pending.reject(new UpstreamRpcError(typeof error['code'] === 'number' ? error['code'] : RpcErrorCode.InternalError, String(error['message'] ?? 'error'), error['data']));
    else pending.resolve(isPlainObject(response['result']) ? response['result'] : {});
    return true;
  }

  /** Whether an id was issued by this kind of node (any node), to tell foreign replies from garbage. */
  static isServerRequestId(id: unknown): boolean {
    return typeof id === 'string' && id.startsWith('pcn-');
  }

  /** The tag of the node that issued a server-request id, or undefined when `id` is not one. */
  static nodeTagOf(id: unknown): string | undefined {
    if (typeof id !== 'string') return undefined;
    return SERVER_REQUEST_ID.exec(id)?.[1];
  }

  get size(): number {
    return this.table.pending.size;
  }
}

function sameOwner(a: ServerRequestOwner | undefined, b: ServerRequestOwner | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.sessionId === b.sessionId && a.keyId === b.keyId;
}
