/**
 * Several data-plane nodes in one process, for the config-propagation rows that share processes
 * (the issue allows it for N = 16 when documented): each node is what `portcullis data-plane`
 * starts (its own port, node id, config stream and HTTP server), only the event loop is shared.
 *
 * PORTCULLIS_NODE_TOKEN=T tsx bench/src/scenarios/node-group.ts --control-plane host:port --log-level warn --node
 * <id>:<port> [--node <id>:<port> …]
 *
 * Each node prints `MCP endpoint: <url>` as it listens, as the CLI does (the same function starts it).
 */
import { startDataPlaneFromArgs } from '../../../cli/src/commands/data-plane.ts';
import { closeOnSignals } from '../../../cli/src/commands/lifecycle.ts';
import type { DataPlane } from '../../../data-plane/src/index.ts';

function parse(argv: readonly string[]): { shared: string[]; nodes: Array<{ id: string; port: string }> } {
  const shared: string[] = [];
  const nodes: Array<{ id: string; port: string }> = [];
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag !== '--node') {
      shared.push(flag, value);
      continue;
    }
    const [id, port] = value.split(':');
    if (!id || !port) throw new Error(`--node ${value}: expected <id>:<port>`);
    nodes.push({ id, port });
  }
  if (nodes.length === 0) throw new Error('at least one --node <id>:<port> is required');
  return { shared, nodes };
}

const { shared, nodes } = parse(process.argv.slice(2));
const running: DataPlane[] = [];
for (const node of nodes) {
  const { node: started, logger } = await startDataPlaneFromArgs(
    [...shared, '--node-id', node.id, '--port', node.port],
    { PORTCULLIS_NODE_TOKEN: process.env['PORTCULLIS_NODE_TOKEN'] },
  );
  running.push(started);
  if (running.length === 1)
    closeOnSignals(async () => void (await Promise.allSettled(running.map((n) => n.close()))), logger);
}
