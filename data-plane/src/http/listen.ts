import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RpcRequest } from '../mcp/dispatcher.ts';
import { errorBody, isPlainObject } from '../mcp/json-rpc.ts';
import { RpcErrorCode, SUBSCRIPTION_ID_META_KEY } from '../mcp/protocol.ts';
import type { Authenticated } from './authenticate.ts';
import type { McpServices } from './mcp-endpoint.ts';
import { sendJson } from './respond.ts';
import { SSE_HEADERS, notificationJson, sseEvent } from './response-channel.ts';

/** Most resource URIs one listen stream may subscribe to. */
const MAX_RESOURCE_SUBSCRIPTIONS = 1000;

let listenCounter = 0;

/**
 * 2026-07-28 `subscriptions/listen`: answers with an SSE stream that opens with
 * `notifications/subscriptions/acknowledged` (the honored subset of the requested filter, narrowed
 * to what the merged upstreams can deliver and, for resources, to URIs this key may read), then
 * carries the list_changed and resources/updated notifications the filter asked for, each stamped
 * with the subscription id (the listen request's JSON-RPC id), as the SDK's listen router does. It
 * ends when the agent closes it, or gracefully (the empty result) when the node shuts down.
 */
export async function serveListen(
  res: ServerResponse,
  request: RpcRequest,
  auth: Authenticated,
  services: McpServices,
  logger: Logger,
): Promise<void> {
  const requested = request.params?.['notifications'];
  if (!isPlainObject(requested)) {
    sendJson(
      res,
      200,
      errorBody(
        request.id,
        RpcErrorCode.InvalidParams,
        "Invalid params: 'notifications' is required and must be a valid SubscriptionFilter",
      ),
    );
    return;
  }
  const capabilities = services.dispatcher.capabilities('modern');
  const can = (kind: string, bit: string) =>
    isPlainObject(capabilities[kind]) && (capabilities[kind] as Record<string, unknown>)[bit] === true;
  const honored: Record<string, unknown> = {};
  if (requested['toolsListChanged'] === true && can('tools', 'listChanged')) honored['toolsListChanged'] = true;
  if (requested['promptsListChanged'] === true && can('prompts', 'listChanged')) honored['promptsListChanged'] = true;
  if (requested['resourcesListChanged'] === true && can('resources', 'listChanged'))
    honored['resourcesListChanged'] = true;

  listenCounter += 1;
  const holder = `listen:${listenCounter}`;
  const uris = Array.isArray(requested['resourceSubscriptions'])
    ? requested['resourceSubscriptions']
        .filter((u): u is string => typeof u === 'string')
        .slice(0, MAX_RESOURCE_SUBSCRIPTIONS)
    : [];
  if (uris.length > 0 && can('resources', 'subscribe')) {
    const subscribed: string[] = [];
    for (const uri of uris) {
      const upstream = services.dispatcher.visibleResourceUpstream(uri, auth.principal.allowList);
      if (upstream === undefined) continue;
      try {
        await services.subscriptions.subscribe(holder, uri, upstream);
        subscribed.push(uri);
      } catch (error) {
        logger.debug({ err: error, upstream }, 'resource subscription refused by its upstream');
      }
    }
    if (subscribed.length > 0) honored['resourceSubscriptions'] = subscribed;
  }

  const subscriptionId = request.id;
  res.writeHead(200, SSE_HEADERS);
  res.write(
    sseEvent(
      notificationJson('notifications/subscriptions/acknowledged', {
        notifications: honored,
        _meta: { [SUBSCRIPTION_ID_META_KEY]: subscriptionId },
      }),
    ),
  );
  if (Object.keys(honored).length === 0) {
    services.subscriptions.forget(holder);
    res.end(
      sseEvent(
        JSON.stringify({
          jsonrpc: '2.0',
          id: subscriptionId,
          result: { resultType: 'complete', _meta: { [SUBSCRIPTION_ID_META_KEY]: subscriptionId } },
        }),
      ),
    );
    return;
  }
  if (res.destroyed) {
    services.subscriptions.forget(holder);
    return;
  }
  services.streams.open(res, {
    secret: auth.secret,
    keyId: auth.principal.keyId,
    allowList: auth.principal.allowList,
    holder,
    subscriptionId,
    filter: {
      tools: honored['toolsListChanged'] === true,
      prompts: honored['promptsListChanged'] === true,
      resources: honored['resourcesListChanged'] === true,
    },
    headWritten: true,
    onClose: () => services.subscriptions.forget(holder),
  });
}
