import { askIfDeclared } from '../mcp/agent-capabilities.ts';
import type { LogLevels } from '../mcp/agent-state.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { ENVELOPE_META_KEYS } from '../mcp/protocol.ts';
import type { RelayOptions, RpcMessage } from '../upstream/upstream-router.ts';
import type { Operation, RequestChannel } from './operation.ts';
import type { TaskIds } from './task-wrapping.ts';

/** What relaying needs of the node: log levels (which `notifications/message` a session wants) and task-id wrapping. */
export interface RelayContext {
  readonly logLevels: LogLevels;
  readonly tasks: TaskIds;
}

/** The agent's progress token in a request's `_meta`, if any. */
export function progressTokenOf(params: Record<string, unknown> | undefined): unknown {
  const meta = params?.['_meta'];
  return isPlainObject(meta) ? meta['progressToken'] : undefined;
}

/**
 * `params` as the upstream must see them: without `_meta`, which travels as RelayOptions.meta (the object is reused
 * when there is none).
 */
export function forwardParams(params: Record<string, unknown>): Record<string, unknown> {
  if (params['_meta'] === undefined) return params;
  const { _meta: _, ...rest } = params;
  return rest;
}

/**
 * The agent's request `_meta` minus the agent↔gateway envelope keys (the same object when none is there), or undefined
 * when nothing is left.
 */
export function forwardableMeta(meta: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(meta)) return undefined;
  let envelope = false;
  for (const key in meta) if (ENVELOPE_META_KEYS.has(key)) envelope = true;
  if (!envelope) return meta;
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(meta)) {
    if (ENVELOPE_META_KEYS.has(key)) continue;
    (out ??= {})[key] = meta[key];
  }
  return out;
}

/**
 * Relay options of a call answered on its own request: the agent's `_meta`, abort, and the back
 * channel for what the upstream sends meanwhile (progress, related notifications, server-to-client
 * requests where the channel can carry them).
 */
export function directRelayOptions(operation: Operation, upstream: string, relay: RelayContext): RelayOptions {
  const meta = forwardableMeta(operation.params['_meta']);
  const options: RelayOptions = { cancellation: operation.cancellation };
  if (meta !== undefined) options.meta = meta;
  if (operation.sessionId !== undefined) options.agent = operation.sessionId;
  if (operation.upstreamTraceparent !== undefined) options.traceparent = operation.upstreamTraceparent;
  const channel = operation.channel;
  if (channel === undefined) return options;
  if (meta?.['progressToken'] !== undefined)
    options.onProgress = (progress) => channel.notify('notifications/progress', progress);
  options.onNotification = (notification) => relatedNotification(notification, upstream, operation, channel, relay);
  // The inner arrow is made only when the upstream asks, not on every request.
  if (channel.canRequest) {
    options.onRequest = (message) =>
      askIfDeclared(operation.agentCapabilities, message, (asked) =>
        channel.request(asked, operation.cancellation.signal()),
      );
  }
  return options;
}

/** A notification the upstream relates to a request, passed to the agent (log levels applied, task ids wrapped). */
export function relatedNotification(
  notification: RpcMessage,
  upstream: string,
  operation: Operation,
  channel: RequestChannel,
  relay: RelayContext,
): void {
  if (
    notification.method === 'notifications/message' &&
    !relay.logLevels.allows(operation.sessionId, notification.params?.['level'], true)
  )
    return;
  if (
    notification.method === 'notifications/tasks/status' &&
    notification.params !== undefined &&
    operation.principal !== undefined
  ) {
    channel.notify(
      notification.method,
      relay.tasks.rewrite(notification.params, upstream, operation.principal.keyId, operation.sessionKeys),
    );
    return;
  }
  channel.notify(notification.method, notification.params);
}
