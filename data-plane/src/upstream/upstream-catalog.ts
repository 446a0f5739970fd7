import { UriTemplate } from '@modelcontextprotocol/client';
import { NAME_SEPARATOR } from '../policy/allow-list.ts';
import { definitionSha256 } from './tool-definition-hash.ts';
import type { ExposedTool, ToolDefinitionJson } from './tool-router.ts';
import type { CatalogItem, UpstreamCatalogs } from './upstream-listing.ts';
import type { CatalogEntry, CatalogKind } from './upstream-router.ts';

/** Names agents see (tools, prompts): what common model APIs accept. */
export const EXPOSED_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** One upstream as the merge sees it, in configured order. */
export interface CatalogSource {
  readonly upstreamName: string;
  readonly exposeUnprefixed: boolean;
  readonly pinToolDefinitions: boolean;
  /** Upstream tool name → pinned definition_sha256. */
  readonly pinnedTools: ReadonlyMap<string, string>;
  /** Undefined when the upstream is not serving (not connected, disabled). */
  readonly catalogs: UpstreamCatalogs | undefined;
}

/** A catalog entry that is also an exposed tool (tools only). */
export interface ToolEntry extends CatalogEntry, ExposedTool {
  readonly definition: ToolDefinitionJson;
}

export interface MergedCatalog {
  readonly entries: Readonly<Record<CatalogKind, readonly CatalogEntry[]>>;
  readonly index: Readonly<Record<CatalogKind, ReadonlyMap<string, CatalogEntry>>>;
  readonly tools: readonly ToolEntry[];
  readonly templates: readonly { readonly upstreamName: string; readonly template: UriTemplate }[];
  /** Per listed resource URI, every upstream listing it, in upstream order (the first serves keys that may use it). */
  readonly resourceUpstreams: ReadonlyMap<string, readonly string[]>;
  /** Per upstream: what an operator should know (names refused, collisions, tools held back). */
  readonly notes: ReadonlyMap<string, readonly string[]>;
}

const hashes = new WeakMap<object, string>();

/** definition_sha256 of a listed tool (memoized per listed object). */
export function toolHash(tool: CatalogItem): string {
  let hash = hashes.get(tool);
  if (hash === undefined) {
    hash = definitionSha256(tool);
    hashes.set(tool, hash);
  }
  return hash;
}

export function exposedName(source: Pick<CatalogSource, 'upstreamName' | 'exposeUnprefixed'>, name: string): string {
  return source.exposeUnprefixed ? name : `${source.upstreamName}${NAME_SEPARATOR}${name}`;
}

/**
 * Merges the upstreams' catalogs in upstream order. Tools and prompts get their exposed names;
 * an entry whose exposed name is invalid or already taken by an earlier upstream is left out and
 * noted; a pinned tool whose definition changed is held back and noted; a resource URI listed by
 * two upstreams is noted and served by the first of them that the asking key may use (so an
 * upstream a key cannot see never hides another's resources from it): `entries.resources` holds
 * every upstream's entry, `index.resources` the first.
 */
export function mergeCatalogs(sources: readonly CatalogSource[]): MergedCatalog {
  const notes = new Map<string, string[]>();
  const note = (upstream: string, text: string) => {
    const list = notes.get(upstream) ?? [];
    list.push(text);
    notes.set(upstream, list);
  };
  const entries: Record<CatalogKind, CatalogEntry[]> = { tools: [], prompts: [], resources: [], resourceTemplates: [] };
  const index: Record<CatalogKind, Map<string, CatalogEntry>> = {
    tools: new Map(),
    prompts: new Map(),
    resources: new Map(),
    resourceTemplates: new Map(),
  };
  const tools: ToolEntry[] = [];
  const templates: { upstreamName: string; template: UriTemplate }[] = [];
  const resourceUpstreams = new Map<string, string[]>();

  for (const source of sources) {
    const catalogs = source.catalogs;
    if (!catalogs) continue;
    const upstreamName = source.upstreamName;

    for (const kind of ['tools', 'prompts'] as const) {
      const what = kind === 'tools' ? 'tool' : 'prompt';
      for (const item of catalogs[kind] ?? []) {
        const name = item['name'] as string;
        const exposed = exposedName(source, name);
        if (!EXPOSED_NAME.test(exposed)) {
          note(upstreamName, `${what} "${name}" not exposed: "${exposed}" is not 1-64 letters, digits, _ or -`);
          continue;
        }
        const taken = index[kind].get(exposed);
        if (taken) {
          note(
            upstreamName,
            `${what} "${name}" not exposed: the name "${exposed}" is already taken by upstream "${taken.upstreamName}"`,
          );
          continue;
        }
        if (kind === 'tools' && source.pinToolDefinitions) {
          const pinned = source.pinnedTools.get(name);
          const current = toolHash(item);
          if (pinned !== undefined && pinned !== current) {
            note(
              upstreamName,
              `tool "${name}" held back: its definition changed since it was pinned (pinned ${pinned.slice(0, 12)}, ` +
                `now ${current.slice(0, 12)})`,
            );
            continue;
          }
        }
        const definition = { ...item, name: exposed };
        if (kind === 'tools') {
          const entry: ToolEntry = {
            upstreamName,
            key: exposed,
            upstreamKey: name,
            definition,
            exposedName: exposed,
            toolName: name,
          };
          tools.push(entry);
          entries.tools.push(entry);
          index.tools.set(exposed, entry);
        } else {
          const entry: CatalogEntry = { upstreamName, key: exposed, upstreamKey: name, definition };
          entries.prompts.push(entry);
          index.prompts.set(exposed, entry);
        }
      }
    }

    for (const item of catalogs.resources ?? []) {
      const uri = item['uri'] as string;
      const listedBy = resourceUpstreams.get(uri);
      if (listedBy?.includes(upstreamName)) continue;
      const entry: CatalogEntry = { upstreamName, key: uri, upstreamKey: uri, definition: item };
      entries.resources.push(entry);
      if (listedBy) {
        note(
          upstreamName,
          `resource "${uri}" is also listed by upstream "${listedBy[0]}", which serves it to keys that may use both`,
        );
        listedBy.push(upstreamName);
        continue;
      }
      resourceUpstreams.set(uri, [upstreamName]);
      index.resources.set(uri, entry);
    }

    for (const item of catalogs.resourceTemplates ?? []) {
      const uriTemplate = item['uriTemplate'] as string;
      const entry: CatalogEntry = { upstreamName, key: uriTemplate, upstreamKey: uriTemplate, definition: item };
      entries.resourceTemplates.push(entry);
      if (!index.resourceTemplates.has(uriTemplate)) index.resourceTemplates.set(uriTemplate, entry);
      try {
        templates.push({ upstreamName, template: new UriTemplate(uriTemplate) });
      } catch (error) {
        note(
          upstreamName,
          `resource template "${uriTemplate}" cannot be matched: ` +
            `${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }
  return { entries, index, tools, templates, resourceUpstreams, notes };
}

/**
 * The upstream serving `uri` among those `usable` admits (all by default): the first listing it,
 * else the first whose template matches it.
 */
export function routeResource(
  merged: MergedCatalog,
  uri: string,
  usable: (upstream: string) => boolean = () => true,
): string | undefined {
  const listed = merged.resourceUpstreams.get(uri)?.find(usable);
  if (listed !== undefined) return listed;
  for (const { upstreamName, template } of merged.templates) {
    if (!usable(upstreamName)) continue;
    try {
      if (template.match(uri) !== null) return upstreamName;
    } catch {
      // a template that cannot match this URI (e.g. too long) is not a match
    }
  }
  return undefined;
}
