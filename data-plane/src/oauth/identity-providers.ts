import { hash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { AccessLists, McpAuthorizationConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { accessOfToolPatterns } from '../policy/allow-list.ts';
import type { AgentIdentity } from '../policy/principal.ts';

/** Where RFC 9728 puts a protected resource's metadata. */
export const RESOURCE_METADATA_PATH = '/.well-known/oauth-protected-resource';

interface TeamMapping {
  readonly claimValue: string;
  readonly teamId: string | undefined;
  readonly customerId: string | undefined;
  readonly access: AccessLists;
}

/**
 * A signed-in user as its token's claims map it: who it is and the mapping that admitted it. The
 * snapshot makes it a principal (AppliedConfig.principalOfUser), holding it to its team's lists,
 * limits and budgets as it holds that team's keys.
 */
export interface SignedInUser {
  /** `oidc:` and a digest of issuer and subject (identityKeyId). */
  readonly keyId: string;
  readonly subject: string;
  readonly teamId: string | undefined;
  readonly customerId: string | undefined;
  /** The claim mapping's own tool patterns. */
  readonly access: AccessLists;
  readonly identity: AgentIdentity;
}

/** One configured authorization server, compiled. */
export interface IdentityProvider {
  readonly issuer: string;
  /** Empty: discovered from the issuer's metadata. */
  readonly jwksUri: string;
  readonly subjectClaim: string;
  readonly teamClaim: string;
  readonly teams: readonly TeamMapping[];
}

/** Why a verified token still does not admit its bearer. */
export type MappingRefusal = 'no_subject' | 'no_team';

/**
 * The MCP authorization settings of one snapshot: the gateway's resource, the issuers whose tokens
 * stand in for a virtual key and how their claims map to a team, and the pre-built answers
 * (metadata document, `WWW-Authenticate` challenge) the edge sends.
 */
export class IdentityProviders {
  /** The `/.well-known/oauth-protected-resource` document, serialized once. */
  readonly metadataJson: string;
  /** Where the metadata is (the path-suffixed form for the resource's own path). */
  readonly metadataUrl: string;
  /** The challenge of a 401 without a usable credential. */
  readonly challenge: string;
  /** The challenge of a 401 for a presented token that was refused. */
  readonly invalidTokenChallenge: string;
  private readonly byIssuer: ReadonlyMap<string, IdentityProvider>;

  constructor(
    readonly resource: string,
    providers: readonly IdentityProvider[],
  ) {
    this.byIssuer = new Map(providers.map((p) => [p.issuer, p]));
    const url = new URL(resource);
    const suffix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
    this.metadataUrl = `${url.origin}${RESOURCE_METADATA_PATH}${suffix}`;
    this.metadataJson = JSON.stringify({
      resource,
      authorization_servers: providers.map((p) => p.issuer),
      bearer_methods_supported: ['header'],
      resource_name: 'Portcullis MCP gateway',
    });
    this.challenge = `Bearer resource_metadata="${this.metadataUrl}"`;
    this.invalidTokenChallenge = `Bearer error="invalid_token", resource_metadata="${this.metadataUrl}"`;
  }

  static fromConfig(config: McpAuthorizationConfig): IdentityProviders {
    return new IdentityProviders(
      config.resource,
      config.identityProviders.map((p) => ({
        issuer: p.issuer,
        jwksUri: p.jwksUri,
        subjectClaim: p.subjectClaim || 'sub',
        teamClaim: p.teamClaim,
        teams: p.teams.map((t) => ({
          claimValue: t.claimValue,
          teamId: t.teamId || undefined,
          customerId: t.customerId || undefined,
          access: accessOfToolPatterns(t.allowedTools),
        })),
      })),
    );
  }

  get providers(): IterableIterator<IdentityProvider> {
    return this.byIssuer.values();
  }

  provider(issuer: string): IdentityProvider | undefined {
    return this.byIssuer.get(issuer);
  }

  /** Whether a request path is where this resource's metadata is served. */
  servesMetadataAt(path: string): boolean {
    return path === RESOURCE_METADATA_PATH || this.metadataUrl.endsWith(path);
  }

  /**
   * The user a verified token of `provider` signs in: its subject, and the first team mapping
   * whose claim value the token carries (a `*` mapping matches every token of the issuer).
   */
  userFor(provider: IdentityProvider, claims: JWTPayload): SignedInUser | MappingRefusal {
    const subject = claims[provider.subjectClaim];
    if (typeof subject !== 'string' || subject.length === 0) return 'no_subject';
    const values = claimValues(provider.teamClaim === '' ? undefined : claims[provider.teamClaim]);
    const team = provider.teams.find((t) => t.claimValue === '*' || values.includes(t.claimValue));
    if (team === undefined) return 'no_team';
    return {
      keyId: identityKeyId(provider.issuer, subject),
      subject,
      teamId: team.teamId,
      customerId: team.customerId,
      access: team.access,
      identity: { issuer: provider.issuer, subject },
    };
  }
}

function claimValues(value: unknown): readonly string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/** A signed-in user's stand-in key id: the same for every token of that user, never a real key's (those are UUIDs). */
export function identityKeyId(issuer: string, subject: string): string {
  return `oidc:${hash('sha256', `${issuer}\n${subject}`, 'base64url').slice(0, 22)}`;
}
