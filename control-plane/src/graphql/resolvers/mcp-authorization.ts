import type { McpAuthorizationView } from '../../services/mcp-authorization.ts';
import type { GraphqlContext } from '../context.ts';

type MappingView = McpAuthorizationView['identityProviders'][number]['teams'][number];

/** RFC 9728 §3.1: the well-known path, then the resource's own path. */
function metadataUrl(resource: string): string {
  const url = new URL(resource);
  const suffix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${suffix}`;
}

export const mcpAuthorizationResolvers = {
  Query: {
    mcpAuthorization: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.services.mcpAuthorization.get(),
  },
  Mutation: {
    setMcpAuthorization: (_: unknown, args: { input?: unknown }, ctx: GraphqlContext) =>
      ctx.services.mcpAuthorization.set(args.input ?? null),
  },
  McpAuthorization: {
    metadataUrl: (view: McpAuthorizationView) => metadataUrl(view.resource),
  },
  ClaimTeamMapping: {
    team: (mapping: MappingView, _: unknown, ctx: GraphqlContext) =>
      mapping.teamId === null ? null : ctx.loaders.team.load(mapping.teamId),
  },
};
