import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { Backoff } from '../../../common/src/index.ts';
import type { IdentityProvider } from './identity-providers.ts';

/**
 * Between two fetches of one issuer's JWKS for an unknown `kid` (jose's cooldown): a flood of forged kids costs one
 * fetch.
 */
export const JWKS_REFRESH_COOLDOWN_MS = 30_000;
/** How often known key sets are fetched again in the background (keys the issuer withdrew stop verifying). */
export const JWKS_BACKGROUND_REFRESH_MS = 5 * 60_000;
const FETCH_TIMEOUT_MS = 5_000;
/** Retries of a failed metadata discovery (the issuer was away when its snapshot came). */
const DISCOVERY_RETRY = { baseMs: 1_000, maxMs: 60_000 };

type RemoteKeySet = ReturnType<typeof createRemoteJWKSet>;

interface IssuerKeySet {
  /** The key set, once its URL is known (discovered or configured). */
  keys: Promise<RemoteKeySet>;
  /** The configured `jwks_uri` it was made for ('' : discovered). */
  readonly configuredUri: string;
}

/**
 * The signing keys of each configured issuer, fetched and cached by jose's remote key set: a token
 * whose `kid` is unknown triggers one fetch (then a cooldown), and a background timer re-fetches
 * every set so keys are warm before requests need them. Sets are made when a snapshot names an
 * issuer (`sync`), never in a request that found none.
 */
export class IssuerKeys {
  private readonly sets = new Map<string, IssuerKeySet>();
  private readonly timer: NodeJS.Timeout;
  private providers: readonly IdentityProvider[] = [];
  private readonly discoveryRetries = new Map<string, { backoff: Backoff; timer?: NodeJS.Timeout }>();
  private closed = false;
  private readonly cooldownMs: number;

  constructor(
    private readonly logger: Logger,
    options: { jwksRefreshMs?: number | undefined; jwksRefreshCooldownMs?: number | undefined } = {},
  ) {
    this.cooldownMs = options.jwksRefreshCooldownMs ?? JWKS_REFRESH_COOLDOWN_MS;
    this.timer = setInterval(() => this.refreshAll(), options.jwksRefreshMs ?? JWKS_BACKGROUND_REFRESH_MS);
    this.timer.unref();
  }

  /** Makes key sets for the snapshot's issuers (fetching them now) and forgets the others. */
  sync(providers: Iterable<IdentityProvider>): void {
    this.providers = [...providers];
    const wanted = new Set<string>();
    for (const provider of this.providers) {
      wanted.add(provider.issuer);
      const existing = this.sets.get(provider.issuer);
      if (existing?.configuredUri === provider.jwksUri) continue;
      const keys = this.keySet(provider);
      this.sets.set(provider.issuer, { keys, configuredUri: provider.jwksUri });
      void keys.then((set) => set.reload()).catch((error: unknown) => this.warn(provider.issuer, error));
    }
    for (const issuer of this.sets.keys()) if (!wanted.has(issuer)) this.sets.delete(issuer);
    for (const [issuer, retry] of this.discoveryRetries) {
      if (wanted.has(issuer)) continue;
      clearTimeout(retry.timer);
      this.discoveryRetries.delete(issuer);
    }
  }

  /** The key resolver jose verifies a token of `issuer` with, or undefined for an issuer not configured. */
  resolver(issuer: string): JWTVerifyGetKey | undefined {
    const set = this.sets.get(issuer);
    if (set === undefined) return undefined;
    return async (header, token) => (await set.keys)(header, token);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const retry of this.discoveryRetries.values()) clearTimeout(retry.timer);
    this.discoveryRetries.clear();
    this.sets.clear();
  }

  private keySet(provider: IdentityProvider): Promise<RemoteKeySet> {
    const make = (uri: string) =>
      createRemoteJWKSet(new URL(uri), {
        cooldownDuration: this.cooldownMs,
        // The background refresh keeps sets fresh; a request never waits on an age-based refetch.
        cacheMaxAge: Number.POSITIVE_INFINITY,
        timeoutDuration: FETCH_TIMEOUT_MS,
      });
    if (provider.jwksUri !== '') return Promise.resolve(make(provider.jwksUri));
    const discovered = discoverJwksUri(provider.issuer).then(make);
    // A failed discovery is not cached: it is retried with backoff (tokens of the issuer get 401 meanwhile).
    discovered.then(
      () => this.discoveryRetries.delete(provider.issuer),
      () => {
        if (this.sets.get(provider.issuer)?.keys !== discovered || this.closed) return;
        this.sets.delete(provider.issuer);
        let retry = this.discoveryRetries.get(provider.issuer);
        if (retry === undefined)
          this.discoveryRetries.set(provider.issuer, (retry = { backoff: new Backoff(DISCOVERY_RETRY) }));
        retry.timer = setTimeout(() => this.sync(this.providers), retry.backoff.next());
        retry.timer.unref();
      },
    );
    return discovered;
  }

  private refreshAll(): void {
    for (const [issuer, set] of this.sets) {
      void set.keys.then((keys) => keys.reload()).catch((error: unknown) => this.warn(issuer, error));
    }
  }

  private warn(issuer: string, error: unknown): void {
    this.logger.warn({ issuer, err: error instanceof Error ? error.message : String(error) }, 'JWKS fetch failed');
  }
}

/**
 * The issuer's `jwks_uri` from its metadata: RFC 8414 (`/.well-known/oauth-authorization-server`,
 * inserted before the issuer's path), then OpenID Connect Discovery.
 */
export async function discoverJwksUri(issuer: string): Promise<string> {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const candidates = [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}${path}/.well-known/openid-configuration`,
  ];
  for (const candidate of candidates) {
    const response = await fetch(candidate, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) }).catch(() => undefined);
    if (!response?.ok) continue;
    const metadata = (await response.json().catch(() => undefined)) as
      | { issuer?: unknown; jwks_uri?: unknown }
      | undefined;
    // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
    if (metadata?.issuer === issuer && typeof metadata.jwks_uri === 'string') return metadata.jwks_uri;
  }
  throw new Error(`no authorization server metadata with a jwks_uri for issuer ${issuer}`);
}
