import { GraphQLError } from 'graphql';
import { looksLikeJwt } from '../../../common/src/index.ts';
import { bearerMatches } from '../auth.ts';
import type { AdminOidc } from './admin-oidc.ts';
import type { AdminTokenService } from './admin-tokens.ts';
import type { Admin } from './roles.ts';

const BEARER = /^Bearer\s+(.+)$/i;
const BOOTSTRAP: Admin = { role: 'admin', via: 'bootstrap', subject: 'bootstrap admin token' };

function unauthenticated(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

/**
 * Who a GraphQL request's `Authorization: Bearer …` is: the bootstrap admin token (role admin, for
 * first use), a per-person admin token (its role), or with OIDC configured a JWT (the role its claim
 * names). Anything else: UNAUTHENTICATED (401).
 */
export async function authenticateAdmin(
  header: string | undefined,
  bootstrapToken: string,
  tokens: AdminTokenService,
  oidc: AdminOidc | undefined,
): Promise<Admin> {
  if (bearerMatches(header, bootstrapToken)) return BOOTSTRAP;
  const presented = BEARER.exec(header?.trim() ?? '')?.[1]?.trim();
  const how = `send "Authorization: Bearer <admin token>"${oidc ? ' or a token from the identity provider' : ''}`;
  if (presented === undefined) throw unauthenticated(`Missing admin token; ${how}`);
  if (oidc !== undefined && looksLikeJwt(presented)) {
    const admin = await oidc.authenticate(presented);
    if ('refused' in admin) throw unauthenticated(`Refused: ${admin.refused}`);
    return admin;
  }
  const admin = await tokens.authenticate(presented);
  if (admin === undefined) throw unauthenticated(`Wrong or revoked admin token; ${how}`);
  return admin;
}
