import type { DataPlaneNode } from '../../db/entities.ts';
import { parsePage } from '../../services/pagination.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

export const nodeResolvers = {
  Query: {
    nodes: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.nodes.list(parsePage(args)),
    config: async (_: unknown, __: unknown, ctx: GraphqlContext) => ({ version: await ctx.services.configVersion() }),
  },
  DataPlaneNode: {
    upstreams: (node: DataPlaneNode, _: unknown, ctx: GraphqlContext) => ctx.loaders.statusOfNode.load(node.id),
  },
};
