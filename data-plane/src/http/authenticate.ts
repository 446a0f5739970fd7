import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppliedConfig } from '../config/applied-config.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { type AgentTokens, looksLikeJwt, type TokenRefusal } from '../oauth/agent-tokens.ts';
import type { Principal } from '../policy/principal.ts';
import { sendRpcError } from './respond.ts';

const BEARER = /^bearer[ \t]+(.+)$/i;

/** The virtual key presented as `Authorization: Bearer <key>` or `x-portcullis-key: <key>`. */
export function presentedKey(req: IncomingMessage): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    const match = BEARER.exec(authorization);
    const secret = match?.[1]?.trim();
    if (secret) return secret;
  }
  const header = req.headers['x-portcullis-key'];
  const secret = (Array.isArray(header) ? header[0] : header)?.trim();
  return secret ? secret : undefined;
}

/** What the authenticate step hands on. */
export interface Authenticated {
  readonly config: AppliedConfig;
  readonly principal: Principal;
  /**
   * The presented secret (a virtual key or an OAuth access token); undefined when the request carried no credentials
   * and was mapped to the anonymous-access key.
   */
  readonly secret: string | undefined;
  /** performance.now() when the request was taken up: the start of the gateway's own time. */
  readonly receivedAt: number;
}

const NO_KEY_MESSAGE =
  'Unauthorized: send a Portcullis virtual key as "Authorization: Bearer <key>" or "x-portcullis-key: <key>"';
const BAD_KEY_MESSAGE =
  'Unauthorized: the presented key is unknown or revoked; send a valid Portcullis virtual key as "Authorization: ' +
  'Bearer <key>" or "x-portcullis-key: <key>"';
const ANONYMOUS_GONE_MESSAGE =
  'Unauthorized: no key was presented and the anonymous-access key configured on this node is revoked or not in its ' +
  'configuration; send a Portcullis virtual key as "Authorization: Bearer <key>" or "x-portcullis-key: <key>"';
const CHALLENGE = { 'www-authenticate': 'Bearer realm="portcullis"' };
const INVALID_CHALLENGE = { 'www-authenticate': 'Bearer realm="portcullis", error="invalid_token"' };

/**
 * The 401 challenge: with MCP authorization configured it names the resource metadata (RFC 9728
 * §5.1), which is how an agent finds the authorization server to sign its user in with.
 */
function challenge(config: AppliedConfig, invalidToken: boolean): { 'www-authenticate': string } {
  const providers = config.identityProviders;
  if (providers === undefined) return invalidToken ? INVALID_CHALLENGE : CHALLENGE;
  return { 'www-authenticate': invalidToken ? providers.invalidTokenChallenge : providers.challenge };
}

/**
 * Whether the request carries any credential header at all (even a malformed one: that is refused, never treated as
 * anonymous).
 */
function presentsCredentials(req: IncomingMessage): boolean {
  return req.headers.authorization !== undefined || req.headers['x-portcullis-key'] !== undefined;
}

/**
 * The ready and authenticate steps: answers 503 / 401 itself, or hands on the snapshot and the caller.
 * The credential is a virtual key, or (with MCP authorization configured and `tokens` given) an
 * OAuth access token: verified ones answer synchronously from the token cache, a new one is verified
 * asynchronously (a promise), against keys fetched when the snapshot named the issuer.
 * With `anonymousKeyId` (off by default), a request carrying no credential header at all acts as that
 * virtual key (its allow-list applies) while the key is in the snapshot; a wrong key is still 401.
 */
export function authenticateRequest(
  getConfig: () => AppliedConfig | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  anonymousKeyId?: string,
  tokens?: AgentTokens,
): Authenticated | undefined | Promise<Authenticated | undefined> {
  const receivedAt = performance.now();
  const config = getConfig();
  if (config === undefined) {
    sendRpcError(
      res,
      503,
      RpcErrorCode.NotReady,
      'Service Unavailable: this node has not received its configuration yet; retry shortly',
      { headers: { 'retry-after': '1' } },
    );
    return undefined;
  }
  if (anonymousKeyId !== undefined && !presentsCredentials(req)) {
    const principal = config.principalByKeyId(anonymousKeyId);
    if (principal !== undefined) return { config, principal, secret: undefined, receivedAt };
    sendRpcError(res, 401, RpcErrorCode.Unauthenticated, ANONYMOUS_GONE_MESSAGE, { headers: challenge(config, false) });
    return undefined;
  }
  const secret = presentedKey(req);
  if (secret === undefined) {
    sendRpcError(res, 401, RpcErrorCode.Unauthenticated, NO_KEY_MESSAGE, { headers: challenge(config, false) });
    return undefined;
  }
  const principal = config.authenticate(secret);
  if (principal !== undefined) return { config, principal, secret, receivedAt };
  const token = tokenPrincipal(tokens, config, secret);
  if (token === undefined) {
    sendRpcError(res, 401, RpcErrorCode.Unauthenticated, BAD_KEY_MESSAGE, { headers: challenge(config, true) });
    return undefined;
  }
  if (!(token instanceof Promise)) return admitToken(token, config, secret, receivedAt, res);
  return token.then((verified) => admitToken(verified, config, secret, receivedAt, res));
}

/**
 * The principal of `secret` read as an OAuth access token (MCP authorization): at once from the
 * token cache, or a promise for a token not verified yet; undefined when no token is accepted here
 * (no `tokens`, no identity providers configured, or not a JWT). One path for MCP and REST.
 */
export function tokenPrincipal(
  tokens: AgentTokens | undefined,
  config: AppliedConfig,
  secret: string,
): Principal | TokenRefusal | Promise<Principal | TokenRefusal> | undefined {
  if (tokens === undefined || config.identityProviders === undefined || !looksLikeJwt(secret)) return undefined;
  return tokens.cached(secret, config) ?? tokens.verify(secret, config);
}

/** The `WWW-Authenticate` value for a refused token (RFC 6750 §3: insufficient_scope or invalid_token). */
export function tokenRefusalChallenge(config: AppliedConfig, refusal: TokenRefusal): string {
  const providers = config.identityProviders!;
  const description = refusal.reason.replaceAll('"', "'");
  return refusal.status === 403
    ? `Bearer error="insufficient_scope", error_description="${description}", ` +
        `resource_metadata="${providers.metadataUrl}"`
    : `${providers.invalidTokenChallenge}, error_description="${description}"`;
}

function admitToken(
  verified: Principal | TokenRefusal,
  config: AppliedConfig,
  secret: string,
  receivedAt: number,
  res: ServerResponse,
): Authenticated | undefined {
  if (!('reason' in verified)) return { config, principal: verified, secret, receivedAt };
  sendRpcError(
    res,
    verified.status,
    verified.status === 403 ? RpcErrorCode.Forbidden : RpcErrorCode.Unauthenticated,
    `${verified.status === 403 ? 'Forbidden' : 'Unauthorized'}: ${verified.reason}`,
    { headers: { 'www-authenticate': tokenRefusalChallenge(config, verified) } },
  );
  return undefined;
}
