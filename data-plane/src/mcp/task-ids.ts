import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';

/**
 * Task ids as agents see them (Tasks extension): `pct.<upstream>.<upstream's task id>.<mac>`, all
 * parts base64url. The MAC (HMAC-SHA256 under the session keys every node holds, truncated to 128
 * bits) binds the upstream's task id to its upstream and to the virtual key that created it, so
 * any node routes `tasks/get|result|cancel` to the right upstream without a lookup, and one key
 * cannot reach another key's tasks on a shared upstream connection.
 */
const PREFIX = 'pct.';
const MAC_BYTES = 16;
const MAX_LENGTH = 2048;

export interface UpstreamTask {
  readonly upstream: string;
  readonly taskId: string;
}

function mac(secret: Uint8Array, keyId: string, upstream: string, taskId: string): Buffer {
  return createHmac('sha256', secret).update(`${keyId}\n${upstream}\n${taskId}`).digest().subarray(0, MAC_BYTES);
}

export function wrapTaskId(task: UpstreamTask, keyId: string, keys: readonly SigningKey[]): string {
  const key = keys[0];
  if (key === undefined) throw new Error('no session key to sign with');
  const b64 = (text: string) => Buffer.from(text).toString('base64url');
  return `${PREFIX}${b64(task.upstream)}.${b64(task.taskId)}.${mac(key.secret, keyId, task.upstream, task.taskId).toString('base64url')}`;
}

/** The upstream task a wrapped id names, when it was issued to `keyId` under a current session key. */
export function unwrapTaskId(wrapped: string, keyId: string, keys: readonly SigningKey[]): UpstreamTask | undefined {
  if (wrapped.length > MAX_LENGTH || !wrapped.startsWith(PREFIX)) return undefined;
  const parts = wrapped.slice(PREFIX.length).split('.');
  if (parts.length !== 3) return undefined;
  const upstream = Buffer.from(parts[0]!, 'base64url').toString('utf8');
  const taskId = Buffer.from(parts[1]!, 'base64url').toString('utf8');
  const presented = Buffer.from(parts[2]!, 'base64url');
  if (presented.length !== MAC_BYTES) return undefined;
  for (const key of keys) if (timingSafeEqual(mac(key.secret, keyId, upstream, taskId), presented)) return { upstream, taskId };
  return undefined;
}
