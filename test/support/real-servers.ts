import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, ClientCapabilities, Tool } from '@modelcontextprotocol/sdk/types.js';
import { REPO_ROOT } from './processes.ts';

/**
 * Real MCP servers from npm (devDependencies, pinned), as a user would put them behind the gateway:
 * started over stdio with fake credentials, which is enough for each to start and list its tools
 * without the internet. `calls` are the calls that work offline (for the servers that reach a
 * vendor's API, calls with arguments the server refuses itself, before any request).
 */
export interface RealServer {
  /** The upstream's name in the gateway, so its tools are `<name>__<tool>`. */
  readonly name: string;
  /** Who wrote it (the suite wants varied authorship). */
  readonly author: string;
  /** The npm package and its script, relative to the package. */
  readonly pkg: string;
  readonly script: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly calls: readonly { readonly name: string; readonly arguments: Record<string, unknown> }[];
}

/** What the servers need from the test: a scratch directory and the loopback API behind the OpenAPI server. */
export interface RealServerContext {
  readonly scratch: string;
  readonly apiUrl: string;
}

/** A Twilio-style account SID and API key: the server checks their shape at start, never their validity offline. */
const TWILIO_CREDENTIALS = `AC${'0'.repeat(32)}/SK${'0'.repeat(32)}:not-a-secret`;

/** The servers of the suite, for one side (direct or through the gateway): `side` keeps their state files apart. */
export function realServers(context: RealServerContext, side: string): RealServer[] {
  const files = join(context.scratch, 'files');
  return [
    {
      name: 'everything',
      author: 'MCP steering group (reference)',
      pkg: '@modelcontextprotocol/server-everything',
      script: 'dist/index.js',
      args: ['stdio'],
      env: {},
      calls: [
        { name: 'echo', arguments: { message: 'through the gateway' } },
        { name: 'get-sum', arguments: { a: 2, b: 40 } },
        { name: 'get-structured-content', arguments: { location: 'Chicago' } },
        { name: 'get-annotated-message', arguments: { messageType: 'success', includeImage: true } },
        { name: 'get-tiny-image', arguments: {} },
      ],
    },
    {
      name: 'memory',
      author: 'MCP steering group (reference)',
      pkg: '@modelcontextprotocol/server-memory',
      script: 'dist/index.js',
      args: [],
      env: { MEMORY_FILE_PATH: join(context.scratch, `memory-${side}.jsonl`) },
      calls: [
        {
          name: 'create_entities',
          arguments: {
            entities: [
              { name: 'portcullis', entityType: 'gateway', observations: ['relays MCP'] },
              { name: 'agent', entityType: 'client', observations: [] },
            ],
          },
        },
        {
          name: 'create_relations',
          arguments: { relations: [{ from: 'agent', to: 'portcullis', relationType: 'connects to' }] },
        },
        { name: 'read_graph', arguments: {} },
        { name: 'search_nodes', arguments: { query: 'gateway' } },
      ],
    },
    {
      name: 'fs',
      author: 'MCP steering group (reference)',
      pkg: '@modelcontextprotocol/server-filesystem',
      script: 'dist/index.js',
      args: [files],
      env: {},
      calls: [
        { name: 'list_allowed_directories', arguments: {} },
        { name: 'list_directory', arguments: { path: files } },
        { name: 'read_text_file', arguments: { path: join(files, 'note.txt') } },
        { name: 'directory_tree', arguments: { path: files } },
        { name: 'read_text_file', arguments: { path: '/etc/hostname' } },
      ],
    },
    {
      name: 'thinking',
      author: 'MCP steering group (reference)',
      pkg: '@modelcontextprotocol/server-sequential-thinking',
      script: 'dist/index.js',
      args: [],
      env: { DISABLE_THOUGHT_LOGGING: 'true' },
      calls: [
        {
          name: 'sequentialthinking',
          arguments: {
            thought: 'List what the gateway relays.',
            thoughtNumber: 1,
            totalThoughts: 2,
            nextThoughtNeeded: true,
          },
        },
        {
          name: 'sequentialthinking',
          arguments: {
            thought: 'Compare it with the server.',
            thoughtNumber: 2,
            totalThoughts: 2,
            nextThoughtNeeded: false,
          },
        },
      ],
    },
    {
      name: 'openapi',
      author: 'ivo-toby (community)',
      pkg: '@ivotoby/openapi-mcp-server',
      script: 'bin/mcp-server.js',
      args: ['--api-base-url', context.apiUrl, '--openapi-spec', join(context.scratch, 'notes-api.json')],
      env: {},
      calls: [
        { name: 'get-note', arguments: { id: 7 } },
        { name: 'lst-notes', arguments: { limit: 2 } },
      ],
    },
    {
      name: 'playwright',
      author: 'Microsoft',
      pkg: '@playwright/mcp',
      script: 'cli.js',
      args: ['--headless', '--isolated'],
      env: {},
      calls: [{ name: 'browser_close', arguments: {} }],
    },
    {
      name: 'context7',
      author: 'Upstash',
      pkg: '@upstash/context7-mcp',
      script: 'dist/index.js',
      args: [],
      env: { CONTEXT7_API_KEY: 'ctx7sk-not-a-key' },
      calls: [{ name: 'query-docs', arguments: {} }],
    },
    {
      name: 'tavily',
      author: 'Tavily',
      pkg: 'tavily-mcp',
      script: 'build/index.js',
      args: [],
      env: { TAVILY_API_KEY: 'tvly-not-a-key' },
      calls: [],
    },
    {
      name: 'brave',
      author: 'Brave',
      pkg: '@brave/brave-search-mcp-server',
      script: 'dist/index.js',
      args: [],
      env: { BRAVE_API_KEY: 'not-a-key' },
      calls: [{ name: 'brave_web_search', arguments: {} }],
    },
    {
      name: 'notion',
      author: 'Notion',
      pkg: '@notionhq/notion-mcp-server',
      script: 'bin/cli.mjs',
      args: [],
      env: { NOTION_TOKEN: 'ntn_not_a_token' },
      calls: [],
    },
    {
      name: 'hubspot',
      author: 'HubSpot',
      pkg: '@hubspot/mcp-server',
      script: 'dist/index.js',
      args: [],
      env: { PRIVATE_APP_ACCESS_TOKEN: 'pat-not-a-token' },
      calls: [{ name: 'hubspot-get-schemas', arguments: { objectType: 42 } }],
    },
    {
      name: 'twilio',
      author: 'Twilio',
      pkg: '@twilio-alpha/mcp',
      script: 'build/index.js',
      args: [TWILIO_CREDENTIALS],
      env: {},
      calls: [],
    },
  ];
}

