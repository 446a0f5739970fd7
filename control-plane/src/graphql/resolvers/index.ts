import { approvalResolvers } from './approvals.ts';
import { auditResolvers } from './audit.ts';
import { declarativeResolvers, JsonScalar } from './declarative.ts';
import { adminResolvers } from './admins.ts';
import { mcpAuthorizationResolvers } from './mcp-authorization.ts';
import { nodeResolvers } from './nodes.ts';
import { policyResolvers } from './policies.ts';
import { DateTimeScalar } from './scalars.ts';
import { subscriptionResolvers } from './subscriptions.ts';
import { teamResolvers } from './teams.ts';
import { upstreamResolvers } from './upstreams.ts';
import { virtualKeyResolvers } from './virtual-keys.ts';

/** Resolvers of every domain, merged into one map for Apollo. */
export const resolvers = {
  DateTime: DateTimeScalar,
  JSON: JsonScalar,
  Query: {
    ...upstreamResolvers.Query,
    ...virtualKeyResolvers.Query,
    ...teamResolvers.Query,
    ...nodeResolvers.Query,
    ...approvalResolvers.Query,
    ...mcpAuthorizationResolvers.Query,
    ...adminResolvers.Query,
    ...auditResolvers.Query,
    ...declarativeResolvers.Query,
  },
  Mutation: {
    ...upstreamResolvers.Mutation,
    ...virtualKeyResolvers.Mutation,
    ...teamResolvers.Mutation,
    ...policyResolvers.Mutation,
    ...approvalResolvers.Mutation,
    ...mcpAuthorizationResolvers.Mutation,
    ...auditResolvers.Mutation,
    ...adminResolvers.Mutation,
    ...declarativeResolvers.Mutation,
  },
  Subscription: subscriptionResolvers.Subscription,
  Approval: approvalResolvers.Approval,
  Upstream: { ...upstreamResolvers.Upstream, ...policyResolvers.Upstream },
  Tool: upstreamResolvers.Tool,
  ToolDefinitionChange: upstreamResolvers.ToolDefinitionChange,
  UpstreamPrompt: upstreamResolvers.UpstreamPrompt,
  UpstreamPromptArgument: upstreamResolvers.UpstreamPromptArgument,
  UpstreamResource: upstreamResolvers.UpstreamResource,
  UpstreamResourceTemplate: upstreamResolvers.UpstreamResourceTemplate,
  UpstreamCatalogList: upstreamResolvers.UpstreamCatalogList,
  DataPlaneNode: nodeResolvers.DataPlaneNode,
  UpstreamNodeStatus: upstreamResolvers.UpstreamNodeStatus,
  VirtualKey: { ...virtualKeyResolvers.VirtualKey, ...policyResolvers.VirtualKey },
  Team: { ...teamResolvers.Team, ...policyResolvers.Team },
  Customer: teamResolvers.Customer,
  ToolPrice: teamResolvers.ToolPrice,
  McpAuthorization: mcpAuthorizationResolvers.McpAuthorization,
  AdminRole: adminResolvers.AdminRole,
  AdminToken: adminResolvers.AdminToken,
  AdminIdentity: adminResolvers.AdminIdentity,
  ClaimTeamMapping: mcpAuthorizationResolvers.ClaimTeamMapping,
};
