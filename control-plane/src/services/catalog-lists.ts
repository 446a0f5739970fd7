import { createHash } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { UpstreamCatalogList, type CatalogListKind, type CatalogSummaryJson } from '../db/entities.ts';

/** One reported list: present only when the node listed that kind (the upstream declares it). */
export interface ReportedCatalogList {
  readonly kind: CatalogListKind;
  readonly entries: readonly CatalogSummaryJson[];
  readonly total: number;
}

/** Keys kept per change (added, removed, changed each): enough to see what moved, bounded whatever moved. */
export const MAX_CHANGE_KEYS = 100;

interface StoredListRow {
  kind: CatalogListKind;
  entries: CatalogSummaryJson[];
  total: number;
  content_sha256: string;
}

/** The key an entry is known by: a prompt's name, a resource's URI, a template's URI template. */
export function catalogKey(entry: CatalogSummaryJson): string {
  if ('uriTemplate' in entry) return entry.uriTemplate;
  if ('uri' in entry) return entry.uri;
  return entry.name;
}

function contentHash(list: ReportedCatalogList): string {
  return createHash('sha256')
    .update(JSON.stringify([list.total, list.entries]))
    .digest('hex');
}

/** Keys added, removed and altered between two lists, each capped at MAX_CHANGE_KEYS. */
export function diffLists(
  before: readonly CatalogSummaryJson[],
  after: readonly CatalogSummaryJson[],
): { added: string[]; removed: string[]; changed: string[] } {
  const old = new Map(before.map((entry) => [catalogKey(entry), JSON.stringify(entry)]));
  const added: string[] = [];
  const changed: string[] = [];
  const seen = new Set<string>();
  for (const entry of after) {
    const key = catalogKey(entry);
    seen.add(key);
    const previous = old.get(key);
    if (previous === undefined) {
      if (added.length < MAX_CHANGE_KEYS) added.push(key);
    } else if (previous !== JSON.stringify(entry) && changed.length < MAX_CHANGE_KEYS) changed.push(key);
  }
  const removed: string[] = [];
  for (const key of old.keys()) if (!seen.has(key) && removed.length < MAX_CHANGE_KEYS) removed.push(key);
  return { added, removed, changed };
}

/**
 * Stores a node's prompts, resources and templates lists of one upstream, inside the report's
 * transaction (the upstream row is locked by the caller). A list whose content is what is stored
 * only moves `reported_at`; a changed one is replaced, with `changed_at` and what changed. These
 * lists are not part of the configuration nodes are sent: nothing here moves the revision.
 */
export async function applyCatalogLists(
  manager: EntityManager,
  upstreamId: string,
  nodeId: string,
  lists: readonly ReportedCatalogList[],
): Promise<CatalogListKind[]> {
  if (lists.length === 0) return [];
  const stored: StoredListRow[] = await manager.query(
    `SELECT kind, entries, total, content_sha256 FROM upstream_catalog_lists WHERE upstream_id = $1 AND kind = ` +
      `ANY($2::text[]) FOR UPDATE`,
    [upstreamId, lists.map((list) => list.kind)],
  );
  const byKind = new Map(stored.map((row) => [row.kind, row]));
  const changedKinds: CatalogListKind[] = [];
  for (const list of lists) {
    const sha = contentHash(list);
    const row = byKind.get(list.kind);
    if (row?.content_sha256 === sha) {
      await manager.query(
        `UPDATE upstream_catalog_lists SET reported_at = clock_timestamp() WHERE upstream_id = $1 AND kind = $2`,
        [upstreamId, list.kind],
      );
      continue;
    }
    changedKinds.push(list.kind);
    const diff = diffLists(row?.entries ?? [], list.entries);
    await manager.query(
      `INSERT INTO upstream_catalog_lists (upstream_id, kind, entries, total, content_sha256, added, removed, changed,
       node_id, changed_at, reported_at)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, t.at, t.at FROM (SELECT clock_timestamp() AS at) AS t
       ON CONFLICT (upstream_id, kind) DO UPDATE SET entries = EXCLUDED.entries, total = EXCLUDED.total,
         content_sha256 = EXCLUDED.content_sha256,
         added = EXCLUDED.added, removed = EXCLUDED.removed, changed = EXCLUDED.changed, node_id = EXCLUDED.node_id,
         changed_at = EXCLUDED.changed_at, reported_at = EXCLUDED.reported_at`,
      [
        upstreamId,
        list.kind,
        JSON.stringify(list.entries),
        list.total,
        sha,
        JSON.stringify(diff.added),
        JSON.stringify(diff.removed),
        JSON.stringify(diff.changed),
        nodeId,
      ],
    );
  }
  return changedKinds;
}

/** The stored lists of each upstream (PROMPTS, RESOURCES, RESOURCE_TEMPLATES order). */
export async function catalogListsOf(
  dataSource: DataSource,
  upstreamIds: readonly string[],
): Promise<UpstreamCatalogList[]> {
  if (upstreamIds.length === 0) return [];
  return dataSource
    .getRepository(UpstreamCatalogList)
    .createQueryBuilder('l')
    .where('l.upstreamId IN (:...ids)', { ids: [...upstreamIds] })
    .orderBy('l.kind', 'ASC')
    .getMany();
}
