/**
 * What both planes accept of a JWT (agents' access tokens on the data plane, admins' on the
 * GraphQL API): asymmetric signatures only — never `none`, never HS* (whose "secret" an attacker
 * could take from the published public key) — and a little clock skew on `exp` and `nbf`.
 */
export const ACCEPTED_JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

/** Clock skew tolerated on `exp` and `nbf`, in seconds. */
export const JWT_CLOCK_TOLERANCE_S = 30;

const JWT_SHAPE = /^eyJ[\w-]*\.eyJ[\w-]*\.[\w-]*$/;

/** Whether a presented bearer value has the shape of a compact JWT (Portcullis' own keys and tokens never do). */
export function looksLikeJwt(secret: string): boolean {
  return JWT_SHAPE.test(secret);
}
