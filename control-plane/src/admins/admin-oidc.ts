import { createRemoteJWKSet, jwtVerify } from 'jose';
import { z } from 'zod';
import { ACCEPTED_JWT_ALGORITHMS, JWT_CLOCK_TOLERANCE_S } from '../../../common/src/index.ts';
import { ADMIN_ROLES, type Admin, type AdminRole } from './roles.ts';

/** OIDC sign-in for the GraphQL API: whose tokens, for which audience, and where the role is. */
export interface AdminOidcOptions {
  /** The exact `iss` of the tokens. */
  issuer: string;
  /** The `aud` the tokens must carry (the GraphQL API's client id or URL at the identity provider). */
  audience: string;
  /** The issuer's JWKS URL. */
  jwksUri: string;
  /**
   * The claim holding the role ("admin", "operator" or "auditor", or an array holding some); default
   * `portcullis_roles`.
   */
  roleClaim?: string;
  /** The claim naming the person; default `sub`. */
  subjectClaim?: string;
}

export const adminOidcSchema = z.object({
  issuer: z.string().url('is not a URL; give the identity provider issuer, exactly as its tokens `iss`'),
  audience: z.string().min(1, 'is empty; give the audience tokens for the GraphQL API carry'),
  jwksUri: z.string().url("is not a URL; give the identity provider's JWKS URL"),
  roleClaim: z.string().min(1).optional(),
  subjectClaim: z.string().min(1).optional(),
});

/** Between two JWKS fetches for an unknown `kid`. */
const COOLDOWN_MS = 30_000;

/**
 * Verifies admins' JWTs (signature against the issuer's JWKS, fetched and cached by jose and
 * refetched for an unknown kid at most once per cooldown; issuer; audience; exp/nbf) and reads the
 * role from a claim. A token with several roles acts with the highest.
 */
export class AdminOidc {
  private readonly keys: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly options: AdminOidcOptions) {
    this.keys = createRemoteJWKSet(new URL(options.jwksUri), { cooldownDuration: COOLDOWN_MS });
  }

  /** The admin the token stands for, or why it does not. */
  async authenticate(token: string): Promise<Admin | { refused: string }> {
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(token, this.keys, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        algorithms: ACCEPTED_JWT_ALGORITHMS,
        clockTolerance: JWT_CLOCK_TOLERANCE_S,
        requiredClaims: ['exp'],
      }));
    } catch {
      return { refused: 'the token is not valid for this API (signature, issuer, audience or expiry)' };
    }
    const roleClaim = this.options.roleClaim ?? 'portcullis_roles';
    const raw = claims[roleClaim];
    const granted = new Set(Array.isArray(raw) ? raw : [raw]);
    const role = ADMIN_ROLES.find((r: AdminRole) => granted.has(r));
    if (role === undefined)
      return { refused: `the token's "${roleClaim}" claim names no role (admin, operator, auditor)` };
    const subject = claims[this.options.subjectClaim ?? 'sub'];
    if (typeof subject !== 'string' || subject === '') return { refused: 'the token names no subject' };
    return { role, via: 'oidc', subject };
  }
}
