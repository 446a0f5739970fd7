import { decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { ACCEPTED_JWT_ALGORITHMS, JWT_CLOCK_TOLERANCE_S, looksLikeJwt } from '../../../common/src/index.ts';
import type { Logger } from 'pino';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { Principal } from '../policy/principal.ts';
import type { IdentityProviders } from './identity-providers.ts';
import { IssuerKeys } from './issuer-keys.ts';

const MAX_CACHED_TOKENS = 10_000;

export { looksLikeJwt };

/**
 * Why a token was refused, said in the answer (never the token itself): 401 for a token that is not
 * valid here, 403 for a valid one whose claims admit no access (signing in again would not help).
 */
export interface TokenRefusal {
  readonly status: 401 | 403;
  readonly reason: string;
}

const untrusted: TokenRefusal = {
  status: 401,
  reason: 'the token was not issued by an authorization server this gateway trusts',
};
const invalid = (reason: string): TokenRefusal => ({ status: 401, reason });

interface Verified {
  readonly issuer: string;
  readonly claims: JWTPayload;
  /** The principal, computed for `forConfig` (a new snapshot maps the claims again). */
  principal?: Principal | TokenRefusal;
  forConfig?: AppliedConfig;
}

/**
 * Agents' OAuth access tokens: verified once (signature against the issuer's JWKS, issuer, audience =
 * the gateway's resource, exp/nbf) and then served from a cache until they expire, so a signed-in
 * agent costs a map lookup per request like a virtual key. The token is never forwarded anywhere.
 */
export class AgentTokens {
  private readonly keys: IssuerKeys;
  private readonly verified = new LRUCache<string, Verified>({ max: MAX_CACHED_TOKENS, ttlAutopurge: false });
  private providers: IdentityProviders | undefined;

  constructor(logger: Logger, options: { jwksRefreshMs?: number; jwksRefreshCooldownMs?: number | undefined } = {}) {
    this.keys = new IssuerKeys(logger, options);
  }

  /** Call when a snapshot is applied: key sets of new issuers are fetched now, off the request path. */
  configChanged(config: AppliedConfig | undefined): void {
    const providers = config?.identityProviders;
    if (providers === this.providers) return;
    this.providers = providers;
    this.keys.sync(providers?.providers ?? []);
  }

  /**
   * The principal of a token verified earlier and not expired, mapped with `config`; undefined when
   * it must be verified (first use, evicted).
   */
  cached(token: string, config: AppliedConfig): Principal | TokenRefusal | undefined {
    const entry = this.verified.get(token);
    if (entry === undefined) return undefined;
    if (entry.forConfig !== config) {
      entry.principal = mapClaims(config, entry.issuer, entry.claims);
      entry.forConfig = config;
    }
    return entry.principal;
  }

  /** Verifies a token not in the cache, and caches it until its `exp`. */
  async verify(token: string, config: AppliedConfig): Promise<Principal | TokenRefusal> {
    this.configChanged(config);
    const providers = config.identityProviders;
    if (providers === undefined) return invalid('this gateway accepts no OAuth access tokens');
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      return invalid('the token is not a JWT');
    }
    const resolver = issuer === undefined ? undefined : this.keys.resolver(issuer);
    if (issuer === undefined || resolver === undefined || providers.provider(issuer) === undefined) return untrusted;
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, resolver, {
        issuer,
        audience: providers.resource,
        algorithms: ACCEPTED_JWT_ALGORITHMS,
        clockTolerance: JWT_CLOCK_TOLERANCE_S,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      return invalid(describe(error));
    }
    const expiresInMs = (claims.exp ?? 0) * 1000 - Date.now();
    const principal = mapClaims(config, issuer, claims);
    if (expiresInMs > 0) {
      this.verified.set(token, { issuer, claims, principal, forConfig: config }, { ttl: expiresInMs });
    }
    return principal;
  }

  close(): void {
    this.keys.close();
    this.verified.clear();
  }
}

function mapClaims(config: AppliedConfig, issuer: string, claims: JWTPayload): Principal | TokenRefusal {
  const providers = config.identityProviders;
  const provider = providers?.provider(issuer);
  if (providers === undefined || provider === undefined) return untrusted;
  const user = providers.userFor(provider, claims);
  if (user === 'no_subject') return invalid(`the token carries no "${provider.subjectClaim}" claim`);
  if (user === 'no_team') return { status: 403, reason: 'the signed-in user maps to no team of this gateway' };
  return config.principalOfUser(user);
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'the token is not meant for this resource (audience)';
    if (error.claim === 'nbf') return 'the token is not valid yet';
    return `the token's "${error.claim}" claim is invalid`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm this gateway refuses';
  if (error instanceof errors.JWKSNoMatchingKey) return "no signing key of the issuer matches the token's";
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError))
    return "the issuer's signing keys could not be fetched";
  return 'the token is invalid';
}
