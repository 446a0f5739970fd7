import type pg from 'pg';
import { CHAINED_COLUMNS, chainHash, type ChainedRow } from './audit-chain.ts';

export interface StoredRow extends ChainedRow {
  /** The stored link, hex. */
  readonly hash: string;
}

export interface ChainProblem {
  /** The row's id; null for a missing row whose id no surviving row names. */
  readonly id: string | null;
  readonly seq: string;
  readonly problem: 'altered' | 'inserted' | 'missing';
}

export interface ChainReport {
  readonly checked: number;
  readonly problems: ChainProblem[];
  /**
   * Where verification started: 0, the chain's start (retention's gaps are walked across); on a database from
   * before the gaps were recorded, after the last row dropped by retention.
   */
  readonly fromSeq: string;
  readonly headSeq: string;
}

/** Rows read per query. */
const PAGE = 5_000;

/**
 * Walks the stored audit chain in `seq` order and names every row that breaks it:
 *
 * - `altered`: a row in its place in the chain whose contents no longer hash to its stored link;
 * - `inserted`: a row that is not part of the chain (a second row at a position, whose `prev_id` is
 *   not the row before, a row past the head, or a row where retention dropped the chain's rows);
 * - `missing`: a position with no row that retention did not drop; its id is the `prev_id` the next
 *   surviving row names.
 *
 * The chain runs from its first row to the head (updated with every insert). Retention records the runs of
 * positions it drops (`audit_chain_gaps`): the chain goes on across each from the link of the last row in it,
 * so rows kept between dropped runs are checked too (a late record stored after newer days, then dropped with
 * its old day, leaves newer rows below the highest seq dropped). On a database from before the gaps were
 * recorded, verification starts after the anchor (the highest seq dropped), and rows kept below it are not
 * checked. Rows are read page by page: memory stays flat whatever the size. A row right after a missing one
 * cannot be checked against its predecessor's link (it is gone); it is taken as the new start. Rewriting rows
 * and every later link consistently, head included, is not detected by a chain alone: anchor the head
 * elsewhere (export it) to catch that.
 */
export async function verifyAuditChain(client: pg.ClientBase): Promise<ChainReport> {
  const head = (
    await client.query<{ seq: string; lastId: string | null; hash: string }>(
      `SELECT seq::text AS seq, last_id::text AS "lastId", encode(hash, 'hex') AS hash FROM audit_chain_head`,
    )
  ).rows[0] ?? { seq: '0', lastId: null, hash: '' };
  const gaps = await retentionGaps(client);
  const anchor =
    gaps === undefined
      ? (
          await client.query<{ seq: string; lastId: string | null; hash: string }>(
            `SELECT seq::text AS seq, last_id::text AS "lastId", encode(hash, 'hex') AS hash FROM audit_chain_anchor`,
          )
        ).rows[0]
      : undefined;
  const headSeq = BigInt(head.seq);
  let expectedSeq = BigInt(anchor?.seq ?? '0') + 1n;
  let prevId: string | null = anchor?.lastId ?? null;
  let prevHash: string | null = anchor?.hash ?? '';
  const problems: ChainProblem[] = [];
  let checked = 0;

  const gapAt = gapFinder(gaps ?? []);
  /**
   * The walk up to `seq`, from where it is: across the runs retention dropped (the chain goes on from the last
   * row of each) and over positions with no row (`missing`). `linked`: the position right before `seq` is
   * accounted for (a row or a dropped run), so the row at `seq` can be checked against the link before it.
   * Nothing moves until the caller takes the walk (a row at `seq` found genuine).
   */
  const walkTo = (seq: bigint) => {
    const walk = { expectedSeq, prevId, prevHash, missing: [] as bigint[], linked: true };
    while (walk.expectedSeq < seq) {
      const gap = gapAt(walk.expectedSeq);
      if (gap !== undefined && gap.to >= seq) break;
      if (gap !== undefined) {
        walk.prevId = gap.lastId;
        walk.prevHash = gap.lastHash;
        walk.expectedSeq = gap.to + 1n;
        walk.linked = true;
        continue;
      }
      walk.missing.push(walk.expectedSeq++);
      walk.linked = false;
    }
    return walk;
  };

  const groups = seqGroups(client, expectedSeq - 1n);
  let current = await groups.next();
  while (!current.done) {
    const group = current.value;
    const next = await groups.next();
    const seq = BigInt(group[0]!.seq);
    const dropped = gapAt(seq);
    if (dropped?.opaque === true) {
      // Kept below what retention dropped before the gaps were recorded: nothing to check it against.
      current = next;
      continue;
    }
    checked += group.length;
    if (seq > headSeq || dropped !== undefined) {
      for (const row of group) problems.push({ id: row.id, seq: row.seq, problem: 'inserted' });
      current = next;
      continue;
    }
    const walk = walkTo(seq);
    const { missing, linked } = walk;
    const following = next.done ? undefined : next.value;
    const verifies = (r: StoredRow) =>
      walk.prevHash !== null && r.prevId === walk.prevId && chainHash(walk.prevHash, r) === r.hash;
    const genuine =
      (linked ? group.find(verifies) : undefined) ??
      group.find((r) => following?.some((f) => f.prevId === r.id)) ??
      group.find((r) => r.prevId === walk.prevId && linked) ??
      group.find((r) => r.id === head.lastId) ??
      (group.length === 1 ? group[0] : undefined);
    if (genuine === undefined) {
      for (const row of group) problems.push({ id: row.id, seq: row.seq, problem: 'inserted' });
      current = next;
      continue;
    }
    for (const position of missing)
      problems.push({ id: position === seq - 1n ? genuine.prevId : null, seq: String(position), problem: 'missing' });
    const intact = linked && genuine.prevId === walk.prevId;
    if (intact && walk.prevHash !== null && chainHash(walk.prevHash, genuine) !== genuine.hash)
      problems.push({ id: genuine.id, seq: genuine.seq, problem: 'altered' });
    else if (linked && genuine.prevId !== walk.prevId)
      problems.push({ id: genuine.id, seq: genuine.seq, problem: 'altered' });
    for (const row of group) if (row !== genuine) problems.push({ id: row.id, seq: row.seq, problem: 'inserted' });
    prevId = genuine.id;
    prevHash = genuine.hash;
    expectedSeq = seq + 1n;
    current = next;
  }
  for (const position of walkTo(headSeq + 1n).missing)
    problems.push({ id: position === headSeq ? head.lastId : null, seq: String(position), problem: 'missing' });
  return { checked, problems, fromSeq: anchor?.seq ?? '0', headSeq: head.seq };
}

