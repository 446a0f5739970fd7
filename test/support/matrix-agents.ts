import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  ElicitRequestSchema,
  ListToolsResultSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { MODERN } from './protocol-agents.ts';
import type { DownstreamId } from './transport-matrix.ts';
import { eventually } from './eventually.ts';

/**
 * One agent interface over the matrix's three downstream transports, each the official SDK client
 * as an agent runs it: SDK v1 over Streamable HTTP, SDK v2 pinned to 2026-07-28 over Streamable
 * HTTP, SDK v1 over legacy HTTP+SSE. The fetch each transport uses is observed (and, for the
 * Streamable HTTP agents, cuttable), so a run can drop an answer stream or count requests.
 */

export type Json = Record<string, unknown>;
export type ListKind = 'tools' | 'prompts' | 'resources';

export interface CallOptions {
  onprogress?: (progress: { progress: number }) => void;
  signal?: AbortSignal;
}

/** The input an upstream asks of the agent (elicitation), answered by the run's handler. */
export type ElicitHandler = (params: Json) => Promise<Json>;

export interface MatrixAgent {
  readonly downstream: DownstreamId;
  /** The first page of tools/list (or all pages, for the SDK v2 client, which aggregates them). */
  listTools(): Promise<Json[]>;
  /** One page of tools/list, as sent on the wire (the v2 client pages when given a cursor). */
  listToolsPage(cursor: string | undefined): Promise<{ tools: Json[]; nextCursor?: string }>;
  callTool(name: string, args: Json, options?: CallOptions): Promise<Json>;
  listResources(): Promise<Json[]>;
  readResource(uri: string): Promise<Json>;
  listResourceTemplates(): Promise<Json[]>;
  listPrompts(): Promise<Json[]>;
  getPrompt(name: string, args?: Record<string, string>): Promise<Json>;
  completePrompt(prompt: string, argument: string, value: string): Promise<string[]>;
  /** Counts the list_changed notifications of `kinds` from now on (2026-07-28: over subscriptions/listen). */
  watchListChanged(kinds: readonly ListKind[]): Promise<{ count(kind: ListKind): number; close(): Promise<void> }>;
  /** Requests the agent sent, by JSON-RPC method (POST bodies; the v2 agent's Mcp-Method header). */
  sent(method: string): number;
  /** Aborts the open POST answer streams (SSE) of the Streamable HTTP agents, as a network drop would. */
  dropAnswerStreams(): number;
  /** The Last-Event-ID of each resuming GET the agent sent. */
  readonly resumes: string[];
  close(): Promise<void>;
}

export interface AgentOptions {
  readonly elicit?: ElicitHandler;
}

/** What every transport's fetch records. */
class Wire {
  readonly methods = new Map<string, number>();
  readonly answerStreams: AbortController[] = [];
  readonly resumes: string[] = [];
  /** GET notification streams opened (not resumptions). */
  getStreams = 0;

  /** A fetch that records the JSON-RPC method of each POST and keeps a handle on each SSE answer. */
  readonly fetch = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    const method = headers.get('mcp-method') ?? methodOf(init?.body);
    if (init?.method === 'POST' && method !== undefined) this.methods.set(method, (this.methods.get(method) ?? 0) + 1);
    const resumeFrom = headers.get('last-event-id');
    if (init?.method === 'GET' && resumeFrom !== null) this.resumes.push(resumeFrom);
    const cut = new AbortController();
    const response = await fetch(url, {
      ...init,
      signal: init?.signal ? AbortSignal.any([init.signal, cut.signal]) : cut.signal,
    });
    const sse = response.headers.get('content-type')?.startsWith('text/event-stream') ?? false;
    if (init?.method === 'POST' && sse) this.answerStreams.push(cut);
    if (init?.method === 'GET' && sse && resumeFrom === null) this.getStreams += 1;
    return response;
  };

  dropAnswerStreams(): number {
    const open = this.answerStreams.splice(0);
    for (const controller of open) controller.abort();
    return open.length;
  }

  /** What an agent tells of its wire. */
  agentView(): Pick<MatrixAgent, 'sent' | 'dropAnswerStreams' | 'resumes'> {
    return {
      sent: (method) => this.methods.get(method) ?? 0,
      dropAnswerStreams: () => this.dropAnswerStreams(),
      resumes: this.resumes,
    };
  }
}

