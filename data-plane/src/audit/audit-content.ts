import { isTooDeep } from '../../../common/src/index.ts';
import { AuditContent as KeyAuditContent } from '../../../proto/gen/portcullis/v1/config.ts';

/** What the control plane says about content logging (from the snapshot; see `AuditContent.follow`). */
export interface ControlPlaneAuditContent {
  /** Names of the upstreams whose content is never recorded (their `auditContent` is false). */
  readonly offUpstreams: ReadonlySet<string>;
  /** `auditSettings.contentDefault` is false: keys with INHERIT are not recorded. */
  readonly offByDefault: boolean;
}

const CONTENT_ON: ControlPlaneAuditContent = { offUpstreams: new Set(), offByDefault: false };

/**
 * Whether arguments and results are recorded, and how much of them. Two sources decide:
 *
 * - the control plane (through the snapshot): an upstream's `auditContent: false` switches content off
 *   for every key; a key's ON or OFF decides for that key; a key with INHERIT follows the gateway
 *   default (`auditSettings.contentDefault`);
 * - this node's flags (`--audit-content off`, `--audit-content-off-upstreams`, `--audit-content-off-keys`),
 *   which can only switch content off: a node flag that says off wins over whatever the control plane
 *   says (a key ON included).
 *
 * When off, the record keeps its metadata and its arguments/result stay null. A value longer than
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
const TOO_DEEP_MARKER = JSON.stringify({ $truncated: true, reason: 'nested too deeply to serialize' });

export class AuditContent {
  private readonly enabled: boolean;
  private readonly offUpstreams: ReadonlySet<string>;
  private readonly offKeys: ReadonlySet<string>;
  private controlPlane: ControlPlaneAuditContent = CONTENT_ON;
  readonly maxValueChars: number;

  constructor(options: AuditContentOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.offUpstreams = new Set(options.offForUpstreams ?? []);
    this.offKeys = new Set(options.offForKeys ?? []);
    this.maxValueChars = options.maxValueChars ?? DEFAULT_MAX_VALUE_CHARS;
  }

  /** Takes what the control plane says from each applied snapshot (called when one is applied, not per call). */
  follow(controlPlane: ControlPlaneAuditContent): void {
    this.controlPlane = controlPlane;
  }

  /**
   * Whether content may be recorded for a call by this key (with its control-plane setting, absent: INHERIT)
   * to this upstream (null: none, e.g. a discovery).
   */
  allows(upstream: string | null, keyId: string | null, keyMode?: KeyAuditContent): boolean {
    if (!this.enabled) return false;
    const controlPlane = this.controlPlane;
    if (upstream !== null && (this.offUpstreams.has(upstream) || controlPlane.offUpstreams.has(upstream))) return false;
    if (keyId !== null && this.offKeys.has(keyId)) return false;
    if (keyMode === KeyAuditContent.AUDIT_CONTENT_ON) return true;
    return keyMode !== KeyAuditContent.AUDIT_CONTENT_OFF && !controlPlane.offByDefault;
  }

  /**
   * The value as JSON text, truncated with a marker when too long; null for undefined. A value too deeply nested
   * to serialize (a script's arguments, an upstream's result: the edge refuses such requests) is recorded as the
   * marker `{"$truncated":true,"reason":"nested too deeply to serialize"}`, so its call keeps its record.
   */
  clip(value: unknown): string | null {
    if (value === undefined) return null;
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      if (!isTooDeep(error)) throw error;
      return TOO_DEEP_MARKER;
    }
    if (json === undefined) return null;
    return this.clipJson(json);
  }

  /** Whether `clipped` (what `clip` or `clipJson` gave) is the whole value's JSON, not a truncation marker. */
  isWhole(clipped: string): boolean {
    // A truncation marker holds maxValueChars characters of the value and more: it is always longer than that.
    return clipped.length <= this.maxValueChars && clipped !== TOO_DEEP_MARKER;
  }

  /** Whether `clipped` (what `clip` gave) is the marker of a value nested too deeply to serialize. */
  isTooDeep(clipped: string): boolean {
    return clipped === TOO_DEEP_MARKER;
  }

  /** Already-serialized JSON, truncated with a marker when too long. */
  clipJson(json: string): string {
    if (json.length <= this.maxValueChars) return json;
    return JSON.stringify({ $truncated: true, chars: json.length, prefix: json.slice(0, this.maxValueChars) });
  }
}
