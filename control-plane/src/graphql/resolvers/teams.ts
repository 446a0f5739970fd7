import { parsePage } from '../../services/pagination.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

export const teamResolvers = {
  Query: {
    teams: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.teams.list(parsePage(args)),
  },
  Mutation: {
    createTeam: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.teams.create(args.input),
  },
};
