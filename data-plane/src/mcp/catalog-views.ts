import type { AllowList } from '../policy/allow-list.ts';
import type { CatalogEntry, CatalogKind, UpstreamRouter } from '../upstream/upstream-router.ts';

/** The JSON array field each catalog is listed under. */
export const LIST_FIELD: Readonly<Record<CatalogKind, string>> = {
  tools: 'tools',
  prompts: 'prompts',
  resources: 'resources',
  resourceTemplates: 'resourceTemplates',
};

/** One page of a filtered catalog, pre-serialized. */
export interface CatalogPage {
  /** `JSON.stringify` of the definitions on this page, spliced into list responses as is. */
  readonly json: string;
  /** The cursor of the next page, or undefined on the last one. */
  readonly nextCursor: string | undefined;
}

/** What one allow-list may see of one catalog. */
export interface CatalogView {
  readonly entries: readonly CatalogEntry[];
  /** `JSON.stringify` of every visible definition (also what list_changed compares). */
  readonly json: string;
  /** Pages by start offset, filled lazily. */
  readonly pages: Map<number, CatalogPage>;
}

interface AllowListViews {
  readonly views: Partial<Record<CatalogKind, CatalogView>>;
  /** Upstreams whose resources this allow-list may see, computed lazily. */
  usable?: ReadonlySet<string>;
}

const CURSOR_PREFIX = 'pc1:';

/**
 * The opaque cursor for a page starting at `offset` (encoded, not signed: it only says where to continue in what the
 * key may see anyway).
 */
export function encodeCursor(offset: number): string {
  return Buffer.from(`${CURSOR_PREFIX}${offset}`).toString('base64url');
}

/** The offset a cursor names, or undefined when it is not one of ours. */
export function decodeCursor(cursor: string): number | undefined {
  if (cursor.length > 64) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(CURSOR_PREFIX)) return undefined;
  const offset = Number(text.slice(CURSOR_PREFIX.length));
  return Number.isSafeInteger(offset) && offset > 0 ? offset : undefined;
}

/**
 * What each allow-list may see of the router's merged catalogs, computed once per allow-list and
 * catalog and reused until that catalog changes. Allow-lists are compiled once per snapshot, so
 * keying by instance is exact and a new snapshot naturally misses.
 *
 * Visibility: tools and prompts by their exposed `<upstream>__<name>` (each by its own lists);
 * resources and resource templates (URIs are not namespaced) by URI and upstream (see AllowList).
 * Whatever a list hides is treated everywhere as if it did not exist.
 */
export class CatalogViews {
  private cache = new WeakMap<AllowList, AllowListViews>();
  private readonly listeners = new Set<(kind: CatalogKind) => void>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly router: UpstreamRouter,
    /** Entries per list page; 0 puts every entry on one page. */
    private readonly pageSize: number,
  ) {
    this.unsubscribe = router.onCatalogChanged((kind) => {
      this.cache = new WeakMap();
      for (const listener of this.listeners) listener(kind);
    });
  }

  view(allowList: AllowList, kind: CatalogKind): CatalogView {
    const views = this.viewsFor(allowList);
    let view = views.views[kind];
    if (view === undefined) {
      const all = this.router.catalog(kind);
      let entries: readonly CatalogEntry[];
      if (kind === 'tools') entries = all.filter((e) => allowList.allows(e.key, e.upstreamName));
      else if (kind === 'prompts') entries = all.filter((e) => allowList.allowsPrompt(e.key, e.upstreamName));
      else {
        entries = all.filter((e) => allowList.allowsResource(e.key, e.upstreamName));
        // A URI listed by several upstreams is listed once, by the first this key may use (the one reads route to).
        if (kind === 'resources') {
          const seen = new Set<string>();
          entries = entries.filter((e) => {
            if (seen.has(e.key)) return false;
            seen.add(e.key);
            return true;
          });
        }
      }
      view = { entries, json: JSON.stringify(entries.map((e) => e.definition)), pages: new Map() };
      views.views[kind] = view;
    }
    return view;
  }

  /** The page starting at `offset` (0 for the first). */
  page(allowList: AllowList, kind: CatalogKind, offset: number): CatalogPage | undefined {
    const view = this.view(allowList, kind);
    if (offset === 0 && (this.pageSize === 0 || view.entries.length <= this.pageSize)) {
      let whole = view.pages.get(0);
      if (whole === undefined) view.pages.set(0, (whole = { json: view.json, nextCursor: undefined }));
      return whole;
    }
    if (offset >= view.entries.length && offset !== 0) return undefined;
    let page = view.pages.get(offset);
    if (page === undefined) {
      const end = this.pageSize === 0 ? view.entries.length : offset + this.pageSize;
      const slice = view.entries.slice(offset, end);
      page = {
        json: JSON.stringify(slice.map((e) => e.definition)),
        nextCursor: end < view.entries.length ? encodeCursor(end) : undefined,
      };
      view.pages.set(offset, page);
    }
    return page;
  }

  /** The tool or prompt if it exists and this allow-list may use it; otherwise undefined, indistinguishably. */
  findAllowed(allowList: AllowList, kind: 'tools' | 'prompts', exposedName: string): CatalogEntry | undefined {
    const entry = this.router.find(kind, exposedName);
    if (entry === undefined) return undefined;
    const allowed =
      kind === 'tools'
        ? allowList.allows(entry.key, entry.upstreamName)
        : allowList.allowsPrompt(entry.key, entry.upstreamName);
    return allowed ? entry : undefined;
  }

  /**
   * Whether this allow-list may use `upstream` at all (any tool, prompt or resource of it): what
   * tasks, resource subscriptions' notifications and completions of templates are admitted by.
   */
  mayUseUpstream(allowList: AllowList, upstream: string): boolean {
    return this.usableUpstreams(allowList, this.viewsFor(allowList)).has(upstream);
  }

  /** Whether this allow-list may read `uri` from `upstream` (resources/read, subscriptions). */
  mayReadResource(allowList: AllowList, uri: string, upstream: string): boolean {
    return allowList.allowsResource(uri, upstream);
  }

  /** Called after the cache was dropped because a catalog changed. */
  onChanged(listener: (kind: CatalogKind) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.unsubscribe();
    this.listeners.clear();
  }

  private viewsFor(allowList: AllowList): AllowListViews {
    let views = this.cache.get(allowList);
    if (views === undefined) this.cache.set(allowList, (views = { views: {} }));
    return views;
  }

  private usableUpstreams(allowList: AllowList, views: AllowListViews): ReadonlySet<string> {
    if (views.usable !== undefined) return views.usable;
    const usable = new Set<string>();
    for (const upstream of this.router.upstreams())
      if (allowList.grantsUpstreamResources(upstream.name)) usable.add(upstream.name);
    const checks = {
      tools: (e: CatalogEntry) => allowList.allows(e.key, e.upstreamName),
      prompts: (e: CatalogEntry) => allowList.allowsPrompt(e.key, e.upstreamName),
      resources: (e: CatalogEntry) => allowList.allowsResource(e.key, e.upstreamName),
      resourceTemplates: (e: CatalogEntry) => allowList.allowsResource(e.key, e.upstreamName),
    } satisfies Record<CatalogKind, (e: CatalogEntry) => boolean>;
    for (const kind of ['tools', 'prompts', 'resources', 'resourceTemplates'] as const) {
      for (const entry of this.router.catalog(kind))
        if (!usable.has(entry.upstreamName) && checks[kind](entry)) usable.add(entry.upstreamName);
    }
    views.usable = usable;
    return usable;
  }
}
