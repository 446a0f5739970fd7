import type { AdminTokenView } from '../../admins/admin-tokens.ts';
import type { Admin } from '../../admins/roles.ts';
import { parsePage } from '../../services/pagination.ts';
import type { GraphqlContext, PageArgs } from '../context.ts';

export const adminResolvers = {
  /** GraphQL's enum values for the roles as stored. */
  AdminRole: { ADMIN: 'admin', OPERATOR: 'operator', AUDITOR: 'auditor' },
  Query: {
    me: (_: unknown, __: unknown, ctx: GraphqlContext) => ctx.admin,
    adminTokens: (_: unknown, args: PageArgs, ctx: GraphqlContext) => ctx.services.adminTokens.list(parsePage(args)),
  },
  Mutation: {
    createAdminToken: (_: unknown, args: { input: unknown }, ctx: GraphqlContext) =>
      ctx.services.adminTokens.create(args.input, ctx.admin),
    revokeAdminToken: (_: unknown, args: { id: string }, ctx: GraphqlContext) =>
      ctx.services.adminTokens.revoke(args.id),
  },
  AdminToken: {
    revoked: (token: AdminTokenView) => token.revokedAt !== null,
  },
  AdminIdentity: {
    via: (admin: Admin) => admin.via.toUpperCase(),
  },
};
