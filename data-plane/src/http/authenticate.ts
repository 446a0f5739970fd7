import type { IncomingMessage } from 'node:http';

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
