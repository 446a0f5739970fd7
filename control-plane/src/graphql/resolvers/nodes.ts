import type { DataPlaneNode } from '../../db/entities.ts';
import type { GraphqlContext } from '../context.ts';

export const nodeResolvers = {
  Query: {
    nodes: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.nodes.list(),
    config: async (_: unknown, __: unknown, ctx: GraphqlContext) => ({ version: await ctx.services.configVersion() }),
  },
  DataPlaneNode: {
    upstreams: (node: DataPlaneNode, _: unknown, ctx: GraphqlContext) => ctx.loaders.statusOfNode.load(node.id),
  },
};
