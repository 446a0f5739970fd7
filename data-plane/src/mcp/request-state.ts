import { z } from 'zod';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import { REQUEST_STATE_TOKENS, signToken, verifyToken } from './signed-token.ts';

/**
 * The `requestState` the gateway hands a 2026-07-28 agent with an `input_required` result: a
 * signed token of the request-state domain (`pcrs1.…`, see signed-token.ts: canonical encoding,
 * domain-separated MAC under the rotating session keys). The claims are readable by the agent on
 * purpose: they hold nothing it does not know, except which node holds its waiting call.
 *
 * A state is one of two kinds. A parked call's (`node`, `exchange`, `round`): the upstream call
 * waits on that node. A 2026-07-28 upstream's own round (`upstream`, `upstreamState`): nothing
 * waits anywhere, the retry is a new upstream call carrying the upstream's state, so any node can
 * serve it.
 */
export interface RequestStateClaims {
  /** The virtual key that made the call; a retry under another key is refused. */
  readonly keyId: string;
  /** Parked call: the node holding the waiting upstream call (a retry must reach it). */
  readonly node?: string;
  /** Parked call: that node process's tag (of its hello), by which a retry landing elsewhere is relayed to it. */
  readonly nodeTag?: string;
  /** Parked call: the waiting call's id on that node. */
  readonly exchange?: string;
  /** Parked call: which input round this state answers; a state answers one round once. */
  readonly round?: number;
  /** Upstream's round: the upstream that answered `input_required`. */
  readonly upstream?: string;
  /** Upstream's round: the upstream's own `requestState`, echoed to it on the retry. */
  readonly upstreamState?: string;
  /** The agent's request method (tools/call, prompts/get, resources/read). */
  readonly method: string;
  /** The tool or prompt name or resource URI as the agent named it; the retry must name the same. */
  readonly subject: string;
  /** Milliseconds since the epoch after which the state is refused. */
  readonly expiresAt: number;
}

export type RequestStateVerification =
  | { readonly ok: true; readonly claims: RequestStateClaims }
  | {
      readonly ok: false;
      readonly reason: 'malformed' | 'unknown-signing-key' | 'bad-signature' | 'other-key' | 'expired';
    };

const PREFIX = REQUEST_STATE_TOKENS.prefix;

/** The payload's wire shape: short names, since the agent echoes the state on every retry. */
const Payload = z.object({
  k: z.string(),
  n: z.string().optional(),
  t: z.string().optional(),
  x: z.string().optional(),
  r: z.number().int().nonnegative().optional(),
  u: z.string().optional(),
  us: z.string().optional(),
  m: z.string(),
  s: z.string(),
  e: z.number(),
});
type Payload = z.infer<typeof Payload>;

/** Whether a presented state is of the gateway's format at all (anything else is refused as tampered). */
export function isGatewayRequestState(value: string): boolean {
  return value.startsWith(PREFIX);
}

/** Signs the claims with `keys[0]`. */
export function signRequestState(claims: RequestStateClaims, keys: readonly SigningKey[]): string {
  const payload: Payload = {
    k: claims.keyId,
    n: claims.node,
    t: claims.nodeTag,
    x: claims.exchange,
    r: claims.round,
    u: claims.upstream,
    us: claims.upstreamState,
    m: claims.method,
    s: claims.subject,
    e: claims.expiresAt,
  };
  return signToken(REQUEST_STATE_TOKENS, payload, keys);
}

/**
 * Verifies a presented state: format, signature under a current session key, the calling key,
 * and expiry (in that order, so a forged state learns nothing about the others).
 */
export function verifyRequestState(
  state: string,
  keyId: string,
  keys: readonly SigningKey[],
  now = Date.now(),
): RequestStateVerification {
  const verified = verifyToken(REQUEST_STATE_TOKENS, state, keys);
  if (!verified.ok) return verified;
  const parsed = Payload.safeParse(verified.payload);
  if (!parsed.success) return { ok: false, reason: 'malformed' };
  const payload = parsed.data;
  if (payload.k !== keyId) return { ok: false, reason: 'other-key' };
  if (payload.e <= now) return { ok: false, reason: 'expired' };
  const claims: RequestStateClaims = { keyId: payload.k, method: payload.m, subject: payload.s, expiresAt: payload.e };
  return {
    ok: true,
    claims: {
      ...claims,
      ...definedOnly({
        node: payload.n,
        nodeTag: payload.t,
        exchange: payload.x,
        round: payload.r,
        upstream: payload.u,
        upstreamState: payload.us,
      }),
    },
  };
}

/** The entries whose value is defined (optional claims are absent, not undefined). */
function definedOnly<T extends Record<string, unknown>>(entries: T): Partial<T> {
  const out: Partial<T> = {};
  for (const key of Object.keys(entries) as (keyof T)[]) if (entries[key] !== undefined) out[key] = entries[key];
  return out;
}
