/**
 * A real OAuth 2.1 / OpenID Connect authorization server for the MCP authorization tests:
 * `oidc-provider` on 127.0.0.1, one public client (PKCE, no secret), JWT access tokens for any
 * resource indicator (RFC 8707) with that resource as audience, and a `groups` claim the gateway's
 * claim mapping reads. Its login and consent pages are answered programmatically (`signIn` drives
 * a browser's part of the authorization code flow with a cookie jar).
 */
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import { freePort } from './processes.ts';

export const CLIENT_ID = 'portcullis-test-agent';
export const REDIRECT_URI = 'http://127.0.0.1:1/callback';

export interface Account {
  readonly sub: string;
  readonly groups: readonly string[];
}

/** A signing key (private JWK with its kid), made with `signingKey`. */
export type SigningJwk = JWK & { kid: string };

export async function signingKey(kid: string): Promise<SigningJwk> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

export class AuthorizationServer {
  private constructor(
    private readonly server: Server,
    readonly issuer: string,
    readonly provider: Provider,
  ) {}

  /**
   * Starts on `port` (default a free one) signing with `keys[0]`; `accounts` are who may sign in
   * (the first one signs in unless `signIn` names another).
   */
  static async start(options: {
    keys: readonly SigningJwk[];
    accounts: readonly Account[];
    port?: number;
    accessTokenTtlSeconds?: number;
  }): Promise<AuthorizationServer> {
    const port = options.port ?? (await freePort());
    const issuer = `http://127.0.0.1:${port}`;
    const accounts = new Map(options.accounts.map((a) => [a.sub, a]));
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          token_endpoint_auth_method: 'none',
          redirect_uris: [REDIRECT_URI],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        },
      ],
      jwks: { keys: options.keys.map((k) => ({ ...k })) },
      pkce: { required: () => true },
      ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 300, IdToken: 300, RefreshToken: 3600 },
      scopes: ['openid', 'offline_access', 'mcp'],
      findAccount: (_ctx: KoaContextWithOIDC, sub: string) =>
        accounts.has(sub) ? { accountId: sub, claims: () => ({ sub }) } : undefined,
      extraTokenClaims: (_ctx, token) => {
        const account =
          'accountId' in token && typeof token.accountId === 'string' ? accounts.get(token.accountId) : undefined;
        return account === undefined ? {} : { groups: [...account.groups] };
      },
      features: {
        devInteractions: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as unknown as string,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource) => ({
            scope: 'mcp',
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: options.accessTokenTtlSeconds ?? 300,
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
    });
    const callback = provider.callback();
    const server = createServer((req, res) => {
      const match = /^\/interaction\/([^/?]+)/.exec(req.url ?? '');
      if (match === null) return callback(req, res);
      void finishInteraction(provider, req, res).catch((error: unknown) => {
        res.writeHead(500).end(String(error));
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return new AuthorizationServer(server, issuer, provider);
  }

  get jwksUri(): string {
    return `${this.issuer}/jwks`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The account the next interaction signs in (set by `signIn`). */
let signingIn = '';

/** Answers a login prompt with the account being signed in, a consent prompt with every scope asked for. */
async function finishInteraction(
  provider: Provider,
  req: Parameters<Provider['interactionDetails']>[0],
  res: Parameters<Provider['interactionDetails']>[1],
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: signingIn } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  const accountId = details.session?.accountId ?? signingIn;
  const grant = details.grantId
    ? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId, clientId: CLIENT_ID }))
    : new provider.Grant({ accountId, clientId: CLIENT_ID });
  const missing = details.prompt.details as {
    missingOIDCScope?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
    grant.addResourceScope(resource, scopes.join(' '));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

/**
 * A browser's part of the authorization code flow: opens the authorization URL the agent was sent
 * to, lets `account` sign in and consent, and returns the code the server redirected back with.
 */
export async function signIn(authorizationUrl: URL, account: string): Promise<string> {
  signingIn = account;
  const cookies = new Map<string, string>();
  let url = authorizationUrl.href;
  for (let hop = 0; hop < 20; hop++) {
    const response = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const eq = pair!.indexOf('=');
      cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    await response.body?.cancel();
    const location = response.headers.get('location');
    if (location === null) throw new Error(`the authorization server answered ${response.status} at ${url}`);
    const next = new URL(location, url);
    if (next.href.startsWith(REDIRECT_URI)) {
      const code = next.searchParams.get('code');
      if (code === null) throw new Error(`redirected back without a code: ${next.href}`);
      return code;
    }
    url = next.href;
  }
  throw new Error('too many redirects signing in');
}