/** A run of chain positions retention dropped, and the last row in it (whose link the next row names). */
export interface RetentionGap {
  readonly from: bigint;
  readonly to: bigint;
  readonly lastId: string;
  readonly lastHash: string;
  /** Dropped before gaps were recorded: one gap up to the anchor, whose rows kept inside are not checked. */
  readonly opaque: boolean;
}

/**
 * The gap at a position that reaches furthest, if any, in O(log gaps): it is asked for every row, and a gap is
 * recorded for every retention run. `gaps` is ordered by `from`; they overlap only where retention dropped
 * rows kept inside the opaque gap of a database migrated with an anchor.
 */
export function gapFinder(gaps: readonly RetentionGap[]): (seq: bigint) => RetentionGap | undefined {
  // furthest[i]: of gaps[0..i], the one reaching furthest. Of the gaps starting at or before a position, only
  // that one can be the answer: if any of them covers the position, it does.
  const furthest: RetentionGap[] = [];
  for (const gap of gaps) {
    const before = furthest[furthest.length - 1];
    furthest.push(before !== undefined && before.to >= gap.to ? before : gap);
  }
  return (seq) => {
    let [low, high] = [0, gaps.length - 1];
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (gaps[middle]!.from <= seq) low = middle + 1;
      else high = middle - 1;
    }
    const candidate = furthest[high];
    return candidate !== undefined && candidate.to >= seq ? candidate : undefined;
  };
}

/** The gaps retention recorded, or undefined on a database not migrated since they were (no such table). */
async function retentionGaps(client: pg.ClientBase): Promise<RetentionGap[] | undefined> {
  const table = await client.query<{ name: string | null }>(`SELECT to_regclass('audit_chain_gaps')::text AS name`);
  if (table.rows[0]?.name == null) return undefined;
  const rows = await client.query<{ from: string; to: string; lastId: string; lastHash: string; opaque: boolean }>(
    `SELECT from_seq::text AS "from", to_seq::text AS "to", last_id::text AS "lastId",
            encode(last_hash, 'hex') AS "lastHash", opaque FROM audit_chain_gaps ORDER BY from_seq, to_seq`,
  );
  return rows.rows.map((r) => ({ ...r, from: BigInt(r.from), to: BigInt(r.to) }));
}

async function* seqGroups(client: pg.ClientBase, afterSeq: bigint): AsyncGenerator<StoredRow[]> {
  let after = afterSeq;
  let afterId = '';
  let group: StoredRow[] = [];
  for (;;) {
    const page = (
      await client.query<StoredRow>(
        `SELECT ${CHAINED_COLUMNS} FROM audit_events WHERE (audit_events.seq, audit_events.id::text) > ($1::bigint, ` +
          `$2) ORDER BY audit_events.seq, audit_events.id::text LIMIT ${PAGE}`,
        [String(after), afterId],
      )
    ).rows;
    for (const row of page) {
      if (group.length > 0 && group[0]!.seq !== row.seq) {
        yield group;
        group = [];
      }
      group.push(row);
    }
    if (page.length < PAGE) break;
    const last = page[page.length - 1]!;
    after = BigInt(last.seq);
    afterId = last.id;
  }
  if (group.length > 0) yield group;
}
