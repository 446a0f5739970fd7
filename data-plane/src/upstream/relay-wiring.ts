import {
  SSEClientTransport,
  StreamableHTTPClientTransport,
  type Client,
  type JSONRPCMessage,
  type MessageExtraInfo,
} from '@modelcontextprotocol/client';
import { SseChannel, StreamableHttpChannel } from './http-channel.ts';
import { LeanRelay, type RelayChannel } from './lean-relay.ts';
import { StdioPipeTransport, deliverValidated } from './stdio-transport.ts';
import type { DeviationSink } from './upstream-deviations.ts';

export interface LeanRelayTarget {
  upstream: string;
  /** The upstream's URL (HTTP transports). */
  url: string;
  /** The upstream's configured headers (HTTP transports). */
  headers: Readonly<Record<string, string>>;
  /** Told when the upstream's answers deviate in a way the relay carries (upstream-deviations.ts). */
  onDeviation: DeviationSink;
}

/**
 * Puts a lean relay beside a connected SDK client, on the client's own transport: from now on the
 * relay sees every inbound message first and takes the ones that answer its requests; the rest
 * reach the client as before. Returns undefined when the connection stays on the SDK's path:
 * a 2026-07-28 connection (the SDK drives its `input_required` rounds) or a transport the relay
 * does not know.
 */
export function attachLeanRelay(client: Client, target: LeanRelayTarget): LeanRelay | undefined {
  if (client.getProtocolEra() === 'modern') return undefined;
  const transport = client.transport;
  if (!transport) return undefined;
  const sdkOnMessage = transport.onmessage;
  const toSdk = (message: JSONRPCMessage, extra?: MessageExtraInfo) => sdkOnMessage?.(message, extra);
  // A message from the relay's own HTTP stream that is not its answer goes to the client, validated as the SDK's
  // transport would.
  const handOn = (json: unknown) =>
    deliverValidated(json, { onmessage: (message) => toSdk(message), onerror: (error) => transport.onerror?.(error) });
  let channel: RelayChannel;
  if (transport instanceof StdioPipeTransport) {
    channel = {
      send: (call) => transport.write(JSON.stringify(call.request)),
      notify: (message) => transport.send(message),
    };
  } else if (transport instanceof StreamableHTTPClientTransport) {
    channel = new StreamableHttpChannel({
      url: new URL(target.url),
      headers: target.headers,
      transport,
      onDeviation: target.onDeviation,
    });
  } else if (transport instanceof SSEClientTransport) {
    channel = new SseChannel(transport);
  } else {
    return undefined;
  }
  const relay = new LeanRelay(target.upstream, channel, handOn);
  if (transport instanceof StdioPipeTransport) {
    transport.intercept = relay.intercept;
  } else {
    transport.onmessage = ((message: JSONRPCMessage, extra?: MessageExtraInfo) => {
      if (!relay.intercept(message)) toSdk(message, extra);
    }) as typeof transport.onmessage;
  }
  const sdkOnClose = transport.onclose;
  transport.onclose = () => {
    relay.close();
    sdkOnClose?.();
  };
  return relay;
}
