import type { Client, JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/client';
import { isPlainObject } from '../mcp/json-rpc.ts';

/** Where the progress of one relayed request goes, and the progress tokens its messages carried. */
export interface ProgressRoute {
  readonly sink: (params: Record<string, unknown>) => void;
  readonly tokens: Set<string | number>;
}

/**
 * Upstream progress for requests on the SDK client's path, delivered in wire order. The SDK
 * dispatches a notification a microtask after reading it but settles a response at once, so a
 * progress notification read in the same chunk as its request's response finds the request gone
 * and is dropped: over stdio, where a server's last progress and its result usually arrive
 * together, that lost the last progress of most calls. The tap sees each request's progress token
 * as the SDK writes it (in the relayed call's async context, which names the route) and each
 * progress notification as the transport reads it, before the SDK does.
 */
export class ProgressTap {
  private readonly routes = new Map<string | number, ProgressRoute>();

  constructor(private readonly currentRoute: () => ProgressRoute | undefined) {}

  /** Wraps the client's transport (once it is connected): outbound requests and inbound messages pass the tap first. */
  attach(client: Client): void {
    const transport = client.transport;
    if (transport === undefined) return;
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      this.outbound(message);
      return send(message, options);
    };
    const onmessage = transport.onmessage;
    transport.onmessage = ((message: JSONRPCMessage, extra?: MessageExtraInfo) => {
      this.inbound(message);
      onmessage?.(message, extra);
    }) as typeof transport.onmessage;
  }

  /** The request is over: its tokens are forgotten. */
  release(route: ProgressRoute): void {
    for (const token of route.tokens) this.routes.delete(token);
  }

  private outbound(message: JSONRPCMessage): void {
    if (!('method' in message) || !('id' in message)) return;
    const meta = message.params?.['_meta'];
    const token = isPlainObject(meta) ? meta['progressToken'] : undefined;
    if (typeof token !== 'string' && typeof token !== 'number') return;
    const route = this.currentRoute();
    if (route === undefined) return;
    route.tokens.add(token);
    this.routes.set(token, route);
  }

  private inbound(message: JSONRPCMessage): void {
    if (!('method' in message) || message.method !== 'notifications/progress' || 'id' in message) return;
    const params = message.params;
    const token = params?.['progressToken'];
    if (typeof token !== 'string' && typeof token !== 'number') return;
    this.routes.get(token)?.sink(params as Record<string, unknown>);
  }
}
