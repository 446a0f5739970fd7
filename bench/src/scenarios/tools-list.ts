import { resolve } from 'node:path';
import { BENCH_SRC } from '../processes.ts';
import type { LoadTarget } from '../load/protocol.ts';
import { graphql, waitUntilServed, type GatewayUnderTest } from '../targets/portcullis.ts';
import type { MeasureTarget } from './measure.ts';

/**
 * `tools/list` latency with 10, 100 and 1,000 upstream tools: directly against a synthetic stdio server
 * offering that many tools, and through the gateway with one upstream and one key per tool count (so
 * each key sees exactly that upstream's tools), with as many other keys configured as the run seeded.
 */

export const TOOL_COUNTS = [10, 100, 1_000] as const;

const MANY_TOOLS = resolve(BENCH_SRC, 'upstreams/many-tools.ts');
const TSX = import.meta.resolve('tsx');

export function manyToolsCommand(tools: number): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', TSX, MANY_TOOLS, String(tools)] };
}

export function directToolsListTargets(): MeasureTarget[] {
  return TOOL_COUNTS.map((tools) => ({
    upstream: 'stdio',
    path: 'direct',
    load: { transport: 'stdio', ...manyToolsCommand(tools) } satisfies LoadTarget,
    operation: { method: 'tools/list', expectTools: tools },
    upstreamTools: tools,
  }));
}

/** Registers upstream `mt<N>` and a key allowed `mt<N>__*` for each tool count; the targets use those keys. */
export async function gatewayToolsListTargets(gateway: GatewayUnderTest): Promise<MeasureTarget[]> {
  const targets: MeasureTarget[] = [];
  for (const tools of TOOL_COUNTS) {
    const name = `mt${tools}`;
    const { command, args } = manyToolsCommand(tools);
    await graphql(
      gateway.graphqlUrl,
      gateway.adminToken,
      `mutation { createUpstream(input: {name: "${name}", transport: STDIO, command: ${JSON.stringify(command)}, ` +
        `args: ${JSON.stringify(args)}}) { id } }`,
    );
    const created = await graphql<{ createVirtualKey: { secret: string } }>(
      gateway.graphqlUrl,
      gateway.adminToken,
      `mutation { createVirtualKey(input: {name: "bench-${name}", allowedTools: ["${name}__*"]}) { secret } }`,
    );
    const secret = created.createVirtualKey.secret;
    const operation = { method: 'tools/list', expectTools: tools } as const;
    await waitUntilServed(gateway, operation, secret);
    targets.push({
      upstream: 'stdio',
      path: 'portcullis',
      load: { transport: 'http', url: gateway.mcpUrl, headers: { authorization: `Bearer ${secret}` } },
      operation,
      upstreamTools: tools,
      pid: gateway.pid,
    });
  }
  return targets;
}

/**
 * Creates keys through GraphQL's bulk `createVirtualKeys` (1,000 a request, one config revision each)
 * until `total` exist or `budgetMs` is spent; returns how many were created.
 */
export async function seedKeys(
  gateway: Pick<GatewayUnderTest, 'graphqlUrl' | 'adminToken'>,
  total: number,
  budgetMs: number,
): Promise<number> {
  const started = Date.now();
  let created = 0;
  while (created < total && Date.now() - started < budgetMs) {
    const batch = Math.min(1000, total - created);
    const inputs = Array.from({ length: batch }, (_, i) => ({
      name: `seed-${created + i}`,
      allowedTools: ['ev__echo'],
    }));
    await graphql(
      gateway.graphqlUrl,
      gateway.adminToken,
      // A variable, not an inline literal: the control plane counts the document's tokens (2,000 at most by
      // default), and 1,000 keys written inline are about 10,000.
      'mutation ($inputs: [CreateVirtualKeyInput!]!) { createVirtualKeys(inputs: $inputs) { key { id } } }',
      { inputs },
    );
    created += batch;
  }
  return created;
}
