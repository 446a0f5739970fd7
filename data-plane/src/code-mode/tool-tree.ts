import type { CatalogEntry } from '../upstream/upstream-router.ts';
import { firstSentence, toolStub } from './tool-stubs.ts';

/**
 * The virtual file tree of code mode for one view of the catalog (what one key may call of the
 * upstreams it sees in code mode): `servers/<upstream>/<tool>.d.ts` per tool and
 * `servers/<upstream>.d.ts` per server, stubs generated on first read; and word search over names
 * and descriptions. Built once per catalog view and code-mode scope, reused until either changes.
 */

interface ToolFile {
  readonly path: string;
  readonly upstream: string;
  readonly tool: string;
  readonly entry: CatalogEntry;
  /** Lower-case words of the tool name, of the upstream name, and of the description. */
  readonly nameWords: readonly string[];
  readonly upstreamWords: readonly string[];
  readonly descriptionWords: ReadonlySet<string>;
  readonly summary: string;
  stub?: string;
}

/** Splits names and text into lower-case words: `getUserById`, `get_user-by id` → get, user, by, id. */
export function words(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

/** Weights of a query word matching a tool's name, its upstream's name, its description. */
const NAME_WEIGHT = 3;
const UPSTREAM_WEIGHT = 2;
const DESCRIPTION_WEIGHT = 1;
/** A word matching only the start of another (`repo` in `repositories`) counts this much of a whole match. */
const PREFIX_FACTOR = 0.5;
const MIN_PREFIX = 3;

function matchIn(word: string, candidates: Iterable<string>): number {
  let best = 0;
  for (const candidate of candidates) {
    if (candidate === word) return 1;
    if (
      word.length >= MIN_PREFIX &&
      (candidate.startsWith(word) || (word.startsWith(candidate) && candidate.length >= MIN_PREFIX))
    )
      best = PREFIX_FACTOR;
  }
  return best;
}

export class ToolTree {
  private readonly files = new Map<string, ToolFile>();
  private readonly byUpstream = new Map<string, ToolFile[]>();
  private readonly serverStubs = new Map<string, string>();

  constructor(entries: readonly CatalogEntry[]) {
    for (const entry of entries) {
      const upstream = entry.upstreamName;
      const tool = entry.upstreamKey;
      const path = `servers/${upstream}/${tool}.d.ts`;
      const description = entry.definition['description'];
      const file: ToolFile = {
        path,
        upstream,
        tool,
        entry,
        nameWords: words(tool),
        upstreamWords: words(upstream),
        descriptionWords: new Set(typeof description === 'string' ? words(description) : []),
        summary: firstSentence(description),
      };
      this.files.set(path, file);
      let list = this.byUpstream.get(upstream);
      if (list === undefined) this.byUpstream.set(upstream, (list = []));
      list.push(file);
    }
  }

  get size(): number {
    return this.files.size;
  }

  /** Tools best matching the words of `query`, one line each: `<path> — <first sentence>`. Ties keep catalog order. */
  search(query: string, limit: number): string[] {
    const wanted = [...new Set(words(query))];
    if (wanted.length === 0) return [];
    const phrase = wanted.join('');
    const scored: Array<{ file: ToolFile; score: number; order: number }> = [];
    let order = 0;
    for (const file of this.files.values()) {
      let score = 0;
      for (const word of wanted) {
        score += Math.max(
          NAME_WEIGHT * matchIn(word, file.nameWords),
          UPSTREAM_WEIGHT * matchIn(word, file.upstreamWords),
          DESCRIPTION_WEIGHT * matchIn(word, file.descriptionWords),
        );
      }
      // The whole query naming the tool (`get_sum` for `get-sum`) ranks it first.
      if (file.nameWords.join('') === phrase) score += NAME_WEIGHT * wanted.length;
      if (score > 0) scored.push({ file, score, order: order++ });
    }
    scored.sort((a, b) => b.score - a.score || a.order - b.order);
    return scored
      .slice(0, limit)
      .map(({ file }) => (file.summary === '' ? file.path : `${file.path} — ${file.summary}`));
  }

  /** The paths under `path` (`servers` when omitted), one level deep; undefined when it names no directory. */
  list(path: string | undefined): string[] | undefined {
    const dir = (path ?? 'servers').replace(/^\.?\/+/, '').replace(/\/+$/, '');
    if (dir === '' || dir === 'servers') {
      return [...this.byUpstream.keys()].flatMap((upstream) => [`servers/${upstream}/`, `servers/${upstream}.d.ts`]);
    }
    const upstream = dir.startsWith('servers/') ? dir.slice('servers/'.length) : undefined;
    const files = upstream === undefined ? undefined : this.byUpstream.get(upstream);
    return files?.map((file) => file.path);
  }

  /** The text of one file, or undefined when the tree has no such file. */
  read(path: string): string | undefined {
    const clean = path.replace(/^\.?\/+/, '');
    const file = this.files.get(clean);
    if (file !== undefined) {
      file.stub ??= toolStub({ upstream: file.upstream, tool: file.tool, definition: file.entry.definition });
      return file.stub;
    }
    const server = /^servers\/([^/]+)\.d\.ts$/.exec(clean)?.[1];
    const files = server === undefined ? undefined : this.byUpstream.get(server);
    if (files === undefined) return undefined;
    let stub = this.serverStubs.get(server!);
    if (stub === undefined) {
      stub = files.map((f) => this.read(f.path)!).join('\n');
      this.serverStubs.set(server!, stub);
    }
    return stub;
  }
}
