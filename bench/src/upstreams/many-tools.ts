/**
 * A stdio MCP server offering N tools (argv[2]), for the tools/list rows: newline-delimited JSON-RPC,
 * answers `initialize`, `ping`, `tools/list` (every tool with a small, realistic input schema) and
 * `tools/call` (echo). Anything else gets "method not found", so a 2026-era client's `server/discover`
 * probe falls back to the 2025 handshake.
 */

const count = Number(process.argv[2] ?? '10');
const SUPPORTED = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];

const tools = Array.from({ length: count }, (_, i) => {
  const name = `tool_${String(i).padStart(4, '0')}`;
  return {
    name,
    description: `Synthetic tool ${i} of ${count}: looks up records by query and returns at most \`limit\` of them.`,
    inputSchema: {
      type: 'object',
      properties: {
        query: { type: 'string', description: 'What to look for' },
        limit: { type: 'integer', minimum: 1, maximum: 100, description: 'How many results at most' },
        mode: { type: 'string', enum: ['fast', 'thorough'], description: 'Search mode' },
      },
      required: ['query'],
    },
  };
});
const listResult = { tools };

function reply(id: unknown, body: { result: unknown } | { error: { code: number; message: string } }): void {
  process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, ...body })}\n`);
}

function handle(message: { id?: unknown; method?: string; params?: Record<string, unknown> }): void {
  if (message.id === undefined || message.method === undefined) return; // notifications and responses
  switch (message.method) {
    case 'initialize': {
      const asked = String(message.params?.protocolVersion ?? '');
      reply(message.id, {
        result: {
          protocolVersion: SUPPORTED.includes(asked) ? asked : SUPPORTED[0],
          capabilities: { tools: {} },
          serverInfo: { name: 'bench-many-tools', version: '0.1.0' },
        },
      });
      return;
    }
    case 'ping':
      reply(message.id, { result: {} });
      return;
    case 'tools/list':
      reply(message.id, { result: listResult });
      return;
    case 'tools/call': {
      const args = (message.params?.arguments ?? {}) as Record<string, unknown>;
      reply(message.id, { result: { content: [{ type: 'text', text: `Echo: ${JSON.stringify(args)}` }] } });
      return;
    }
    default:
      reply(message.id, { error: { code: -32601, message: `Method not found: ${message.method}` } });
  }
}

let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buffered += chunk;
  let newline: number;
  while ((newline = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (!line.trim()) continue;
    try {
      handle(JSON.parse(line) as Parameters<typeof handle>[0]);
    } catch {
      reply(null, { error: { code: -32700, message: 'Parse error' } });
    }
  }
});
process.stdin.on('end', () => process.exit(0));
