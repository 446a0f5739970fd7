import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const AGENT = { name: 'portcullis-test-agent', version: '1.0.0' };

function authHeaders(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { authorization: `Bearer ${key}` };
}

/** The SDK v2 client, pinned to the stateless 2026-07-28 revision: a modern agent. */
export async function connectModernAgent(mcpUrl: string, key: string | undefined): Promise<ClientV2> {
  const client = new ClientV2(AGENT, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await client.connect(new TransportV2(new URL(mcpUrl), { requestInit: { headers: authHeaders(key) } }));
  return client;
}

/**
 * The SDK v1 client (protocol 2025-11-25): what most 2025-era agents embed. With `sessionId`
 * it resumes that session instead of initializing (as an agent does after a load balancer
 * moved it to another node).
 */
export async function connectLegacyAgent(
  mcpUrl: string,
  key: string | undefined,
  sessionId?: string,
): Promise<{ client: ClientV1; transport: TransportV1 }> {
  const client = new ClientV1(AGENT);
  const transport = new TransportV1(new URL(mcpUrl), {
    requestInit: { headers: authHeaders(key) },
    ...(sessionId ? { sessionId } : {}),
  });
  await client.connect(transport);
  return { client, transport };
}

/** The text of a CallToolResult's first content block. */
export function firstText(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content;
  const first = content?.[0];
  if (first?.type !== 'text' || first.text === undefined)
    throw new Error(`expected text content, got ${JSON.stringify(result)}`);
  return first.text;
}
