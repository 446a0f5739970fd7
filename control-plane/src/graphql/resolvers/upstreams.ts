import type { Tool, UpstreamNodeStatus } from '../../db/entities.ts';
import type { UpstreamView } from '../../services/upstreams.ts';
import type { GraphqlContext } from '../context.ts';

export const upstreamResolvers = {
  Query: {
    upstreams: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.upstreams.list(),
    upstream: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.upstreams.get(args.id),
    tools: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.catalog.allTools(),
  },
  Mutation: {
    createUpstream: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.upstreams.create(args.input),
    deleteUpstream: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.upstreams.delete(args.id),
  },
  Upstream: {
    tools: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => ctx.loaders.toolsOfUpstream.load(upstream.id),
    status: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => ctx.loaders.statusOfUpstream.load(upstream.id),
  },
  Tool: {
    exposedName: async (tool: Tool, _: unknown, ctx: GraphqlContext) => {
      const upstream = await ctx.loaders.upstream.load(tool.upstreamId);
      return `${upstream?.name ?? '?'}__${tool.name}`;
    },
    inputSchema: (tool: Tool) => JSON.stringify(tool.definition['inputSchema'] ?? { type: 'object' }),
    upstream: async (tool: Tool, _: unknown, ctx: GraphqlContext) => ctx.loaders.upstream.load(tool.upstreamId),
  },
  UpstreamNodeStatus: {
    nodeId: (row: UpstreamNodeStatus) => row.nodeId,
  },
};
