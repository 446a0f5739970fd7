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
  /** Where verification started: after the last row dropped by retention (0 when none was). */
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
 *   not the row before, or a row past the head);
 * - `missing`: a position with no row; its id is the `prev_id` the next surviving row names.
 *
 * The chain starts after the anchor (the last row dropped by retention) and ends at the head
 * (updated with every insert). Rows are read page by page: memory stays flat whatever the size.
 * A row right after a missing one cannot be checked against its predecessor's link (it is gone);
 * it is taken as the new start. Rewriting rows and every later link consistently, head included,
 * is not detected by a chain alone: anchor the head elsewhere (export it) to catch that.
 */
export async function verifyAuditChain(client: pg.ClientBase): Promise<ChainReport> {
  const head = (
    await client.query<{ seq: string; lastId: string | null; hash: string }>(
      `SELECT seq::text AS seq, last_id::text AS "lastId", encode(hash, 'hex') AS hash FROM audit_chain_head`,
    )
  ).rows[0] ?? { seq: '0', lastId: null, hash: '' };
  const anchor = (
    await client.query<{ seq: string; lastId: string | null; hash: string }>(
      `SELECT seq::text AS seq, last_id::text AS "lastId", encode(hash, 'hex') AS hash FROM audit_chain_anchor`,
    )
  ).rows[0];
  const headSeq = BigInt(head.seq);
  let expectedSeq = BigInt(anchor?.seq ?? '0') + 1n;
  let prevId: string | null = anchor?.lastId ?? null;
  let prevHash: string | null = anchor?.hash ?? '';
  const problems: ChainProblem[] = [];
  let checked = 0;

  const groups = seqGroups(client, BigInt(anchor?.seq ?? '0'));
  let current = await groups.next();
  while (!current.done) {
    const group = current.value;
    const next = await groups.next();
    const seq = BigInt(group[0]!.seq);
    checked += group.length;
    if (seq > headSeq) {
      for (const row of group) problems.push({ id: row.id, seq: row.seq, problem: 'inserted' });
      current = next;
      continue;
    }
    const following = next.done ? undefined : next.value;
    const verifies = (r: StoredRow) => prevHash !== null && r.prevId === prevId && chainHash(prevHash, r) === r.hash;
    const genuine =
      (seq === expectedSeq ? group.find(verifies) : undefined) ??
      group.find((r) => following?.some((f) => f.prevId === r.id)) ??
      group.find((r) => r.prevId === prevId && seq === expectedSeq) ??
      group.find((r) => r.id === head.lastId) ??
      (group.length === 1 ? group[0] : undefined);
    if (genuine === undefined) {
      for (const row of group) problems.push({ id: row.id, seq: row.seq, problem: 'inserted' });
      current = next;
      continue;
    }
    for (let missing = expectedSeq; missing < seq; missing++)
      problems.push({ id: missing === seq - 1n ? genuine.prevId : null, seq: String(missing), problem: 'missing' });
    const intact = seq === expectedSeq && genuine.prevId === prevId;
    if (intact && prevHash !== null && chainHash(prevHash, genuine) !== genuine.hash)
      problems.push({ id: genuine.id, seq: genuine.seq, problem: 'altered' });
    else if (seq === expectedSeq && genuine.prevId !== prevId)
      problems.push({ id: genuine.id, seq: genuine.seq, problem: 'altered' });
    for (const row of group) if (row !== genuine) problems.push({ id: row.id, seq: row.seq, problem: 'inserted' });
    prevId = genuine.id;
    prevHash = genuine.hash;
    expectedSeq = seq + 1n;
    current = next;
  }
  for (let missing = expectedSeq; missing <= headSeq; missing++)
    problems.push({ id: missing === headSeq ? head.lastId : null, seq: String(missing), problem: 'missing' });
  return { checked, problems, fromSeq: anchor?.seq ?? '0', headSeq: head.seq };
}

/** The stored rows after `afterSeq`, grouped by seq (a genuine chain has one row a seq). */
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