function methodOf(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  try {
    const parsed = JSON.parse(body) as { method?: unknown };
    return typeof parsed.method === 'string' ? parsed.method : undefined;
  } catch {
    return undefined;
  }
}

const LIST_CHANGED = {
  tools: {
    method: 'notifications/tools/list_changed',
    schema: ToolListChangedNotificationSchema,
    filter: 'toolsListChanged',
  },
  prompts: {
    method: 'notifications/prompts/list_changed',
    schema: PromptListChangedNotificationSchema,
    filter: 'promptsListChanged',
  },
  resources: {
    method: 'notifications/resources/list_changed',
    schema: ResourceListChangedNotificationSchema,
    filter: 'resourcesListChanged',
  },
} as const;

/** Both SDKs' options for one request: the caller's signal and progress callback, and a long timeout. */
function requestOptions(call: CallOptions) {
  return {
    ...(call.signal ? { signal: call.signal } : {}),
    ...(call.onprogress ? { onprogress: call.onprogress } : {}),
    timeout: 60_000,
  };
}

/** The params of prompts/get, and of completion/complete for a prompt's argument. */
const promptParams = (name: string, args: Record<string, string> | undefined) => ({
  name,
  ...(args ? { arguments: args } : {}),
});
const completionParams = (prompt: string, argument: string, value: string) => ({
  ref: { type: 'ref/prompt' as const, name: prompt },
  argument: { name: argument, value },
});

/**
 * Starts counting the list_changed notifications of `kinds` in `counts` from zero; `listen` has the client call
 * the counter it is given on each notification of its kind.
 */
function countListChanged(
  counts: Map<ListKind, number>,
  kinds: readonly ListKind[],
  listen: (kind: ListKind, counter: () => void) => void,
): (kind: ListKind) => number {
  for (const kind of kinds) {
    counts.set(kind, 0);
    listen(kind, () => void counts.set(kind, (counts.get(kind) ?? 0) + 1));
  }
  return (kind) => counts.get(kind) ?? 0;
}

/** Connects the agent of `downstream` to the gateway at `mcpUrl` with `secret`. */
export async function connectAgent(
  downstream: DownstreamId,
  mcpUrl: URL,
  secret: string,
  options: AgentOptions = {},
): Promise<MatrixAgent> {
  return downstream === 'v2-http' ? modern(mcpUrl, secret, options) : legacy(downstream, mcpUrl, secret, options);
}

