import type {
  PromptArgumentSummary,
  PromptSummary,
  ResourceSummary,
  ResourceTemplateSummary,
} from '../../../proto/gen/portcullis/v1/config.ts';
import type { CatalogItem } from './upstream-listing.ts';

/**
 * What an upstream's prompts, resources and resource templates look like to an operator, as the node
 * reports them: names, URIs, titles, descriptions, arguments and MIME types, never the content. The
 * report is bounded whatever the upstream lists: at most MAX_REPORTED_ENTRIES a kind and
 * MAX_REPORTED_CHARS of text a kind (the first ones in the upstream's order), each text cut to its
 * limit; the total listed is reported beside, so a cut list is visible as such.
 */
export const MAX_REPORTED_ENTRIES = 1_000;
export const MAX_REPORTED_CHARS = 256 * 1024;

/** Longest text kept per field; identifiers (names, URIs) longer than theirs leave the entry out. */
export const SUMMARY_LIMITS = {
  name: 256,
  title: 256,
  description: 1_024,
  mimeType: 128,
  uri: 2_048,
  arguments: 32,
} as const;

export interface SummaryList<T> {
  readonly items: T[];
  /** How many the upstream listed (items may be fewer). */
  readonly total: number;
}

function text(value: unknown, max: number): string {
  if (typeof value !== 'string') return '';
  return value.length <= max ? value : `${value.slice(0, max - 1)}…`;
}

/** An identifier too long to cut (a cut name or URI would name something else): undefined. */
function identifier(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : undefined;
}

function promptArguments(value: unknown): PromptArgumentSummary[] {
  if (!Array.isArray(value)) return [];
  const out: PromptArgumentSummary[] = [];
  for (const argument of value.slice(0, SUMMARY_LIMITS.arguments)) {
    if (typeof argument !== 'object' || argument === null) continue;
    const record = argument as Record<string, unknown>;
    const name = identifier(record['name'], SUMMARY_LIMITS.name);
    if (name === undefined) continue;
    out.push({
      name,
      description: text(record['description'], SUMMARY_LIMITS.description),
      required: record['required'] === true,
    });
  }
  return out;
}

export function promptSummary(item: CatalogItem): PromptSummary | undefined {
  const name = identifier(item['name'], SUMMARY_LIMITS.name);
  if (name === undefined) return undefined;
  return {
    name,
    title: text(item['title'], SUMMARY_LIMITS.title),
    description: text(item['description'], SUMMARY_LIMITS.description),
    arguments: promptArguments(item['arguments']),
  };
}

export function resourceSummary(item: CatalogItem): ResourceSummary | undefined {
  const uri = identifier(item['uri'], SUMMARY_LIMITS.uri);
  if (uri === undefined) return undefined;
  const size = item['size'];
  return {
    uri,
    ...describedFields(item),
    size: typeof size === 'number' && Number.isSafeInteger(size) && size > 0 ? size : 0,
  };
}

export function resourceTemplateSummary(item: CatalogItem): ResourceTemplateSummary | undefined {
  const uriTemplate = identifier(item['uriTemplate'], SUMMARY_LIMITS.uri);
  if (uriTemplate === undefined) return undefined;
  return { uriTemplate, ...describedFields(item) };
}

/** What a resource and a resource template both say of themselves, within the limits. */
function describedFields(item: CatalogItem): Pick<ResourceSummary, 'name' | 'title' | 'description' | 'mimeType'> {
  return {
    name: text(item['name'], SUMMARY_LIMITS.name),
    title: text(item['title'], SUMMARY_LIMITS.title),
    description: text(item['description'], SUMMARY_LIMITS.description),
    mimeType: text(item['mimeType'], SUMMARY_LIMITS.mimeType),
  };
}

/** Characters of text a summary carries (what the per-kind budget counts). */
function weight(summary: object): number {
  let chars = 0;
  for (const value of Object.values(summary)) {
    if (typeof value === 'string') chars += value.length;
    else if (Array.isArray(value)) for (const nested of value) chars += weight(nested as object);
  }
  return chars;
}

/** The first summaries of `items` within the caps, and how many were listed. */
export function summarize<T extends object>(
  items: readonly CatalogItem[],
  summary: (item: CatalogItem) => T | undefined,
): SummaryList<T> {
  const out: T[] = [];
  let chars = 0;
  for (const item of items) {
    if (out.length >= MAX_REPORTED_ENTRIES) break;
    const entry = summary(item);
    if (entry === undefined) continue;
    chars += weight(entry);
    if (chars > MAX_REPORTED_CHARS) break;
    out.push(entry);
  }
  return { items: out, total: items.length };
}
