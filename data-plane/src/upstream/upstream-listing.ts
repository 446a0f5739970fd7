import { ProtocolError, type Client } from '@modelcontextprotocol/client';
import type { Logger } from '../../../common/src/index.ts';
import { PassthroughResult } from './upstream-relay.ts';
import type { CatalogKind } from './upstream-router.ts';

/** Listing an upstream's catalogs (tools, prompts, resources, resource templates), every page. */

export type CatalogItem = Readonly<Record<string, unknown>>;
/** One upstream's catalogs; a kind is absent when the upstream does not declare that capability. */
export type UpstreamCatalogs = Partial<Record<CatalogKind, readonly CatalogItem[]>>;

export const CATALOG_KINDS: readonly CatalogKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates'];

/** How each catalog is listed: method, result field, the capability that offers it, the field naming an entry. */
const LISTING: Record<CatalogKind, { method: string; field: string; capability: string; key: string }> = {
  tools: { method: 'tools/list', field: 'tools', capability: 'tools', key: 'name' },
  prompts: { method: 'prompts/list', field: 'prompts', capability: 'prompts', key: 'name' },
  resources: { method: 'resources/list', field: 'resources', capability: 'resources', key: 'uri' },
  resourceTemplates: {
    method: 'resources/templates/list',
    field: 'resourceTemplates',
    capability: 'resources',
    key: 'uriTemplate',
  },
};

const MAX_LIST_PAGES = 1_000;

/** Lists every catalog the upstream declares, all pages. A kind the upstream answers with an error is left empty. */
export async function listCatalogs(client: Client, timeoutMs: number, logger: Logger): Promise<UpstreamCatalogs> {
  const capabilities = (client.getServerCapabilities() ?? {}) as Record<string, unknown>;
  const kinds = CATALOG_KINDS.filter((kind) => capabilities[LISTING[kind].capability] !== undefined);
  const lists = await Promise.all(
    kinds.map(async (kind) => {
      try {
        return await listAll(client, kind, timeoutMs, logger);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        logger.warn(
          { err: error.message, kind },
          'upstream refused to list a catalog it declares; treating it as empty',
        );
        return [];
      }
    }),
  );
  return Object.fromEntries(kinds.map((kind, i) => [kind, lists[i]])) as UpstreamCatalogs;
}

/** Every entry of one catalog, following `nextCursor` (a repeated cursor or a list that never ends is an error). */
export async function listAll(
  client: Client,
  kind: CatalogKind,
  timeoutMs: number,
  logger: Logger,
): Promise<CatalogItem[]> {
  const { method, field, key } = LISTING[kind];
  const items: CatalogItem[] = [];
  const cursors = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; ; page++) {
    if (page === MAX_LIST_PAGES) throw new Error(`${method} did not end after ${MAX_LIST_PAGES} pages`);
    const result = await client.request({ method, params: cursor === undefined ? {} : { cursor } }, PassthroughResult, {
      timeout: timeoutMs,
    });
    const list = result[field];
    if (!Array.isArray(list)) throw new Error(`${method} answered without a "${field}" array`);
    for (const item of list) {
      if (isPlainObject(item) && typeof item[key] === 'string') items.push(item);
      else logger.warn({ kind }, `upstream listed an entry without a "${key}"; skipped`);
    }
    const next = result['nextCursor'];
    if (typeof next !== 'string' || next === '') return items;
    if (cursors.has(next)) throw new Error(`${method} repeated the cursor ${JSON.stringify(next)}`);
    cursors.add(next);
    cursor = next;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
