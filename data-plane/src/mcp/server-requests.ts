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
  readonly pending: Map<string, Pending>;
}

/** Random bytes in each id: 128 bits, so that no one can guess the id of a request sent to another agent. */
const ID_RANDOM_BYTES = 16;
/**
 * `pcn-<tag>-<random>`: the tag is base64url (it may hold "-"), the random part base64url of fixed
 * length (22 characters), which is what tells the two apart.
 */
const SERVER_REQUEST_ID = /^pcn-([A-Za-z0-9_-]{1,32})-[A-Za-z0-9_-]{22}$/;

/**
 * Server-to-client requests (elicitation, sampling, roots) this node sent to 2025-era agents and
 * awaits answers to. The JSON-RPC id names this node (`pcn-<node tag>-<random>`), so a reply that
 * lands on another node is relayed here through the control plane (see data-plane/src/relay).
 * Requests are sent only through `forSession(owner)`, and settled only by a reply carrying the same
 * session and key, whichever node and transport received it: the id alone proves nothing (it is
 * random as well, so it cannot be guessed either).
 */
export class ServerRequests {
  private readonly table: RequestTable;

  constructor(
    nodeTag: string | RequestTable = randomBytes(6).toString('base64url'),
    private readonly owner?: ServerRequestOwner,
  ) {
    this.table = typeof nodeTag === 'string' ? { nodeTag, prefix: `pcn-${nodeTag}-`, pending: new Map() } : nodeTag;
  }

  /** The tag in this node's request ids; the node announces it to the control plane. */
  get nodeTag(): string {
    return this.table.nodeTag;
  }

  /** The same requests, sent on behalf of one session: replies must come from it. */
  forSession(owner: ServerRequestOwner): ServerRequests {
    return new ServerRequests(this.table, owner);
  }

  /**
   * Sends `message` through `write` and resolves with the agent's result; rejects on its error or
   * when `signal` aborts. Only a view made by `forSession` sends: a request nobody owns could be
   * answered by anyone.
   */
  send(
    write: (json: string) => void,
    message: RpcMessage,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, unknown>> {
    if (this.owner === undefined)
      return Promise.reject(new Error('server requests are sent on behalf of a session (forSession)'));
    if (signal?.aborted) return Promise.reject(new UpstreamRpcError(RpcErrorCode.InternalError, 'Request cancelled'));
    const table = this.table;
    const id = `${table.prefix}${randomBytes(ID_RANDOM_BYTES).toString('base64url')}`;
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
      write(
        JSON.stringify(
          message.params === undefined
            ? { jsonrpc: '2.0', id, method: message.method }
            : { jsonrpc: '2.0', id, method: message.method, params: message.params },
        ),
      );
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
    if (isPlainObject(error))
      pending.reject(
        new UpstreamRpcError(
          typeof error['code'] === 'number' ? error['code'] : RpcErrorCode.InternalError,
          String(error['message'] ?? 'error'),
          error['data'],
        ),
      );
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
  if (a === undefined || b === undefined) return false;
  return a.sessionId === b.sessionId && a.keyId === b.keyId;
}
