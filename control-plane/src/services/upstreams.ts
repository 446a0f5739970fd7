import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Upstream, type KeyValuePair, type TransportName } from '../db/entities.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { isUniqueViolation, parseId, parseInput } from './validation.ts';

/** Upstream names become tool prefixes (`<name>__<tool>`), so they are short and plain. */
export const UPSTREAM_NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const upstreamNameSchema = z
  .string()
  .regex(UPSTREAM_NAME_PATTERN, 'use 1-32 letters, digits, "_" or "-" (it becomes the tool prefix <name>__<tool>)')
  .refine((name) => !name.includes('__'), 'must not contain "__", which separates the upstream name from the tool name');

function pairsSchema(kind: 'environment variable' | 'header', pattern: RegExp) {
  return z
    .array(
      z.object({
        name: z.string().regex(pattern, kind === 'header' ? 'use a valid HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)' : 'use letters, digits and "_", not starting with a digit'),
        value: z.string().max(65536, 'is longer than 64 KiB; shorten it'),
      }),
    )
    .max(100, `has more than 100 entries; pass fewer`)
    .refine((pairs) => new Set(pairs.map((pair) => pair.name.toLowerCase())).size === pairs.length, `names a ${kind} twice; give each name once`);
}

const httpUrl = z.string().refine((value) => {
  if (!URL.canParse(value)) return false;
  const protocol = new URL(value).protocol;
  return protocol === 'http:' || protocol === 'https:';
}, 'must be an absolute http:// or https:// URL, e.g. https://mcp.example.com/mcp');

const createUpstreamSchema = z
  .object({
    name: upstreamNameSchema,
    transport: z.enum(['STDIO', 'STREAMABLE_HTTP', 'SSE'], 'must be one of STDIO, STREAMABLE_HTTP, SSE'),
    command: z.string().trim().min(1, 'is empty; give the program to run, e.g. "npx"').max(4096).nullish(),
    args: z.array(z.string().max(65536)).max(256, 'has more than 256 arguments').nullish(),
    env: pairsSchema('environment variable', ENV_NAME).nullish(),
    url: httpUrl.nullish(),
    headers: pairsSchema('header', HEADER_NAME).nullish(),
  })
  .superRefine((input, ctx) => {
    if (input.transport === 'STDIO') {
      if (!input.command) ctx.addIssue({ code: 'custom', path: ['command'], message: 'is required for a STDIO upstream; give the program to run, e.g. "npx"' });
      if (input.url != null) ctx.addIssue({ code: 'custom', path: ['url'], message: 'is only for STREAMABLE_HTTP and SSE upstreams; remove it or change the transport' });
      if (input.headers != null) ctx.addIssue({ code: 'custom', path: ['headers'], message: 'are only for STREAMABLE_HTTP and SSE upstreams; remove them or change the transport' });
    } else {
      if (!input.url) ctx.addIssue({ code: 'custom', path: ['url'], message: `is required for a ${input.transport} upstream; give the server's http(s) URL` });
      for (const field of ['command', 'args', 'env'] as const) {
        if (input[field] != null) ctx.addIssue({ code: 'custom', path: [field], message: `is only for STDIO upstreams; remove it or set transport: STDIO` });
      }
    }
  });

export type CreateUpstreamInput = z.input<typeof createUpstreamSchema>;

export interface UpstreamView {
  id: string;
  name: string;
  transport: TransportName;
  command: string | null;
  args: string[];
  /** Names only: values are write-only. */
  env: Array<{ name: string; isSet: boolean }>;
  url: string | null;
  headers: Array<{ name: string; isSet: boolean }>;
  createdAt: Date;
}

/** What the API may show of an upstream: never the values of env or headers. */
export function toUpstreamView(upstream: Upstream): UpstreamView {
  const names = (pairs: KeyValuePair[]) => pairs.map((pair) => ({ name: pair.name, isSet: pair.value.length > 0 }));
  return {
    id: upstream.id,
    name: upstream.name,
    transport: upstream.transport,
    command: upstream.command,
    args: upstream.args,
    env: names(upstream.env),
    url: upstream.url,
    headers: names(upstream.headers),
    createdAt: upstream.createdAt,
  };
}

export class UpstreamService {
  constructor(private readonly store: ConfigStore) {}

  async create(rawInput: unknown): Promise<UpstreamView> {
    const input = parseInput(createUpstreamSchema, rawInput, 'input');
    const upstream = Object.assign(new Upstream(), {
      id: randomUUID(),
      name: input.name,
      transport: input.transport,
      command: input.command ?? null,
      args: input.args ?? [],
      env: input.env ?? [],
      url: input.url ?? null,
      headers: input.headers ?? [],
      createdAt: new Date(),
    });
    try {
      await withConfigChange(this.store, async (manager) => {
        await manager.insert(Upstream, upstream);
        return { result: undefined, changed: true };
      });
    } catch (error) {
      if (isUniqueViolation(error, 'upstreams_name_key')) {
        throw new PortcullisError(
          ErrorCode.CONFLICT,
          `input.name: an upstream named "${input.name}" already exists; choose another name or delete the existing upstream first`,
          { field: 'input.name' },
        );
      }
      throw error;
    }
    return toUpstreamView(upstream);
  }

  /** Deletes an upstream with its tools and statuses. False when no such upstream exists. */
  async delete(rawId: string): Promise<boolean> {
    const id = parseId(rawId, 'id');
    return withConfigChange(this.store, async (manager) => {
      const result = await manager.delete(Upstream, { id });
      const deleted = (result.affected ?? 0) > 0;
      return { result: deleted, changed: deleted };
    });
  }

  async list(): Promise<UpstreamView[]> {
    const upstreams = await this.store.dataSource.getRepository(Upstream).find({ order: { name: 'ASC' } });
    return upstreams.map(toUpstreamView);
  }

  async get(rawId: string): Promise<UpstreamView | null> {
    const id = parseId(rawId, 'id');
    const upstream = await this.store.dataSource.getRepository(Upstream).findOneBy({ id });
    return upstream ? toUpstreamView(upstream) : null;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, UpstreamView>> {
    if (ids.length === 0) return new Map();
    const upstreams = await this.store.dataSource.getRepository(Upstream).createQueryBuilder('u').where('u.id IN (:...ids)', { ids: [...ids] }).getMany();
    return new Map(upstreams.map((upstream) => [upstream.id, toUpstreamView(upstream)]));
  }
}
