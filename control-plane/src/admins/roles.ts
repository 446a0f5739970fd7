import { defaultFieldResolver, type GraphQLSchema, isObjectType } from 'graphql';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';

/**
 * `admin`: everything. `operator`: upstreams, keys, teams, approvals (and reads). `auditor`:
 * read-only (configuration, audit, usage), never a change.
 */
export type AdminRole = 'admin' | 'operator' | 'auditor';
export const ADMIN_ROLES: readonly AdminRole[] = ['admin', 'operator', 'auditor'];

/** Who is calling the GraphQL API, as its credential says. */
export interface Admin {
  readonly role: AdminRole;
  /** `bootstrap`: the control plane's own admin token; `token`: a per-person admin token; `oidc`: a JWT. */
  readonly via: 'bootstrap' | 'token' | 'oidc';
  /** The token's name, or the JWT's subject (for logs and, later, audit of admin actions). */
  readonly subject: string;
  /** The admin token's id (via `token`). */
  readonly tokenId?: string;
}

/** Role sets for FIELD_ROLES and `requireRole`. */
export const EVERYONE: readonly AdminRole[] = ADMIN_ROLES;
export const OPERATORS: readonly AdminRole[] = ['admin', 'operator'];
export const ADMINS: readonly AdminRole[] = ['admin'];
/** Reads of audit records and usage, when a field should be closed to operators: admins and auditors. */
export const AUDITORS: readonly AdminRole[] = ['admin', 'auditor'];

/**
 * Who may resolve which field: the one place roles are decided. A `Mutation` field not listed
 * here is `admin`-only (a new mutation is safe before anyone lists it); any other field not listed
 * is readable by every role. Add a line when adding an operation (e.g. approvals:
 * `'Mutation.decideApproval': OPERATORS`).
 */
export const FIELD_ROLES: Readonly<Record<string, readonly AdminRole[]>> = {
  'Mutation.createUpstream': OPERATORS,
  'Mutation.updateUpstream': OPERATORS,
  'Mutation.setUpstreamEnabled': OPERATORS,
  'Mutation.deleteUpstream': OPERATORS,
  'Mutation.acceptToolDefinition': OPERATORS,
  'Mutation.createVirtualKey': OPERATORS,
  'Mutation.createVirtualKeys': OPERATORS,
  'Mutation.revokeVirtualKey': OPERATORS,
  'Mutation.createTeam': OPERATORS,
  'Mutation.updateVirtualKey': OPERATORS,
  'Mutation.rotateVirtualKey': OPERATORS,
  'Mutation.setVirtualKeyEnabled': OPERATORS,
  'Mutation.updateTeam': OPERATORS,
  'Mutation.createCustomer': OPERATORS,
  'Mutation.updateCustomer': OPERATORS,
  'Mutation.deleteTeam': OPERATORS,
  'Mutation.deleteCustomer': OPERATORS,
  // Money: prices and budgets stay with admins.
  'Mutation.setToolPrice': ADMINS,
  'Mutation.setBudget': ADMINS,
  'Mutation.removeBudget': ADMINS,
  // A whole configuration at once (prices and budgets included): admins.
  'Mutation.applyConfig': ADMINS,
  'Mutation.setToolPolicies': OPERATORS,
  'Mutation.approveCall': OPERATORS,
  'Mutation.denyCall': OPERATORS,
  // Re-encrypting credentials, who signs in and who administers: admins only.
  'Mutation.rotateSecrets': ADMINS,
  'Mutation.setMcpAuthorization': ADMINS,
  // What the audit trail keeps of calls (privacy and evidence): admins.
  'Mutation.setAuditSettings': ADMINS,
  'Mutation.createAdminToken': ADMINS,
  'Mutation.revokeAdminToken': ADMINS,
  // Live streams (graphql-ws): the audit trail as it is stored; held calls to decide.
  'Subscription.auditEventAdded': AUDITORS,
  'Subscription.approvalRequested': OPERATORS,
  // Sensitive reads.
  'Query.adminTokens': ADMINS,
  'Query.me': EVERYONE,
};

/** The roles that may resolve `type.field` (see FIELD_ROLES). */
export function rolesFor(type: string, field: string, isMutation: boolean): readonly AdminRole[] {
  return FIELD_ROLES[`${type}.${field}`] ?? (isMutation ? ADMINS : EVERYONE);
}

/**
 * Refuses unless the caller's role is one of `roles` (FORBIDDEN, naming the roles that may). FIELD_ROLES
 * covers whole fields; call this inside a resolver only for a check that depends on the arguments.
 */
export function requireRole(admin: Admin, roles: readonly AdminRole[], what: string): void {
  if (roles.includes(admin.role)) return;
  throw new PortcullisError(
    ErrorCode.FORBIDDEN,
    `${what} needs the role ${roles.join(' or ')}; this ${admin.via === 'oidc' ? 'sign-in' : 'token'} has the role ` +
      `${admin.role}`,
  );
}

type Resolver = (parent: unknown, args: unknown, context: { admin: Admin }, info: unknown) => unknown;
type ResolverMap = Record<string, unknown>;

/**
 * Wraps every resolver whose field is not open to every role with its role check, from FIELD_ROLES
 * and the defaults; fields open to everyone are left as they are (no cost on reads).
 */
export function guardFields<T extends ResolverMap>(schema: GraphQLSchema, resolvers: T): T {
  const wrapped: ResolverMap = { ...resolvers };
  const mutation = schema.getMutationType();
  const subscription = schema.getSubscriptionType();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const roles = rolesFor(type.name, field.name, type === mutation);
      if (roles.length === EVERYONE.length) continue;
      const own: Record<string, unknown> = { ...(wrapped[type.name] as Record<string, unknown> | undefined) };
      const what = `${type.name}.${field.name}`;
      const guard =
        (resolve: Resolver): Resolver =>
        (parent, args, context, info) => {
          requireRole(context.admin, roles, what);
          return resolve(parent, args, context, info);
        };
      const current = own[field.name];
      // A subscription field is a { subscribe, resolve } pair: the check belongs before subscribing.
      if (type === subscription && typeof current === 'object' && current !== null) {
        const pair = current as { subscribe: Resolver; resolve?: Resolver };
        own[field.name] = { ...pair, subscribe: guard(pair.subscribe) };
      } else own[field.name] = guard((current as Resolver | undefined) ?? (defaultFieldResolver as Resolver));
      wrapped[type.name] = own;
    }
  }
  return wrapped as T;
}
