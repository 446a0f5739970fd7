import { z } from 'zod';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import { TASK_ID_TOKENS, signToken, verifyToken } from './signed-token.ts';

/**
 * Task ids as agents see them (Tasks extension): signed tokens of the task-id domain (`pct.…`,
 * see signed-token.ts) naming the upstream, the upstream's task id and the virtual key that
 * created the task, so any node routes `tasks/get|result|cancel` to the right upstream without a
 * lookup, and one key cannot reach another key's tasks on a shared upstream connection.
 */
export interface UpstreamTask {
  readonly upstream: string;
  readonly taskId: string;
}

const Payload = z.object({ u: z.string(), t: z.string(), k: z.string() });

export function wrapTaskId(task: UpstreamTask, keyId: string, keys: readonly SigningKey[]): string {
  return signToken(TASK_ID_TOKENS, { u: task.upstream, t: task.taskId, k: keyId }, keys);
}

/** The upstream task a wrapped id names, when it was issued to `keyId` under a current session key. */
export function unwrapTaskId(wrapped: string, keyId: string, keys: readonly SigningKey[]): UpstreamTask | undefined {
  const verified = verifyToken(TASK_ID_TOKENS, wrapped, keys);
  if (!verified.ok) return undefined;
  const payload = Payload.safeParse(verified.payload);
  if (!payload.success || payload.data.k !== keyId) return undefined;
  return { upstream: payload.data.u, taskId: payload.data.t };
}
