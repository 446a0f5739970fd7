import { spawn } from 'node:child_process';
import type { Driver } from './driver.ts';
import { CLIENT_INFO } from './driver.ts';
import { checkResult, requestPrefix } from './operation.ts';
import type { Operation } from './protocol.ts';
import type { CallOutcome } from './run-calls.ts';

/**
 * The lean load generator over stdio: spawns the server, writes newline-delimited JSON-RPC to its
 * stdin and matches responses on its stdout by id. Requests are pipelined up to the concurrency.
 */
export async function openLeanStdio(
  command: string,
  args: string[],
  operation: Operation,
  protocolVersion: string,
): Promise<Driver> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'ignore'] });
  const pending = new Map<number, (message: Record<string, unknown>) => void>();
  // Partial line so far, as chunks: a big reply (tools/list of 1,000 tools) arrives in many chunks,
  // and re-scanning one growing string for the newline would cost quadratic time in the load process.
  let partial: string[] = [];
  let exitReason: string | undefined;
  const onLine = (line: string) => {
    if (!line.trim()) return;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof message.id === 'number' && ('result' in message || 'error' in message)) {
      const done = pending.get(message.id);
      pending.delete(message.id);
      done?.(message);
    }
  };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    let start = 0;
    let newline: number;
    while ((newline = chunk.indexOf('\n', start)) >= 0) {
      const piece = chunk.slice(start, newline);
      if (partial.length) {
        partial.push(piece);
        onLine(partial.join(''));
        partial = [];
      } else {
        onLine(piece);
      }
      start = newline + 1;
    }
    if (start < chunk.length) partial.push(chunk.slice(start));
  });
  child.on('exit', (code, signal) => {
    exitReason = `server exited (${code ?? signal})`;
    for (const done of pending.values()) done({ error: { message: exitReason } });
    pending.clear();
  });
  child.stdin.on('error', () => {});

  const request = (id: number, line: string): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      if (exitReason) return resolve({ error: { message: exitReason } });
      pending.set(id, resolve);
      child.stdin.write(line);
    });

  const init = await request(
    0,
    `${JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion, capabilities: {}, clientInfo: CLIENT_INFO },
    })}\n`,
  );
  if (!('result' in init)) throw new Error(`initialize failed: ${JSON.stringify(init).slice(0, 300)}`);
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  const negotiated = String((init.result as { protocolVersion?: string }).protocolVersion ?? protocolVersion);

  const prefix = requestPrefix(operation);
  return {
    ...(child.pid === undefined ? {} : { serverPid: child.pid }),
    protocolVersion: negotiated,
    async call(seq: number): Promise<CallOutcome> {
      const id = seq + 1;
      const response = await request(id, `${prefix + id}}\n`);
      if ('error' in response)
        return { ok: false, error: `JSON-RPC error: ${JSON.stringify(response.error).slice(0, 200)}` };
      return checkResult(operation, response.result);
    },
    async close(): Promise<void> {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 1_000);
      if (child.exitCode === null && child.signalCode === null) await new Promise((done) => child.once('exit', done));
      clearTimeout(timer);
    },
  };
}
