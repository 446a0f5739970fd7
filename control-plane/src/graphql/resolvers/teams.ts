import { resolveAccessLists } from '../../../../common/src/index.ts';
import type { AccessListsJson, Customer, RateLimitsJson, Team } from '../../db/entities.ts';
import { parsePage } from '../../services/pagination.ts';
import type { ToolPriceView } from '../../services/prices.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

/** The access-list fields of Team and VirtualKey: as set, or (prompts, resources) null when following the tools. */
export function accessListResolvers<T>(access: (parent: T) => AccessListsJson) {
  return {
    deniedTools: (parent: T) => access(parent).deniedTools ?? [],
    allowedPrompts: (parent: T) => access(parent).allowedPrompts ?? null,
    deniedPrompts: (parent: T) => access(parent).deniedPrompts ?? [],
    allowedResources: (parent: T) => access(parent).allowedResources ?? null,
    deniedResources: (parent: T) => access(parent).deniedResources ?? [],
    effectiveAccess: (parent: T) => resolveAccessLists(access(parent)),
  };
}

/** RateLimits as GraphQL shows them: null when none is set. */
export function rateLimitsView(stored: RateLimitsJson) {
  if (!stored.requestsPerMinute && !stored.toolCallsPerMinute) return null;
  return {
    requestsPerMinute: stored.requestsPerMinute ?? null,
    toolCallsPerMinute: stored.toolCallsPerMinute ?? null,
    burst: stored.burst ?? null,
  };
}

export const teamResolvers = {
  Query: {
    teams: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.teams.list(parsePage(args)),
    customers: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.teams.listCustomers(parsePage(args)),
    toolPrices: (_: unknown, _args: unknown, ctx: GraphqlContext) => ctx.services.prices.list(),
    budgets: (_: unknown, args: { at?: Date | null }, ctx: GraphqlContext) =>
      ctx.services.budgets.usage(undefined, args.at ?? undefined),
  },
  Mutation: {
    createTeam: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.teams.create(args.input),
    updateTeam: (_: unknown, args: { id: string; input: unknown }, ctx: GraphqlContext) =>
      ctx.services.teams.update(args.id, args.input),
    createCustomer: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) =>
      ctx.services.teams.createCustomer(args.input),
    updateCustomer: (_: unknown, args: { id: string; input: unknown }, ctx: GraphqlContext) =>
      ctx.services.teams.updateCustomer(args.id, args.input),
    deleteTeam: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.teams.delete(args.id),
    deleteCustomer: (_: unknown, args: { id: string }, ctx: GraphqlContext) =>
      ctx.services.teams.deleteCustomer(args.id),
    setToolPrice: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.prices.set(args.input),
    setBudget: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) => ctx.services.budgets.set(args.input),
    removeBudget: (_: unknown, args: { id: string }, ctx: GraphqlContext) => ctx.services.budgets.remove(args.id),
  },
  Team: {
    customer: (team: Team, _: unknown, ctx: GraphqlContext) =>
      team.customerId ? ctx.loaders.customer.load(team.customerId) : null,
    allowedTools: (team: Team) => team.access.allowedTools ?? ['*'],
    ...accessListResolvers((team: Team) => team.access),
    rateLimits: (team: Team) => rateLimitsView(team.rateLimits),
  },
  ToolPrice: {
    upstream: (price: ToolPriceView, _: unknown, ctx: GraphqlContext) => ctx.loaders.upstream.load(price.upstreamId),
  },
  Customer: {
    teams: (customer: Customer, _: unknown, ctx: GraphqlContext) => ctx.services.teams.teamsOf(customer.id),
    rateLimits: (customer: Customer) => rateLimitsView(customer.rateLimits),
  },
};
