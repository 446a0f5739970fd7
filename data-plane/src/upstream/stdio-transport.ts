import { spawn, type ChildProcess } from 'node:child_process';
import {
  SdkError,
  SdkErrorCode,
  parseJSONRPCMessage,
  type JSONRPCMessage,
  type Transport,
} from '@modelcontextprotocol/client';

/** The SDK's limit for one unterminated line from a stdio server. */
const MAX_LINE_BYTES = 10 * 1024 * 1024;
const NEWLINE = 0x0a;
/** After stdin is closed, how long a server gets to exit before SIGTERM, and then before SIGKILL. */
const EXIT_GRACE_MS = 2_000;
const PROBE_GRACE_MS = 1_000;

/** The spawn parameters, in the shape of the SDK's `StdioServerParameters` (see `_serverParams`). */
export interface StdioTransportOptions {
  command: string;
  args?: readonly string[];
  env?: Record<string, string>;
  cwd?: string;
  /** `ignore` drops the server's stderr (the SDK asks this of its probe sibling); default `pipe`. */
  stderr?: 'pipe' | 'ignore';
  /** The server's stderr, chunk by chunk (kept for diagnostics). */
  onStderr?: (chunk: Buffer) => void;
}

/**
 * Sees each message from the server before the SDK does, as plain parsed JSON: returns true when it
 * consumed the message (a response or progress of a request the lean relay sent), false to hand
 * it on to the SDK's client.
 */
export type InboundInterceptor = (message: unknown) => boolean;

/**
 * A stdio client transport for the SDK's `Client`, with what the node's hot path needs that the
 * SDK's `StdioClientTransport` does not give:
 * - writes are coalesced: everything sent in one turn of the event loop goes to the server's stdin
 *   in one pipe write (a synchronous `write(2)` each was 8–12% of the node's CPU at 32 concurrent calls);
 * - an interceptor sees every line as parsed JSON first, so relayed responses skip the SDK's zod
 *   validation; what reaches the SDK is validated with the SDK's own schema, as its transport does.
 * Newline-delimited JSON-RPC as the MCP stdio transport defines it; lines that are not JSON are
 * skipped (servers that log to stdout), as the SDK does.
 */
