import type { Tool, ToolDefinitionChange, UpstreamNodeStatus } from '../../db/entities.ts';
import { exposedName } from '../../services/exposed-names.ts';
import type { UpstreamView } from '../../services/upstreams.ts';
import type { GraphqlContext } from '../context.ts';

export const upstreamResolvers = {
  Query: {
    upstreams: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.upstreams.list(),
    upstream: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.upstreams.get(args.id),
    tools: (_: unknown, args: { heldBack?: boolean | null }, ctx: GraphqlContext) => ctx.services.catalog.allTools({ heldBack: args.heldBack ?? null }),
    tool: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.catalog.getTool(args.id),
  },
  Mutation: {
    createUpstream: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.upstreams.create(args.input),
    updateUpstream: (_: unknown, args: { id: string; input: unknown }, ctx: GraphqlContext) => ctx.services.upstreams.update(args.id, args.input),
    setUpstreamEnabled: (_: unknown, args: { id: string; enabled: boolean }, ctx: GraphqlContext) => ctx.services.upstreams.setEnabled(args.id, args.enabled),
    deleteUpstream: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.upstreams.delete(args.id),
    acceptToolDefinition: (_: unknown, args: { toolId: string; sha256?: string | null }, ctx: GraphqlContext) => ctx.services.catalog.acceptDefinition(args.toolId, args.sha256),
    rotateSecrets: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.upstreams.rotateSecrets(),
  },
  Upstream: {
    tools: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => ctx.loaders.toolsOfUpstream.load(upstream.id),
    status: (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => ctx.loaders.statusOfUpstream.load(upstream.id),
    catalogError: async (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => (await ctx.loaders.collisions.load(upstream.id))?.message ?? null,
    collidingNames: async (upstream: UpstreamView, _: unknown, ctx: GraphqlContext) => (await ctx.loaders.collisions.load(upstream.id))?.names ?? [],
  },
  Tool: {
    exposedName: async (tool: Tool, _: unknown, ctx: GraphqlContext) => {
      const upstream = await ctx.loaders.upstream.load(tool.upstreamId);
      return exposedName(upstream?.name ?? '?', tool.name, upstream?.exposeUnprefixed ?? false);
    },
    inputSchema: (tool: Tool) => JSON.stringify(tool.definition['inputSchema'] ?? { type: 'object' }),
    definition: (tool: Tool) => JSON.stringify(tool.definition),
    upstream: async (tool: Tool, _: unknown, ctx: GraphqlContext) => ctx.loaders.upstream.load(tool.upstreamId),
    heldBack: (tool: Tool) => tool.pendingSha256 !== null,
    pendingDefinition: (tool: Tool) => (tool.pendingDefinition === null ? null : JSON.stringify(tool.pendingDefinition)),
    changes: (tool: Tool, _: unknown, ctx: GraphqlContext) => ctx.loaders.changesOfTool.load(tool.id),
  },
  ToolDefinitionChange: {
    definition: (change: ToolDefinitionChange) => (change.definition === null ? null : JSON.stringify(change.definition)),
  },
  UpstreamNodeStatus: {
    nodeId: (row: UpstreamNodeStatus) => row.nodeId,
    upstream: (row: UpstreamNodeStatus, _: unknown, ctx: GraphqlContext) => ctx.loaders.upstream.load(row.upstreamId),
  },
};
