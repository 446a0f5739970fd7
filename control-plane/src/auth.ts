import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Whether an `Authorization` header value is `Bearer <expected>`, compared in constant time
 * (both sides hashed first, so neither length nor content leaks through timing).
 */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  if (header === undefined || expected.length === 0) return false;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  const presented = match?.[1] ?? '';
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && presented.length > 0;
}