async function legacy(
  downstream: 'v1-http' | 'v1-sse',
  mcpUrl: URL,
  secret: string,
  options: AgentOptions,
): Promise<MatrixAgent> {
  const wire = new Wire();
  const authorization = `Bearer ${secret}`;
  const client = new LegacyClient(
    { name: `matrix-${downstream}`, version: '1.0.0' },
    { capabilities: options.elicit ? { elicitation: {} } : {} },
  );
  if (options.elicit) {
    const elicit = options.elicit;
    client.setRequestHandler(ElicitRequestSchema, async (request) => (await elicit(request.params as Json)) as never);
  }
  const transport =
    downstream === 'v1-http'
      ? new LegacyTransport(mcpUrl, { requestInit: { headers: { authorization } }, fetch: wire.fetch })
      : new SSEClientTransport(new URL('/sse', mcpUrl), {
          requestInit: { headers: { authorization } },
          fetch: wire.fetch,
          eventSourceInit: {
            fetch: (url, init) => {
              const headers = new Headers(init?.headers);
              headers.set('authorization', authorization);
              return fetch(url, { ...init, headers });
            },
          },
        });
  await client.connect(transport);
  client.onerror = () => undefined; // dropped streams are reported here; the runs look at outcomes
  const counts = new Map<ListKind, number>();
  return {
    downstream,
    listTools: async () => (await client.listTools()).tools as Json[],
    listToolsPage: async (cursor) => {
      const page = await client.request(
        { method: 'tools/list', params: cursor === undefined ? {} : { cursor } },
        ListToolsResultSchema,
      );
      return { tools: page.tools as Json[], ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) };
    },
    callTool: async (name, args, call = {}) =>
      (await client.callTool({ name, arguments: args }, undefined, requestOptions(call))) as Json,
    listResources: async () => (await client.listResources()).resources as Json[],
    readResource: async (uri) => (await client.readResource({ uri })) as Json,
    listResourceTemplates: async () => (await client.listResourceTemplates()).resourceTemplates as Json[],
    listPrompts: async () => (await client.listPrompts()).prompts as Json[],
    getPrompt: async (name, args) => (await client.getPrompt(promptParams(name, args))) as Json,
    completePrompt: async (prompt, argument, value) =>
      (await client.complete(completionParams(prompt, argument, value))).completion.values,
    watchListChanged: async (kinds) => {
      const count = countListChanged(counts, kinds, (kind, counter) =>
        client.setNotificationHandler(LIST_CHANGED[kind].schema, counter),
      );
      // Streamable HTTP: notifications travel on the GET stream the SDK opens after initialize; legacy SSE: on the
      // session's stream.
      if (downstream === 'v1-http')
        await eventually("the agent's GET notification stream", () => wire.getStreams > 0, 5_000);
      return { count, close: async () => undefined };
    },
    ...wire.agentView(),
    close: () => client.close(),
  };
}

async function modern(mcpUrl: URL, secret: string, options: AgentOptions): Promise<MatrixAgent> {
  const wire = new Wire();
  const client = new ModernClient(
    { name: 'matrix-v2-http', version: '1.0.0' },
    {
      versionNegotiation: { mode: { pin: MODERN } },
      capabilities: options.elicit ? { elicitation: { form: {} } } : {},
    },
  );
  if (options.elicit) {
    const elicit = options.elicit;
    client.setRequestHandler('elicitation/create', async (request) => (await elicit(request.params as Json)) as never);
  }
  await client.connect(
    new ModernTransport(mcpUrl, { requestInit: { headers: { authorization: `Bearer ${secret}` } }, fetch: wire.fetch }),
  );
  client.onerror = () => undefined;
  const counts = new Map<ListKind, number>();
  // Every list is fetched fresh: the runs compare what the gateway answers now, not the client's cache.
  const fresh = { cacheMode: 'bypass' } as const;
  return {
    downstream: 'v2-http',
    listTools: async () => (await client.listTools(undefined, fresh)).tools as unknown as Json[],
    listToolsPage: async (cursor) => {
      const page = await client.listTools(cursor === undefined ? undefined : { cursor }, fresh);
      return { tools: page.tools as unknown as Json[], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    },
    callTool: async (name, args, call = {}) =>
      (await client.callTool({ name, arguments: args }, requestOptions(call))) as unknown as Json,
    listResources: async () => (await client.listResources(undefined, fresh)).resources as unknown as Json[],
    readResource: async (uri) => (await client.readResource({ uri }, fresh)) as unknown as Json,
    listResourceTemplates: async () =>
      (await client.listResourceTemplates(undefined, fresh)).resourceTemplates as unknown as Json[],
    listPrompts: async () => (await client.listPrompts(undefined, fresh)).prompts as unknown as Json[],
    getPrompt: async (name, args) => (await client.getPrompt(promptParams(name, args))) as unknown as Json,
    completePrompt: async (prompt, argument, value) =>
      (await client.complete(completionParams(prompt, argument, value))).completion.values,
    watchListChanged: async (kinds) => {
      const count = countListChanged(counts, kinds, (kind, counter) =>
        client.setNotificationHandler(LIST_CHANGED[kind].method, counter),
      );
      const subscription = await client.listen(
        Object.fromEntries(kinds.map((kind) => [LIST_CHANGED[kind].filter, true])),
      );
      return { count, close: () => subscription.close() };
    },
    ...wire.agentView(),
    close: () => client.close(),
  };
}
