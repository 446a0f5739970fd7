import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import {
  Client as LegacyClient,
  type ClientOptions as LegacyClientOptions,
} from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/** The 2026-07-28 revision the modern agent is pinned to. */
export const MODERN = '2026-07-28';

/**
 * The official v2 SDK client pinned to 2026-07-28 over Streamable HTTP, authenticating with `secret` (through `fetch`,
 * when given).
 */
export async function modernAgent(
  url: URL,
  secret: string,
  options: ConstructorParameters<typeof ModernClient>[1] = {},
  fetch?: typeof globalThis.fetch,
): Promise<ModernClient> {
  const client = new ModernClient(
    { name: 'modern-agent', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: MODERN } }, ...options },
  );
  await client.connect(
    new ModernTransport(url, {
      requestInit: { headers: { authorization: `Bearer ${secret}` } },
      ...(fetch === undefined ? {} : { fetch }),
    }),
  );
  return client;
}

/** The official v1 SDK client (2025-11-25) over Streamable HTTP. */
export async function legacyAgent(
  url: URL,
  secret: string,
  options: LegacyClientOptions = {},
): Promise<{ client: LegacyClient; transport: LegacyTransport }> {
  const client = new LegacyClient({ name: 'legacy-agent', version: '1.0.0' }, options);
  const transport = new LegacyTransport(url, { requestInit: { headers: { authorization: `Bearer ${secret}` } } });
  await client.connect(transport);
  return { client, transport };
}

/** The official v1 SDK client over the legacy HTTP+SSE transport (`GET /sse` + `POST /messages`). */
export async function sseAgent(
  mcpUrl: URL,
  secret: string,
  options: LegacyClientOptions = {},
  postFetch?: typeof globalThis.fetch,
): Promise<{ client: LegacyClient; transport: SSEClientTransport }> {
  const client = new LegacyClient({ name: 'sse-agent', version: '1.0.0' }, options);
  const headers = { authorization: `Bearer ${secret}` };
  const transport = new SSEClientTransport(new URL('/sse', mcpUrl), {
    requestInit: { headers },
    // The SDK posts /messages through `fetch` (the GET stream goes through eventSourceInit's).
    ...(postFetch === undefined ? {} : { fetch: postFetch }),
    eventSourceInit: {
      fetch: (url, init) => {
        const merged = new Headers(init?.headers);
        merged.set('authorization', headers.authorization);
        return fetch(url, { ...init, headers: merged });
      },
    },
  });
  await client.connect(transport);
  return { client, transport };
}
