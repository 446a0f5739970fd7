import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { wrapTaskId } from '../mcp/task-ids.ts';

const RELATED_TASK_META_KEY = 'io.modelcontextprotocol/related-task';
/** Tasks remembered per key for tasks/list (the oldest forgotten first). */
const MAX_TASKS_PER_KEY = 1000;

/** Whose tasks: the upstream that runs them, the key they are wrapped for, and the keys that sign them. */
type TaskScope = [upstream: string, keyId: string, sessionKeys: readonly SigningKey[]];

/**
 * Upstream task ids as agents see them: wrapped to name their upstream and signed for the key
 * (task-ids.ts), and the tasks each key created through this node, for `tasks/list` (upstream
 * connections are shared, so an upstream's list holds every key's tasks).
 */
export class TaskIds {
  private readonly created = new Map<string, Set<string>>();

  /** Wraps the ids in a task-augmented call's CreateTaskResult and remembers the task as the key's. */
  remember(result: Record<string, unknown>, ...scope: TaskScope): Record<string, unknown> {
    const rewritten = this.rewrite(result, ...scope);
    const keyId = scope[1];
    const taskId = (rewritten['task'] as Record<string, unknown>)['taskId'];
    if (typeof taskId === 'string') {
      let owned = this.created.get(keyId);
      if (owned === undefined) this.created.set(keyId, (owned = new Set()));
      owned.add(taskId);
      // A Set drops its first-added id, not an LRUCache: that preallocates `max` slots for every key.
      if (owned.size > MAX_TASKS_PER_KEY) owned.delete(owned.values().next().value!);
    }
    return rewritten;
  }

  /** Whether the key created this (wrapped) task through this node. */
  owns(keyId: string, wrapped: string): boolean {
    return this.created.get(keyId)?.has(wrapped) === true;
  }

  /** Wraps the upstream task ids in a result (`task.taskId`, `taskId`, related-task `_meta`). */
  rewrite(result: Record<string, unknown>, ...[upstream, keyId, sessionKeys]: TaskScope): Record<string, unknown> {
    const wrap = (taskId: unknown) =>
      typeof taskId === 'string' ? wrapTaskId({ upstream, taskId }, keyId, sessionKeys) : taskId;
    let out = result;
    if (isPlainObject(result['task']))
      out = { ...out, task: { ...result['task'], taskId: wrap(result['task']['taskId']) } };
    if (typeof result['taskId'] === 'string') out = { ...out, taskId: wrap(result['taskId']) };
    const meta = result['_meta'];
    const related = isPlainObject(meta) ? meta[RELATED_TASK_META_KEY] : undefined;
    if (isPlainObject(meta) && isPlainObject(related))
      out = { ...out, _meta: { ...meta, [RELATED_TASK_META_KEY]: { ...related, taskId: wrap(related['taskId']) } } };
    return out;
  }
}
