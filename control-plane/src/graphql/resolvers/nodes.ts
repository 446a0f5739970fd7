import type { GraphqlContext } from '../context.ts';

export const nodeResolvers = {
  Query: {
    nodes: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.nodes.list(),
    config: async (_: unknown, __: unknown, ctx: GraphqlContext) => ({ version: await ctx.services.configVersion() }),
  },
};
