import {
  AccessLists,
  type CustomerConfig,
  type RateLimits,
  type TeamConfig,
  type VirtualKeyConfig,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { compileLimits } from '../policy/rate-limits.ts';
import { AllowList, accessOfToolPatterns } from '../policy/allow-list.ts';
import { ExecutionPolicies } from '../policy/execution-policy.ts';
import type { Principal } from '../policy/principal.ts';

/** One configured virtual key: as sent, its hashes in hex, and the principal requests authenticate as. */
export interface KeyEntry {
  readonly config: VirtualKeyConfig;
  readonly hashHex: string;
  /** The secret a rotation replaced (hex SHA-256), accepted until `previousExpiresAtMs`; undefined: none. */
  readonly previousHashHex: string | undefined;
  readonly previousExpiresAtMs: number;
  /** When the key stops working (ms since the epoch); Infinity: never. */
  readonly expiresAtMs: number;
  readonly principal: Principal;
}

/** The teams and customers keys are compiled against, by id. */
export interface Directory {
  readonly teams: ReadonlyMap<string, TeamConfig>;
  readonly customers: ReadonlyMap<string, CustomerConfig>;
}

/** A key's entry, compiled against its team and customer; its allow-list leaves out what `policies` deny it. */
export function keyEntry(
  config: VirtualKeyConfig,
  directory: Directory = NO_DIRECTORY,
  policies: ExecutionPolicies = ExecutionPolicies.NONE,
): KeyEntry {
  const teamId = config.teamId || undefined;
  const access = config.access ?? accessOfToolPatterns(config.allowedTools);
  const previous = config.previousSecretSha256.length === 32 ? config.previousSecretSha256 : undefined;
  return {
    config,
    hashHex: Buffer.from(config.secretSha256).toString('hex'),
    previousHashHex: previous && Buffer.from(previous).toString('hex'),
    previousExpiresAtMs: previous ? config.previousSecretExpiresAtMs : 0,
    expiresAtMs: config.expiresAtMs > 0 ? config.expiresAtMs : Number.POSITIVE_INFINITY,
    principal: {
      keyId: config.id,
      keyName: config.name,
      codeMode: config.codeMode,
      auditContent: config.auditContent,
      ...governed(
        { kind: 'key', id: config.id, name: config.name, access, rateLimits: config.rateLimits },
        teamId,
        undefined,
        directory,
        policies,
      ),
    },
  };
}

/** Who a principal is, as far as governance goes: a virtual key, or a signed-in user (OAuth) standing in for one. */
export interface GovernedSelf {
  readonly kind: 'key' | 'user';
  /** The key's id, or the user's stand-in key id. */
  readonly id: string;
  readonly name: string;
  /** Its own lists: the key's, or the claim mapping's that admitted the user. */
  readonly access: AccessLists;
  /** The key's own rate limits (a user has none of its own). */
  readonly rateLimits?: RateLimits | undefined;
}

/**
 * What a principal in `teamId` is held to, compiled once per snapshot: its own lists and its team's
 * (a team this snapshot lacks allows nothing), the tools execution policies deny it, and the rate
 * limits and budgets of itself (a key), its team and the team's customer (or `customerId`, when a
 * claim mapping names one). Keys and signed-in users go through this one function, so neither is
 * held to less than the other.
 */
export function governed(
  self: GovernedSelf,
  teamId: string | undefined,
  customerId: string | undefined,
  directory: Directory,
  policies: ExecutionPolicies,
): Pick<Principal, 'teamId' | 'customerId' | 'allowList' | 'limits' | 'owners'> {
  const team = teamId ? directory.teams.get(teamId) : undefined;
  const customerOf = customerId ?? (team?.customerId || undefined);
  const customer = customerOf ? directory.customers.get(customerOf) : undefined;
  const denied = policies.empty
    ? undefined
    : (exposedName: string, upstream: string) => policies.denies(self.id, teamId, exposedName, upstream);
  return {
    teamId,
    customerId: customerOf,
    allowList: AllowList.of(self.access, teamId ? (team?.access ?? NOTHING) : undefined, denied),
    limits: [
      ...(self.kind === 'key' ? compileLimits('key', self.id, self.name, self.rateLimits) : []),
      ...(team ? compileLimits('team', team.id, team.name, team.rateLimits) : []),
      ...(customer ? compileLimits('customer', customer.id, customer.name, customer.rateLimits) : []),
    ],
    owners: [
      ...(self.kind === 'key' ? [`key:${self.id}`] : []),
      ...(teamId ? [`team:${teamId}`] : []),
      ...(customerOf ? [`customer:${customerOf}`] : []),
    ],
  };
}

const NO_DIRECTORY: Directory = { teams: new Map(), customers: new Map() };

/** Every list empty: allows nothing. */
const NOTHING = AccessLists.fromPartial({});

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
      if (previous) {
        byHash.delete(previous.hashHex);
        if (previous.previousHashHex !== undefined) byHash.delete(previous.previousHashHex);
      }
      byId.set(entry.config.id, entry);
      byHash.set(entry.hashHex, entry);
      if (entry.previousHashHex !== undefined) byHash.set(entry.previousHashHex, entry);
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
      if (gone.previousHashHex !== undefined) overlayByHash.set(gone.previousHashHex, null);
      size--;
    }
    for (const entry of upserted) {
      const current = overlayById.has(entry.config.id)
        ? overlayById.get(entry.config.id)
        : this.baseById.get(entry.config.id);
      if (current) {
        overlayByHash.set(current.hashHex, null);
        if (current.previousHashHex !== undefined) overlayByHash.set(current.previousHashHex, null);
      } else {
        size++;
      }
    }
    for (const entry of upserted) {
      overlayById.set(entry.config.id, entry);
      overlayByHash.set(entry.hashHex, entry);
      if (entry.previousHashHex !== undefined) overlayByHash.set(entry.previousHashHex, entry);
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
