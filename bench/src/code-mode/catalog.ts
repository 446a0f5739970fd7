import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from '../processes.ts';

/**
 * The recorded catalogs: one JSON file per real MCP server from npm (`bench/fixtures/catalogs/<server>.json`),
 * its `tools/list` output as the server sent it, with the package, version and how it was launched.
 * Written by `record-catalogs.ts`, served back by `recorded-upstream.mjs`.
 */

export const CATALOG_DIR = resolve(REPO_ROOT, 'bench/fixtures/catalogs');
export const RECORDED_UPSTREAM = resolve(REPO_ROOT, 'bench/src/code-mode/recorded-upstream.mjs');

const ToolSchema = z.looseObject({
  name: z.string().min(1),
  description: z.string().optional(),
  /** As the server sent it (some published servers omit `type: "object"`). */
  inputSchema: z.looseObject({}),
  outputSchema: z.looseObject({}).optional(),
});
export type RecordedTool = z.infer<typeof ToolSchema>;

export const CatalogSchema = z.object({
  /** The upstream's name in the gateway (tools are `<server>__<tool>`, scripts call `tools.<server>.<tool>`). */
  server: z.string().regex(/^[a-z0-9-]{1,32}$/, 'use 1-32 lower-case letters, digits or "-"'),
  package: z.string().min(1),
  version: z.string().min(1),
  /** How the server was started to record it (fake credentials named, never real ones). */
  launched: z.string().min(1),
  recordedAt: z.string(),
  serverInfo: z.looseObject({ name: z.string(), version: z.string() }),
  protocolVersion: z.string().optional(),
  tools: z.array(ToolSchema).min(1),
});
export type Catalog = z.infer<typeof CatalogSchema>;

export function catalogFile(server: string, dir = CATALOG_DIR): string {
  return join(dir, `${server}.json`);
}

/** Every recorded catalog, by server name, in file-name order. */
export function loadCatalogs(dir = CATALOG_DIR): Catalog[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const parsed = CatalogSchema.safeParse(JSON.parse(readFileSync(join(dir, f), 'utf8')));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new Error(`${join(dir, f)}: ${issue?.path.join('.')}: ${issue?.message}; re-record it`);
      }
      return parsed.data;
    });
}

/** `<server>/<tool>`: how tasks and subsets name a tool. */
export type ToolRef = `${string}/${string}`;

/**
 * The first `count` tools of the catalogs: every tool in `must` (the tools the tasks call), then the
 * others taken one server at a time in turn (round robin in catalog order), so a subset spans all
 * servers. Returned as `<server>/<tool>` in a stable order.
 */
export function toolSubset(catalogs: readonly Catalog[], count: number, must: readonly ToolRef[]): ToolRef[] {
  const queues = catalogs.map((c) => exposableTools(c).map((t) => `${c.server}/${t.name}` as ToolRef));
  const all = new Set<ToolRef>(queues.flat());
  for (const ref of must) {
    if (!all.has(ref)) throw new Error(`no recorded tool ${ref} the gateway exposes; tasks may call only those`);
  }
  const chosen = new Set<ToolRef>(must);
  for (let i = 0; chosen.size < Math.min(count, all.size); i++) {
    for (const queue of queues) {
      const ref = queue[i];
      if (ref !== undefined && chosen.size < count) chosen.add(ref);
    }
  }
  return [...chosen];
}

/** What the gateway exposes (data-plane/src/upstream/upstream-catalog.ts): `<server>__<tool>` of 1-64 letters,
 * digits, `_` or `-`. A longer name is left out by the gateway, so the benchmark leaves it out too. */
const EXPOSED_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function exposableTools(catalog: Catalog): RecordedTool[] {
  return catalog.tools.filter((t) => EXPOSED_NAME.test(`${catalog.server}__${t.name}`));
}

/** The name an agent sees through the gateway. */
export function exposedName(ref: ToolRef): string {
  const slash = ref.indexOf('/');
  return `${ref.slice(0, slash)}__${ref.slice(slash + 1)}`;
}
