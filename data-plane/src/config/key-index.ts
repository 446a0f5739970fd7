import type { VirtualKeyConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { AllowList } from '../policy/allow-list.ts';
import { ExecutionPolicies } from '../policy/execution-policy.ts';
import type { Principal } from '../policy/principal.ts';

/** One configured virtual key: as sent, its hash in hex, and the principal requests authenticate as. */
export interface KeyEntry {
  readonly config: VirtualKeyConfig;
  readonly hashHex: string;
  readonly principal: Principal;
}

/** A key's entry; its allow-list leaves out what `policies` deny it. */
export function keyEntry(config: VirtualKeyConfig, policies: ExecutionPolicies = ExecutionPolicies.NONE): KeyEntry {
  const teamId = config.teamId || undefined;
  const denied = policies.empty
    ? undefined
    : (exposedName: string, upstream: string) => policies.denies(config.id, teamId, exposedName, upstream);
  return {
    config,
    hashHex: Buffer.from(config.secretSha256).toString('hex'),
    principal: {
      keyId: config.id,
      keyName: config.name,
      teamId,
      allowList: new AllowList(config.allowedTools, denied),
      codeMode: config.codeMode,
    },
  };
}

/** Overlays smaller than this are never folded into the base. */
const MIN_OVERLAY = 64;
/** Overlays larger than this always are (copying the overlay on every change would cost more). */
const MAX_OVERLAY = 4096;

/**
 * An immutable index of virtual keys by id and by secret hash. A change yields a new index that
 * shares the (large) base with its predecessor and copies only a small overlay of changes
 * (`null` = removed), so applying a delta costs in proportion to what changed, not to the number of
 * keys; once the overlay grows past a fraction of the base it is folded into a fresh base.
 */
export class KeyIndex {
  private constructor(
    private readonly baseById: ReadonlyMap<string, KeyEntry>,
    private readonly baseByHash: ReadonlyMap<string, KeyEntry>,
    private readonly overlayById: ReadonlyMap<string, KeyEntry | null>,
    private readonly overlayByHash: ReadonlyMap<string, KeyEntry | null>,
    readonly size: number,
  ) {}

  static of(entries: Iterable<KeyEntry>): KeyIndex {
    const byId = new Map<string, KeyEntry>();
    const byHash = new Map<string, KeyEntry>();
    for (const entry of entries) {
      const previous = byId.get(entry.config.id);
      if (previous) byHash.delete(previous.hashHex);
      byId.set(entry.config.id, entry);
      byHash.set(entry.hashHex, entry);
    }
    return new KeyIndex(byId, byHash, new Map(), new Map(), byId.size);
  }

  byId(id: string): KeyEntry | undefined {
    const changed = this.overlayById.get(id);
    return changed === undefined ? this.baseById.get(id) : (changed ?? undefined);
  }

  byHash(hashHex: string): KeyEntry | undefined {
    const changed = this.overlayByHash.get(hashHex);
    return changed === undefined ? this.baseByHash.get(hashHex) : (changed ?? undefined);
  }

  /** A new index with `removedIds` gone and `upserted` added or replaced; this one is unchanged. */
  with(upserted: readonly KeyEntry[], removedIds: readonly string[]): KeyIndex {
    const overlayById = new Map(this.overlayById);
    const overlayByHash = new Map(this.overlayByHash);
    let size = this.size;
    // First everything that goes away (removed keys, replaced hashes), then what comes in.
    for (const id of removedIds) {
      const gone = this.byId(id);
      if (!gone) continue;
      overlayById.set(id, null);
      overlayByHash.set(gone.hashHex, null);
      size--;
    }
    for (const entry of upserted) {
      const current = overlayById.has(entry.config.id)
        ? overlayById.get(entry.config.id)
        : this.baseById.get(entry.config.id);
      if (current) {
        if (current.hashHex !== entry.hashHex) overlayByHash.set(current.hashHex, null);
      } else {
        size++;
      }
    }
    for (const entry of upserted) {
      overlayById.set(entry.config.id, entry);
      overlayByHash.set(entry.hashHex, entry);
    }
    const next = new KeyIndex(this.baseById, this.baseByHash, overlayById, overlayByHash, size);
    const limit = Math.min(MAX_OVERLAY, Math.max(MIN_OVERLAY, this.baseById.size >> 3));
    return overlayById.size > limit ? KeyIndex.of(next.entries()) : next;
  }

  /** Every key, base order first, then those added since. */
  *entries(): IterableIterator<KeyEntry> {
    for (const [id, entry] of this.baseById) {
      const changed = this.overlayById.get(id);
      if (changed === undefined) yield entry;
      else if (changed !== null) yield changed;
    }
    for (const [id, entry] of this.overlayById) if (entry !== null && !this.baseById.has(id)) yield entry;
  }
}