export class StdioPipeTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** Set by the lean relay once the client is connected. */
  intercept: InboundInterceptor | undefined;
  /**
   * The SDK's client probes a stdio server's protocol era on a disposable sibling process (a 2025
   * server may exit on a request before `initialize`), but only for a transport that shows the
   * shape of its own: spawn parameters in `_serverParams`, a `_dispose` reaper on the class's own
   * prototype, `pid` and `stderr`, and a constructor taking those parameters. This class keeps
   * that shape so the probe never touches the session's process. (Without it the SDK would probe
   * in place, which works for servers that answer an unknown method with an error.)
   */
  readonly _serverParams: StdioTransportOptions;

  private child: ChildProcess | undefined;
  private queued: string[] = [];
  private flushScheduled = false;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private closed = false;

  constructor(options: StdioTransportOptions) {
    this._serverParams = options;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get stderr(): NodeJS.ReadableStream | null {
    return this.child?.stderr ?? null;
  }

  start(): Promise<void> {
    if (this.child) throw new Error('StdioPipeTransport already started');
    return new Promise((resolve, reject) => {
      const params = this._serverParams;
      const child = spawn(params.command, [...(params.args ?? [])], {
        ...(params.env ? { env: params.env } : {}),
        stdio: ['pipe', 'pipe', params.stderr === 'ignore' ? 'ignore' : 'pipe'],
        shell: false,
        windowsHide: true,
        ...(params.cwd ? { cwd: params.cwd } : {}),
      });
      this.child = child;
      child.once('error', (error) => {
        reject(error);
        this.onerror?.(error);
      });
      child.once('spawn', () => resolve());
      child.once('close', () => this.onChildClosed(child));
      child.stdin?.on('error', (error) => this.onerror?.(error));
      child.stdout?.on('error', (error) => this.onerror?.(error));
      child.stdout?.on('data', (chunk: Buffer) => this.onData(chunk));
      const onStderr = params.onStderr;
      if (onStderr) child.stderr?.on('data', onStderr);
      else child.stderr?.resume();
    });
  }

  /** Queues one message for the next coalesced write. Resolves at once: order is kept, and stdin buffers. */
  send(message: JSONRPCMessage): Promise<void> {
    return this.write(JSON.stringify(message));
  }

  /** Like `send`, for a message already serialized (the lean relay builds its requests as text). */
  write(json: string): Promise<void> {
    if (!this.child?.stdin || this.closed)
      return Promise.reject(new SdkError(SdkErrorCode.NotConnected, 'Not connected'));
    this.queued.push(json);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return Promise.resolve();
  }

  /** Closes stdin and waits for the server to exit: SIGTERM after 2 s, SIGKILL after 2 s more. */
  async close(): Promise<void> {
    if (!this.child || this.closed) return;
    this.flush();
    await this.stopChild(EXIT_GRACE_MS);
  }

  /** The SDK's reaper for its probe sibling: the same, with a shorter grace. */
  async _dispose(): Promise<void> {
    await this.stopChild(PROBE_GRACE_MS);
  }

  private async stopChild(graceMs: number): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.closed = true;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('close', () => resolve());
    });
    const waitExit = () =>
      Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
      ]);
    try {
      child.stdin?.end();
    } catch {
      /* already closed */
    }
    if (await waitExit()) return;
    child.kill('SIGTERM');
    if (await waitExit()) return;
    child.kill('SIGKILL');
    await exited;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.queued.length === 0) return;
    const text = this.queued.length === 1 ? `${this.queued[0]}\n` : `${this.queued.join('\n')}\n`;
    this.queued = [];
    const stdin = this.child?.stdin;
    if (!stdin || this.closed || stdin.destroyed) return;
    stdin.write(text);
  };

  private onChildClosed(child: ChildProcess): void {
    if (this.child !== child) return;
    this.closed = true;
    this.queued = [];
    this.partial = [];
    this.partialBytes = 0;
    this.onclose?.();
  }

  /** Splits stdout into lines; a line split across chunks is kept until its newline arrives. */
  private onData(chunk: Buffer): void {
    let start = 0;
    for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
      if (this.partialBytes > 0) {
        this.partial.push(chunk.subarray(start, end));
        const line = Buffer.concat(this.partial).toString('utf8');
        this.partial = [];
        this.partialBytes = 0;
        this.onLine(line);
      } else {
        this.onLine(chunk.toString('utf8', start, end));
      }
      start = end + 1;
    }
    if (start < chunk.length) {
      this.partialBytes += chunk.length - start;
      if (this.partialBytes > MAX_LINE_BYTES) {
        this.partial = [];
        this.partialBytes = 0;
        this.onerror?.(new Error(`a line from the server exceeded ${MAX_LINE_BYTES} bytes`));
        void this.close();
        return;
      }
      this.partial.push(start === 0 ? chunk : chunk.subarray(start));
    }
  }

  private onLine(line: string): void {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return; // not JSON-RPC (a server logging to stdout); skipped as the SDK's transport does
    }
    if (this.intercept?.(json)) return;
    deliverValidated(json, this);
  }
}

/**
 * Hands parsed JSON to a transport's client as a JSON-RPC message validated with the SDK's schema, as the SDK's
 * transports do; a message that is not one goes to `onerror`.
 */
export function deliverValidated(
  json: unknown,
  to: { onmessage?: (message: JSONRPCMessage) => void; onerror?: (error: Error) => void },
): void {
  let message: JSONRPCMessage;
  try {
    message = parseJSONRPCMessage(json);
  } catch (error) {
    to.onerror?.(error instanceof Error ? error : new Error(String(error)));
    return;
  }
  to.onmessage?.(message);
}
