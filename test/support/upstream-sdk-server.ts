import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  McpServer,
  WebStandardStreamableHTTPServerTransport,
  acceptedContent,
  createMcpHandler,
  inputRequired,
  type McpHttpHandler,
  type RegisteredTool,
} from '@modelcontextprotocol/server';
import { z } from 'zod';

/**
 * In-process MCP servers built with the SDK v2 server package, served over real HTTP on 127.0.0.1,
 * for what server-everything cannot do on demand: echo the headers it saw, change its tools,
 * forget its sessions, speak 2026-07-28.
 */

/** What the fixture's tools share across sessions (and restarts). */
export interface FixtureState {
  /** The `echo` tool's description: change it to change its definition. */
  echoDescription: string;
  /** Tools added at run time (each echoes). */
  extraTools: string[];
  /** How often `slow` saw its request cancelled. */
  cancelled: number;
  /** How often `bump` ran (a tool that is not safe to repeat). */
  bumps: number;
  /** The headers of every HTTP request, lower-cased names. */
  headers: Record<string, string>[];
  /** While set, `ping` requests are answered HTTP 503 (a sick server). */
  failPings: boolean;
}

export function newFixtureState(): FixtureState {
  return {
    echoDescription: 'Echoes its message',
    extraTools: [],
    cancelled: 0,
    bumps: 0,
    headers: [],
    failPings: false,
  };
}

interface BuiltServer {
  server: McpServer;
  tools: Map<string, RegisteredTool>;
}

function text(value: string) {
  return { content: [{ type: 'text' as const, text: value }] };
}

/** One McpServer with the fixture's tools. */
function buildServer(state: FixtureState, name: string): BuiltServer {
  const server = new McpServer(
    { name, version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, logging: {} } },
  );
  const tools = new Map<string, RegisteredTool>();
  tools.set(
    'echo',
    server.registerTool(
      'echo',
      {
        description: state.echoDescription,
        inputSchema: z.object({ message: z.string() }),
        annotations: { readOnlyHint: true },
      },
      async ({ message }) => text(`echo: ${message}`),
    ),
  );
  tools.set(
    'bump',
    server.registerTool(
      'bump',
      { description: 'Counts calls (not safe to repeat)', annotations: { readOnlyHint: false, idempotentHint: false } },
      async () => {
        state.bumps += 1;
        return text(`bumps: ${state.bumps}`);
      },
    ),
  );
  tools.set(
    'slow',
    server.registerTool(
      'slow',
      {
        description: 'Reports progress every 20 ms for `steps` steps; notes cancellation',
        inputSchema: z.object({ steps: z.number() }),
      },
      async ({ steps }, ctx) => {
        const token = ctx.mcpReq._meta?.progressToken;
        for (let i = 1; i <= steps; i++) {
          if (ctx.mcpReq.signal.aborted) {
            state.cancelled += 1;
            return text('cancelled');
          }
          if (token !== undefined)
            await ctx.mcpReq.notify({
              method: 'notifications/progress',
              params: { progressToken: token, progress: i, total: steps, message: `step ${i}` },
            });
          await new Promise((r) => setTimeout(r, 20));
        }
        if (ctx.mcpReq.signal.aborted) state.cancelled += 1;
        return text(`done after ${steps} steps`);
      },
    ),
  );
  tools.set(
    'ask',
    server.registerTool(
      'ask',
      { description: 'Asks the user for a colour (elicitation), in either era', inputSchema: z.object({}) },
      async (_args, ctx) => {
        const schema = z.object({ colour: z.string() });
        if (ctx.mcpReq.envelope !== undefined && Object.keys(ctx.mcpReq.envelope).length > 0) {
          const answer = acceptedContent(ctx.mcpReq.inputResponses, 'colour', schema);
          if (!answer)
            return inputRequired({
              inputRequests: {
                colour: inputRequired.elicit({ message: 'Favourite colour?', requestedSchema: schema }),
              },
            });
          return text(`colour: ${answer.colour}`);
        }
        const result = await ctx.mcpReq.elicitInput({
          message: 'Favourite colour?',
          requestedSchema: { type: 'object', properties: { colour: { type: 'string' } }, required: ['colour'] },
        });
        return text(
          result.action === 'accept' ? `colour: ${String(result.content?.['colour'])}` : `declined: ${result.action}`,
        );
      },
    ),
  );
  tools.set(
    'log',
    server.registerTool(
      'log',
      { description: 'Logs a line while it runs (a notification related to the call)', inputSchema: z.object({}) },
      async (_args, ctx) => {
        await ctx.mcpReq.log('info', 'working on it');
        return text('logged');
      },
    ),
  );
  tools.set(
    'announce',
    server.registerTool(
      'announce',
      { description: 'Logs a line outside the call (an unrelated notification)', inputSchema: z.object({}) },
      async () => {
        await server.server.notification({
          method: 'notifications/message',
          params: { level: 'info', data: 'broadcast' },
        });
        return text('announced');
      },
    ),
  );
  for (const extra of state.extraTools)
    tools.set(
      extra,
      server.registerTool(extra, { description: `Added at run time: ${extra}` }, async () => text(extra)),
    );
  return { server, tools };
}

