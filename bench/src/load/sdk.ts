import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Driver } from './driver.ts';
import { CLIENT_INFO } from './driver.ts';
import { checkResult } from './operation.ts';
import type { LoadTarget, Operation } from './protocol.ts';
import type { CallOutcome } from './run-calls.ts';

/**
 * The official SDK v1 client (what most 2025-era agents embed), over Streamable HTTP or stdio.
 * Over HTTP its transport shares one abort signal across requests, and under concurrency Node 20's
 * fetch then warns `MaxListenersExceededWarning` on every request, so the fetch it is given drops it.
 */
const fetchWithoutSharedSignal: typeof fetch = (input, init) => {
  if (!init?.signal) return fetch(input, init);
  const { signal: _dropped, ...rest } = init;
  return fetch(input, rest);
};

export async function openSdk(target: LoadTarget, operation: Operation): Promise<Driver> {
  const client = new Client(CLIENT_INFO);
  let serverPid: number | undefined;
  if (target.transport === 'http') {
    const transport = new StreamableHTTPClientTransport(new URL(target.url), {
      requestInit: { headers: target.headers },
      fetch: fetchWithoutSharedSignal,
    });
    await client.connect(transport);
  } else {
    const transport = new StdioClientTransport({ command: target.command, args: target.args, stderr: 'ignore' });
    await client.connect(transport);
    serverPid = transport.pid ?? undefined;
  }
  const protocolVersion = (client.transport as { protocolVersion?: string } | undefined)?.protocolVersion;
  return {
    ...(serverPid === undefined ? {} : { serverPid }),
    ...(protocolVersion === undefined ? {} : { protocolVersion }),
    async call(): Promise<CallOutcome> {
      if (operation.method === 'tools/list') return checkResult(operation, await client.listTools());
      return checkResult(operation, await client.callTool({ name: operation.tool, arguments: { message: 'hello' } }));
    },
    async close(): Promise<void> {
      const transport = client.transport;
      if (transport instanceof StreamableHTTPClientTransport) await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}
