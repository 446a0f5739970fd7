import { createHash } from 'node:crypto';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Transport, type Snapshot, type UpstreamConfig, type SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import { AllowList } from '../policy/allow-list.ts';
import type { Principal } from '../policy/principal.ts';

const UPSTREAM_NAME = /^[A-Za-z0-9_-]{1,32}$/;

/** What a snapshot must satisfy before a node serves it; anything else is NACKed with the reason. */
const SnapshotSchema = z.object({
  version: z.string().regex(/^\d+$/, 'version must be a decimal revision'),
  upstreams: z.array(
    z
      .object({
        id: z.string().min(1),
        name: z.string().regex(UPSTREAM_NAME, 'upstream name must be 1-32 letters, digits, _ or -').refine((n) => !n.includes('__'), 'upstream name must not contain "__"'),
        transport: z.enum(Transport).refine((t) => t !== Transport.TRANSPORT_UNSPECIFIED && t !== Transport.UNRECOGNIZED, 'transport is required'),
        command: z.string(),
        url: z.string(),
        pinnedTools: z.array(z.object({ name: z.string().min(1, 'a pinned tool needs a name'), definitionSha256: z.string().regex(/^[0-9a-f]{64}$/, 'a pinned definition_sha256 must be 64 lower-case hex digits') })),
      })
      .loose()
      .refine((u) => u.transport !== Transport.TRANSPORT_STDIO || u.command.length > 0, { message: 'a STDIO upstream needs a command', path: ['command'] })
      .refine((u) => u.transport === Transport.TRANSPORT_STDIO || URL.canParse(u.url), { message: 'an HTTP upstream needs a valid url', path: ['url'] }),
  ),
  virtualKeys: z.array(
    z
      .object({
        id: z.string().min(1),
        secretSha256: z.instanceof(Uint8Array).refine((b) => b.length === 32, 'secretSha256 must be 32 bytes'),
      })
      .loose(),
  ),
  sessionKeys: z.array(z.object({ id: z.string().min(1), secret: z.instanceof(Uint8Array).refine((b) => b.length >= 32, 'session key must be at least 32 bytes') })).min(1, 'at least one session key is required'),
});

/** SHA-256 of a presented secret, hex encoded: the form keys are indexed by. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * The configuration a node serves: one accepted snapshot plus the indexes the hot path needs.
 * Immutable; a new snapshot yields a new instance, swapped in atomically.
 */
export class AppliedConfig {
  readonly version: string;
  readonly upstreams: readonly UpstreamConfig[];
  readonly sessionKeys: readonly SigningKey[];
  private readonly principals: ReadonlyMap<string, Principal>;
  private readonly principalsByKeyId: ReadonlyMap<string, Principal>;

  private constructor(snapshot: Snapshot) {
    this.version = snapshot.version;
    this.upstreams = snapshot.upstreams;
    this.sessionKeys = snapshot.sessionKeys;
    const principals = new Map<string, Principal>();
    const byKeyId = new Map<string, Principal>();
    for (const key of snapshot.virtualKeys) {
      const principal: Principal = {
        keyId: key.id,
        keyName: key.name,
        teamId: key.teamId || undefined,
        allowList: new AllowList(key.allowedTools),
      };
      principals.set(Buffer.from(key.secretSha256).toString('hex'), principal);
      byKeyId.set(key.id, principal);
    }
    this.principals = principals;
    this.principalsByKeyId = byKeyId;
  }

  /** Validates a snapshot and indexes it; throws BAD_CONFIG naming the offending field. */
  static fromSnapshot(snapshot: Snapshot): AppliedConfig {
    const checked = SnapshotSchema.safeParse(snapshot);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      const where = issue?.path.join('.') ?? '';
      throw new PortcullisError(ErrorCode.BAD_CONFIG, `snapshot ${snapshot.version}: ${where}: ${issue?.message ?? 'invalid'}`);
    }
    const names = new Set<string>();
    for (const upstream of snapshot.upstreams) {
      if (names.has(upstream.name)) throw new PortcullisError(ErrorCode.BAD_CONFIG, `snapshot ${snapshot.version}: duplicate upstream name "${upstream.name}"`);
      names.add(upstream.name);
    }
    return new AppliedConfig(snapshot);
  }

  /** The principal for a presented key secret, or undefined when it is unknown or revoked. */
  authenticate(secret: string): Principal | undefined {
    return this.principals.get(hashSecret(secret));
  }

  /** The principal of a virtual key by its id (no secret involved), or undefined when it is revoked or not in this snapshot. */
  principalByKeyId(keyId: string): Principal | undefined {
    return this.principalsByKeyId.get(keyId);
  }
}
