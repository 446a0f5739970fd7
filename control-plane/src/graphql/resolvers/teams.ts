import type { GraphqlContext } from '../context.ts';

export const teamResolvers = {
  Query: {
    teams: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.teams.list(),
  },
  Mutation: {
    createTeam: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.teams.create(args.input),
  },
};
