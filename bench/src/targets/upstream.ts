import { resolve } from 'node:path';
import type { LoadTarget, Operation } from '../load/protocol.ts';
import { LOOPBACK_PRELOAD, ManagedProcess, REPO_ROOT, freePort, waitForPort } from '../processes.ts';

/** The real upstream every row calls: `@modelcontextprotocol/server-everything`, tool `echo`. */

export const EVERYTHING = resolve(REPO_ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const EVERYTHING_TOOL = 'echo';
export const ECHO: Operation = { method: 'tools/call', tool: EVERYTHING_TOOL };

/** The command line that runs server-everything over stdio. */
export function everythingStdio(): { command: string; args: string[] } {
  return { command: process.execPath, args: [EVERYTHING, 'stdio'] };
}

export function everythingStdioTarget(): LoadTarget {
  return { transport: 'stdio', ...everythingStdio() };
}

export interface HttpServer {
  proc: ManagedProcess;
  url: string;
}

/** server-everything over Streamable HTTP (path /mcp), bound to 127.0.0.1. */
export async function startEverythingHttp(): Promise<HttpServer> {
  const port = await freePort();
  const proc = new ManagedProcess(
    'server-everything (streamableHttp)',
    process.execPath,
    ['--import', LOOPBACK_PRELOAD, EVERYTHING, 'streamableHttp'],
    {
      env: { PORT: String(port) },
    },
  );
  await waitForPort(port, proc);
  return { proc, url: `http://127.0.0.1:${port}/mcp` };
}