/** The absolute path of a server's script in node_modules. */
export function serverScript(server: RealServer): string {
  return resolve(REPO_ROOT, 'node_modules', server.pkg, server.script);
}

/**
 * A small OpenAPI document (built here rather than copied) for the OpenAPI server: three
 * operations on notes, served by `startNotesApi`.
 */
function notesApiSpec(): object {
  const ok = { '200': { description: 'the request as the API received it' } };
  return {
    openapi: '3.0.3',
    info: { title: 'Notes', version: '1.0.0' },
    paths: {
      '/notes/{id}': {
        get: {
          operationId: 'getNote',
          summary: 'Fetch one note',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
          responses: ok,
        },
      },
      '/notes': {
        get: {
          operationId: 'listNotes',
          summary: 'List notes',
          parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer' } }],
          responses: ok,
        },
        post: {
          operationId: 'createNote',
          summary: 'Create a note',
          responses: ok,
          requestBody: {
            content: {
              'application/json': {
                schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
              },
            },
          },
        },
      },
    },
  };
}

/** Writes what the servers read (the filesystem server's files, the OpenAPI document) into `scratch`. */
export function writeServerFiles(scratch: string): void {
  const files = join(scratch, 'files');
  mkdirSync(join(files, 'sub'), { recursive: true });
  writeFileSync(join(files, 'note.txt'), 'Portcullis relays this file unchanged.\n');
  writeFileSync(join(files, 'sub', 'data.json'), '{"answer":42}\n');
  writeFileSync(join(scratch, 'notes-api.json'), JSON.stringify(notesApiSpec()));
}

/** The loopback HTTP API behind the OpenAPI server: answers every request with what it received. */
export async function startNotesApi(): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ method: request.method, url: request.url, body }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/**
 * What the agents of the suite declare: everything the gateway declares to its upstreams. Servers
 * choose their tools by the client's capabilities (server-everything offers its roots, sampling and
 * elicitation tools only to a client that declares them), and the gateway holds one connection per
 * upstream for every agent, declaring them all; so the same tools only for an agent that does too.
 */
const CAPABLE_AGENT: ClientCapabilities = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
};
const AGENT_INFO = { name: 'portcullis-test-agent', version: '1.0.0' };

/** The official SDK v1 client connected straight to the server over stdio, as an agent configured without a gateway. */
export async function connectDirect(server: RealServer): Promise<Client> {
  const client = new Client(AGENT_INFO, { capabilities: CAPABLE_AGENT });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [serverScript(server), ...server.args],
    env: { ...server.env },
    stderr: 'ignore',
    cwd: REPO_ROOT,
  });
  // Twelve servers start at once on two shared cores: a start can take a minute when the machine is busy.
  await client.connect(transport, { timeout: 120_000 });
  return client;
}

/** The same agent (SDK v1 client, protocol 2025-11-25) connected to a gateway node with a key. */
export async function connectThroughGateway(mcpUrl: string, key: string): Promise<Client> {
  const client = new Client(AGENT_INFO, { capabilities: CAPABLE_AGENT });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

/** Every page of tools/list. */
export async function listAllTools(client: Client): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return tools;
}

/** A tools/call whose failure (a protocol error) is kept as a value, so both sides' outcomes compare. */
export async function callOutcome(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<CallToolResult | { protocolError: { code: number; message: string } }> {
  try {
    return (await client.callTool({ name, arguments: args }, undefined, { timeout: 30_000 })) as CallToolResult;
  } catch (error) {
    const { code, message } = error as { code: number; message: string };
    return { protocolError: { code, message } };
  }
}
