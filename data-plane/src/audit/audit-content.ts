/**
 * Whether arguments and results are recorded, and how much of them. Content logging is on unless
 * switched off globally, for an upstream (by name) or for a virtual key (by id); when off, the
 * record keeps its metadata and its arguments/result stay null. A value longer than
 * `maxValueChars` is replaced by a marker object (valid JSON, so the column stays JSON):
 * `{"$truncated":true,"chars":<original length>,"prefix":"<first maxValueChars characters>"}`.
 */
export interface AuditContentOptions {
  /** Default true. */
  readonly enabled?: boolean;
  readonly offForUpstreams?: readonly string[];
  readonly offForKeys?: readonly string[];
  /** Default 16 KiB of characters per value. */
  readonly maxValueChars?: number;
}

export const DEFAULT_MAX_VALUE_CHARS = 16 * 1024;

export class AuditContent {
  private readonly enabled: boolean;
  private readonly offUpstreams: ReadonlySet<string>;
  private readonly offKeys: ReadonlySet<string>;
  readonly maxValueChars: number;

  constructor(options: AuditContentOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.offUpstreams = new Set(options.offForUpstreams ?? []);
    this.offKeys = new Set(options.offForKeys ?? []);
    this.maxValueChars = options.maxValueChars ?? DEFAULT_MAX_VALUE_CHARS;
  }

  /** Whether content may be recorded for a call by this key to this upstream. */
  allows(upstream: string | null, keyId: string | null): boolean {
    if (!this.enabled) return false;
    if (upstream !== null && this.offUpstreams.has(upstream)) return false;
    return keyId === null || !this.offKeys.has(keyId);
  }

  /** The value as JSON text, truncated with a marker when too long; null for undefined. */
  clip(value: unknown): string | null {
    if (value === undefined) return null;
    const json = JSON.stringify(value);
    if (json === undefined) return null;
    return this.clipJson(json);
  }

  /** Already-serialized JSON, truncated with a marker when too long. */
  clipJson(json: string): string {
    if (json.length <= this.maxValueChars) return json;
    return JSON.stringify({ $truncated: true, chars: json.length, prefix: json.slice(0, this.maxValueChars) });
  }
}
