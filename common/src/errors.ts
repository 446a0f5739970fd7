/**
 * The one local error type. `code` is SCREAMING_SNAKE and stable; each edge (GraphQL, gRPC,
 * JSON-RPC, HTTP) translates it once into its own vocabulary.
 */
export class PortcullisError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortcullisError';
    this.code = code;
    this.details = details;
  }
}

export const ErrorCode = {
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  INTERNAL: 'INTERNAL_SERVER_ERROR',
  BAD_CONFIG: 'BAD_CONFIG',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Whether `error`, thrown by `JSON.stringify`, says the value is nested too deeply to serialize: it recurses, and a
 * value some thousands of levels deep (which `JSON.parse`, iterative, takes) runs it out of stack (a RangeError).
 */
export function isTooDeep(error: unknown): boolean {
  return error instanceof RangeError;
}

/** The message of anything thrown, for logs and error reports. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