export type FixtureKind = 'sessionful-2025' | 'modern-2026';

/**
 * An SDK server over HTTP: `sessionful-2025` is a stateful Streamable HTTP server (2025 era,
 * sessions in memory, so a restart forgets them and answers 404); `modern-2026` is
 * `createMcpHandler` (2026-07-28, with the stateless 2025 fallback).
 */
export class SdkHttpFixture {
  readonly state: FixtureState;
  private http: HttpServer | undefined;
  private live: BuiltServer[] = [];
  private transports = new Map<string, WebStandardStreamableHTTPServerTransport>();
  private modern: McpHttpHandler | undefined;

  private constructor(
    readonly kind: FixtureKind,
    private portValue: number,
    state: FixtureState,
  ) {
    this.state = state;
  }

  static async start(
    kind: FixtureKind,
    options: { port?: number; state?: FixtureState } = {},
  ): Promise<SdkHttpFixture> {
    const fixture = new SdkHttpFixture(kind, options.port ?? 0, options.state ?? newFixtureState());
    await fixture.listen();
    return fixture;
  }

  get port(): number {
    return this.portValue;
  }

  get url(): string {
    return `http://127.0.0.1:${this.portValue}/mcp`;
  }

  /** Adds a tool to every live server (each tells its client tools/list_changed). */
  addTool(name: string): void {
    this.state.extraTools.push(name);
    for (const built of this.live)
      built.tools.set(
        name,
        built.server.registerTool(name, { description: `Added at run time: ${name}` }, async () => text(name)),
      );
    this.modern?.notify.toolsChanged();
  }

  /** Changes the `echo` tool's description on every live server (a definition change). */
  setEchoDescription(description: string): void {
    this.state.echoDescription = description;
    for (const built of this.live) built.tools.get('echo')?.update({ description });
    this.modern?.notify.toolsChanged();
  }

  /** Stops listening and drops every connection and session, like a crash. */
  async stop(): Promise<void> {
    const http = this.http;
    this.http = undefined;
    if (!http) return;
    http.closeAllConnections();
    const closed = once(http, 'close');
    http.close();
    for (const t of this.transports.values()) await t.close().catch(() => undefined);
    this.transports.clear();
    for (const built of this.live) await built.server.close().catch(() => undefined);
    this.live = [];
    await this.modern?.close();
    this.modern = undefined;
    await closed;
  }

  /** Starts again on the same port with no sessions. */
  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  private async listen(): Promise<void> {
    if (this.kind === 'modern-2026')
      this.modern = createMcpHandler(() => buildServer(this.state, 'fixture-modern').server);
    const http = createServer((req, res) => void this.serve(req, res));
    http.listen(this.portValue, '127.0.0.1');
    await once(http, 'listening');
    this.portValue = (http.address() as AddressInfo).port;
    this.http = http;
  }

  private async handle(request: Request): Promise<Response> {
    if (this.modern) return this.modern.fetch(request);
    const sessionId = request.headers.get('mcp-session-id');
    if (sessionId) {
      const transport = this.transports.get(sessionId);
      if (!transport)
        return Response.json(
          { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } },
          { status: 404 },
        );
      return transport.handleRequest(request);
    }
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void this.transports.set(id, transport),
    });
    const built = buildServer(this.state, 'fixture-sessionful');
    this.live.push(built);
    await built.server.connect(transport);
    return transport.handleRequest(request);
  }

  /** node:http → fetch Request → the SDK → fetch Response → node:http, streaming the body. */
  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const headers = new Headers();
    const seen: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      const joined = Array.isArray(value) ? value.join(', ') : value;
      headers.set(name, joined);
      seen[name] = joined;
    }
    this.state.headers.push(seen);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
    if (this.state.failPings && body && /"method"\s*:\s*"ping"/.test(body.toString())) {
      res.writeHead(503).end('sick');
      return;
    }
    try {
      const response = await this.handle(
        new Request(`http://127.0.0.1:${this.portValue}${req.url ?? '/'}`, {
          method: req.method,
          headers,
          body,
          signal: abort.signal,
        }),
      );
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body) {
        const reader = response.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          res.write(value);
        }
      }
      res.end();
    } catch {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  }
}
