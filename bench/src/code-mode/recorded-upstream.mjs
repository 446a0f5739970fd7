/**
 * The recorded-catalog upstream: `node bench/src/code-mode/recorded-upstream.mjs <catalog.json>` serves one
 * recorded catalog (bench/fixtures/catalogs/<server>.json) over stdio with the official MCP SDK (low-level
 * `Server`, so the definitions go out exactly as recorded): `tools/list` is the recorded tools, `tools/call`
 * answers with `fakeResult` (fake-results.mjs: deterministic, computable from the call). Plain JavaScript, so
 * a gateway starts many of them without a compiler.
 */
import { readFileSync } from 'node:fs';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { fakeResult } from './fake-results.mjs';

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write('usage: recorded-upstream.mjs <catalog.json>\n');
  process.exit(2);
}
const catalog = JSON.parse(readFileSync(file, 'utf8'));
const byName = new Map(catalog.tools.map((tool) => [tool.name, tool]));

const server = new Server(
  { name: `recorded-${catalog.server}`, version: catalog.version },
  { capabilities: { tools: {} } },
);
server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: catalog.tools }));
server.setRequestHandler(CallToolRequestSchema, (request) => {
  const tool = byName.get(request.params.name);
  // -32602 (invalid params) for an unknown tool, as the SDK's own McpServer answers it.
  if (tool === undefined) throw new McpError(-32602, `Tool ${request.params.name} not found`);
  return fakeResult(catalog.server, tool, request.params.arguments ?? {});
});
await server.connect(new StdioServerTransport());
