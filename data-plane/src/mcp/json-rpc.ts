/** A JSON-RPC id as the SDK schemas accept it (null only in error responses to unreadable requests). */
export type RpcId = string | number | null;

/** A serialized JSON-RPC response plus the HTTP status it goes out with. */
export interface RpcReply {
  readonly status: number;
  readonly body: string;
  /** `Retry-After`, in seconds, of a refusal that says when to retry (a rate limit). */
  readonly retryAfterSeconds?: number;
}

/** `{"jsonrpc":"2.0","id":…,"result":<resultJson>}` from an already serialized result. */
export function resultBody(id: RpcId, resultJson: string): string {
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${resultJson}}`;
}

export function errorBody(id: RpcId, code: number, message: string, data?: unknown): string {
  const error: { code: number; message: string; data?: unknown } = { code, message };
  if (data !== undefined) error.data = data;
  return JSON.stringify({ jsonrpc: '2.0', id, error });
}

/** The id to echo in an error about a message: its own when readable, else null. */
export function echoableId(message: unknown): RpcId {
  if (message !== null && typeof message === 'object' && !Array.isArray(message)) {
    const id = (message as { id?: unknown }).id;
    if (typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id))) return id;
  }
  return null;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
