import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Upstream, type KeyValuePair, type StoredSecretPair, type TransportName } from '../db/entities.ts';
import { openBearer, openPairs, resealAll, sealBearer, sealPairs, type SecretBox } from '../secrets/index.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { collisionsOf, describeCollisions, lockExposedNames } from './exposed-names.ts';
import { MAX_PAGE_SIZE, rowsById, unknownCursor, type Page } from './pagination.ts';
import { badInput, isUniqueViolation, parseId, parseInput } from './validation.ts';

/** Upstream names become tool prefixes (`<name>__<tool>`), so they are short and plain. */
export const UPSTREAM_NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the node's MCP transport sets itself; an upstream may not override them. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);

export const upstreamNameSchema = z
  .string()
  .regex(UPSTREAM_NAME_PATTERN, 'use 1-32 letters, digits, "_" or "-" (it becomes the tool prefix <name>__<tool>)')
  .refine(
    (name) => !name.includes('__'),
    'must not contain "__", which separates the upstream name from the tool name',
  );

function pairsSchema(kind: 'environment variable' | 'header', pattern: RegExp) {
  return z
    .array(
      z.object({
        name: z
          .string()
          .regex(
            pattern,
            kind === 'header'
              ? "use a valid HTTP header name (letters, digits and !#$%&'*+.^_`|~-)"
              : 'use letters, digits and "_", not starting with a digit',
          )
          .refine(
            (name) => kind !== 'header' || !RESERVED_HEADERS.has(name.toLowerCase()),
            "is set by the gateway's MCP transport itself; remove this header",
          ),
        value: z
          .string()
          .max(65536, 'is longer than 64 KiB; shorten it')
          .refine(
            (value) => kind !== 'header' || !/[\r\n\0]/.test(value),
            'must not contain line breaks or NUL characters',
          ),
      }),
    )
    .max(100, `has more than 100 entries; pass fewer`)
    .refine(
      (pairs) => new Set(pairs.map((pair) => pair.name.toLowerCase())).size === pairs.length,
      `names a ${kind} twice; give each name once`,
    );
}

/**
 * Query parameter names that carry a credential, compared lower-case without "-" and "_": an
 * exact name, or one containing a word that only credentials use. URLs are stored and shown in
 * clear (GraphQL `url`, logs, node reports), so a secret must come as bearerToken or headers,
 * which are encrypted at rest and write-only.
 */
const SECRET_PARAM_NAMES = new Set(['key', 'sig', 'auth', 'pass', 'jwt', 'hmac']);
const SECRET_PARAM_WORDS = [
  'token',
  'secret',
  'password',
  'passwd',
  'pwd',
  'apikey',
  'accesskey',
  'signature',
  'credential',
  'authorization',
  'privatekey',
  'sessionid',
];

/** The first query parameter of `url` whose name looks like a credential, if any. */
export function secretLookingParam(url: URL): string | undefined {
  for (const name of url.searchParams.keys()) {
    const plain = name.toLowerCase().replace(/[-_]/g, '');
    if (SECRET_PARAM_NAMES.has(plain) || SECRET_PARAM_WORDS.some((word) => plain.includes(word))) return name;
  }
  return undefined;
}

const httpUrl = z
  .string()
  .max(8192, 'is longer than 8192 characters')
  .refine((value) => {
    if (!URL.canParse(value)) return false;
    const protocol = new URL(value).protocol;
    return protocol === 'http:' || protocol === 'https:';
  }, 'must be an absolute http:// or https:// URL, e.g. https://mcp.example.com/mcp')
  .refine((value) => {
    // An unparsable URL is refused above (zod runs every check); here it only must not throw.
    const url = URL.parse(value);
    return url === null || (url.username === '' && url.password === '');
  }, 'must not carry credentials (user:password@host): URLs are stored and shown in clear; give the credential as ' +
    'bearerToken or in headers, which are encrypted and never returned')
  .superRefine((value, ctx) => {
    const url = URL.parse(value);
    const param = url === null ? undefined : secretLookingParam(url);
    if (param === undefined) return;
    ctx.addIssue({
      code: 'custom',
      // The name only: the value is the secret.
      message:
        `has a query parameter "${param}" that looks like a credential: URLs are stored and shown in clear; ` +
        `send it as a header (headers) or bearerToken, which are encrypted and never returned`,
    });
  });

function millis(min: number, max: number, what: string) {
  return z
    .number()
    .int('must be a whole number of milliseconds')
    .min(min, `must be at least ${min} ms (${what}); omit it or pass null for the node's default`)
    .max(max, `must be at most ${max} ms (${what})`);
}

/**
 * The values of an upstream's `protocolVersion`: how nodes negotiate (auto, legacy, modern) or one
 * exact MCP revision (the ones the nodes' SDK client speaks).
 */
export const PROTOCOL_VERSION_SETTINGS: readonly string[] = [
  'auto',
  'legacy',
  'modern',
  '2024-11-05',
  '2025-03-26',
  '2025-06-18',
  '2025-11-25',
  '2026-07-28',
];

const settingsFields = {
  command: z.string().trim().min(1, 'is empty; give the program to run, e.g. "npx"').max(4096).nullish(),
  args: z.array(z.string().max(65536)).max(256, 'has more than 256 arguments').nullish(),
  env: pairsSchema('environment variable', ENV_NAME).nullish(),
  cwd: z
    .string()
    .max(4096, 'is longer than 4096 characters')
    .refine(
      (cwd) => /^(\/|[A-Za-z]:[\\/])/.test(cwd) && !cwd.includes('\0'),
      'must be an absolute directory path on the data-plane nodes, e.g. /srv/mcp',
    )
    .nullish(),
  url: httpUrl.nullish(),
  headers: pairsSchema('header', HEADER_NAME).nullish(),
  bearerToken: z
    .string()
    .min(1, 'is empty; give the token, or null to remove it')
    .max(8192, 'is longer than 8192 characters')
    .refine(
      (token) => /^[\x21-\x7e]+$/.test(token),
      'must be printable ASCII without spaces (it is sent as "Authorization: Bearer <token>")',
    )
    .nullish(),
  connectTimeoutMs: millis(100, 600_000, 'connecting and the MCP handshake').nullish(),
  callTimeoutMs: millis(100, 86_400_000, 'one call').nullish(),
  healthIntervalMs: millis(1000, 86_400_000, 'between health pings').nullish(),
  healthFailureThreshold: z
    .number()
    .int('must be a whole number')
    .min(1, "must be at least 1; omit it or pass null for the node's default")
    .max(1000, 'must be at most 1000')
    .nullish(),
  enabled: z.boolean().nullish(),
  pinToolDefinitions: z.boolean().nullish(),
  exposeUnprefixed: z.boolean().nullish(),
  codeMode: z.boolean().nullish(),
  auditContent: z.boolean('must be true or false').nullish(),
  protocolVersion: z
    .string()
    .refine((v) => PROTOCOL_VERSION_SETTINGS.includes(v), `must be one of ${PROTOCOL_VERSION_SETTINGS.join(', ')}`)
    .nullish(),
};
const transportSchema = z.enum(['STDIO', 'STREAMABLE_HTTP', 'SSE'], 'must be one of STDIO, STREAMABLE_HTTP, SSE');

const createUpstreamSchema = z.object({ name: upstreamNameSchema, transport: transportSchema, ...settingsFields });
const updateUpstreamSchema = z.object({ transport: transportSchema.nullish(), ...settingsFields });

export type CreateUpstreamInput = z.input<typeof createUpstreamSchema>;
export type UpdateUpstreamInput = z.input<typeof updateUpstreamSchema>;

/** The settings an upstream ends up with, checked as a whole (after an update merged them). */
interface ResolvedSettings {
  transport: TransportName;
  command: string | null;
  args: readonly string[];
  envNames: readonly string[];
  cwd: string | null;
  url: string | null;
  headerNames: readonly string[];
  hasBearerToken: boolean;
}

/** Transport-dependent rules; throws BAD_USER_INPUT naming the field under `input.`. */
function checkTransportFields(settings: ResolvedSettings): void {
  if (settings.transport === 'STDIO') {
    if (!settings.command)
      throw badInput('input.command', 'is required for a STDIO upstream; give the program to run, e.g. "npx"');
    if (settings.url !== null)
      throw badInput(
        'input.url',
        'is only for STREAMABLE_HTTP and SSE upstreams; remove it (null) or change the transport',
      );
    if (settings.headerNames.length > 0)
      throw badInput(
        'input.headers',
        'are only for STREAMABLE_HTTP and SSE upstreams; remove them ([]) or change the transport',
      );
    if (settings.hasBearerToken)
      throw badInput(
        'input.bearerToken',
        'is only for STREAMABLE_HTTP and SSE upstreams; pass secrets to a STDIO server in env instead',
      );
    return;
  }
  if (!settings.url)
    throw badInput('input.url', `is required for a ${settings.transport} upstream; give the server's http(s) URL`);
  if (settings.command !== null)
    throw badInput('input.command', 'is only for STDIO upstreams; remove it (null) or set transport: STDIO');
  if (settings.args.length > 0)
    throw badInput('input.args', 'is only for STDIO upstreams; remove it ([]) or set transport: STDIO');
  if (settings.envNames.length > 0)
    throw badInput('input.env', 'is only for STDIO upstreams; remove it ([]) or set transport: STDIO');
  if (settings.cwd !== null)
    throw badInput('input.cwd', 'is only for STDIO upstreams; remove it (null) or set transport: STDIO');
  if (settings.hasBearerToken && settings.headerNames.some((name) => name.toLowerCase() === 'authorization')) {
    throw badInput('input.headers', 'names Authorization while a bearerToken is set; give the token in one of them');
  }
}

export interface UpstreamView {
  id: string;
  name: string;
  transport: TransportName;
  command: string | null;
  args: string[];
  /** Names only: values are write-only. */
  env: Array<{ name: string; isSet: boolean }>;
  cwd: string | null;
  url: string | null;
  headers: Array<{ name: string; isSet: boolean }>;
  hasBearerToken: boolean;
  connectTimeoutMs: number | null;
  callTimeoutMs: number | null;
  healthIntervalMs: number | null;
  healthFailureThreshold: number | null;
  enabled: boolean;
  pinToolDefinitions: boolean;
  exposeUnprefixed: boolean;
  protocolVersion: string;
  codeMode: boolean;
  auditContent: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** What the API may show of an upstream: never the values of env, headers or the bearer token. */
export function toUpstreamView(upstream: Upstream): UpstreamView {
  const names = (pairs: StoredSecretPair[]) =>
    pairs.map((pair) => ({ name: pair.name, isSet: pair.secret.length > 0 }));
  return {
    id: upstream.id,
    name: upstream.name,
    transport: upstream.transport,
    command: upstream.command,
    args: upstream.args,
    env: names(upstream.env),
    cwd: upstream.cwd,
    url: upstream.url,
    headers: names(upstream.headers),
    hasBearerToken: upstream.bearerToken !== null,
    connectTimeoutMs: upstream.connectTimeoutMs,
    callTimeoutMs: upstream.callTimeoutMs,
    healthIntervalMs: upstream.healthIntervalMs,
    healthFailureThreshold: upstream.healthFailureThreshold,
    enabled: upstream.enabled,
    pinToolDefinitions: upstream.pinToolDefinitions,
    exposeUnprefixed: upstream.exposeUnprefixed,
    protocolVersion: upstream.protocolVersion,
    codeMode: upstream.codeMode,
    auditContent: upstream.auditContent,
    createdAt: upstream.createdAt,
    updatedAt: upstream.updatedAt,
  };
}

const samePairs = (a: readonly KeyValuePair[], b: readonly KeyValuePair[]) =>
  a.length === b.length && a.every((pair, index) => pair.name === b[index]!.name && pair.value === b[index]!.value);

/** Columns compared to tell whether an update changed anything (secrets are compared as plaintext separately). */
const COMPARED: Array<keyof Upstream> = [
  'transport',
  'command',
  'args',
  'cwd',
  'url',
  'connectTimeoutMs',
  'callTimeoutMs',
  'healthIntervalMs',
  'healthFailureThreshold',
  'enabled',
  'pinToolDefinitions',
  'exposeUnprefixed',
  'protocolVersion',
  'codeMode',
  'auditContent',
];

/** Writes more of one upstream's configuration (its execution policy rules) in the same configuration change. */
export type UpstreamExtras = (manager: EntityManager, upstreamId: string) => Promise<void>;

export class UpstreamService {
  constructor(
    private readonly store: ConfigStore,
    private readonly box: SecretBox,
  ) {}

  async create(rawInput: unknown, extras?: UpstreamExtras): Promise<UpstreamView> {
    const input = parseInput(createUpstreamSchema, rawInput, 'input');
    checkTransportFields({
      transport: input.transport,
      command: input.command ?? null,
      args: input.args ?? [],
      envNames: (input.env ?? []).map((pair) => pair.name),
      cwd: input.cwd ?? null,
      url: input.url ?? null,
      headerNames: (input.headers ?? []).map((pair) => pair.name),
      hasBearerToken: Boolean(input.bearerToken),
    });
    const id = randomUUID();
    const now = new Date();
    const upstream = Object.assign(new Upstream(), {
      id,
      name: input.name,
      transport: input.transport,
      command: input.command ?? null,
      args: input.args ?? [],
      env: sealPairs(this.box, id, 'env', input.env ?? []),
      url: input.url ?? null,
      headers: sealPairs(this.box, id, 'header', input.headers ?? []),
      cwd: input.cwd ?? null,
      bearerToken: sealBearer(this.box, id, input.bearerToken ?? null),
      connectTimeoutMs: input.connectTimeoutMs ?? null,
      callTimeoutMs: input.callTimeoutMs ?? null,
      healthIntervalMs: input.healthIntervalMs ?? null,
      healthFailureThreshold: input.healthFailureThreshold ?? null,
      enabled: input.enabled ?? true,
      pinToolDefinitions: input.pinToolDefinitions ?? true,
      exposeUnprefixed: input.exposeUnprefixed ?? false,
      protocolVersion: input.protocolVersion ?? 'auto',
      codeMode: input.codeMode ?? false,
      auditContent: input.auditContent ?? true,
      secretsVersion: randomUUID(),
      createdAt: now,
      updatedAt: now,
    } satisfies Upstream);
    try {
      await withConfigChange(this.store, async (manager) => {
        await manager.insert(Upstream, upstream);
        await extras?.(manager, id);
        return { result: undefined, changed: true };
      });
    } catch (error) {
      if (isUniqueViolation(error, 'upstreams_name_key')) {
        throw new PortcullisError(
          ErrorCode.CONFLICT,
          `input.name: an upstream named "${input.name}" already exists; choose another name or delete the existing ` +
            `upstream first`,
          { field: 'input.name' },
        );
      }
      throw error;
    }
    return toUpstreamView(upstream);
  }

  /**
   * Changes the given settings and keeps the rest. `env` and `headers` replace the whole list when
   * given; an omitted `bearerToken` is kept, null removes it. The revision moves only when
   * something changed (re-sending the same secret values changes nothing).
   */
  async update(rawId: string, rawInput: unknown, extras?: UpstreamExtras): Promise<UpstreamView> {
    const id = parseId(rawId, 'id');
    const input = parseInput(updateUpstreamSchema, rawInput, 'input');
    return withConfigChange(this.store, async (manager) => {
      const current = await this.lockUpstream(manager, id);
      const next: Upstream = Object.assign(new Upstream(), current);
      const given = <K extends keyof typeof input>(key: K) => input[key] !== undefined;
      if (input.transport != null) next.transport = input.transport;
      if (given('command')) next.command = input.command ?? null;
      if (given('args')) next.args = input.args ?? [];
      if (given('cwd')) next.cwd = input.cwd ?? null;
      if (given('url')) next.url = input.url ?? null;
      for (const key of ['connectTimeoutMs', 'callTimeoutMs', 'healthIntervalMs', 'healthFailureThreshold'] as const) {
        if (given(key)) next[key] = input[key] ?? null;
      }
      if (input.enabled != null) next.enabled = input.enabled;
      if (input.pinToolDefinitions != null) next.pinToolDefinitions = input.pinToolDefinitions;
      if (input.exposeUnprefixed != null) next.exposeUnprefixed = input.exposeUnprefixed;
      if (input.protocolVersion != null) next.protocolVersion = input.protocolVersion;
      if (input.codeMode != null) next.codeMode = input.codeMode;
      if (input.auditContent != null) next.auditContent = input.auditContent;

      let secretsChanged = false;
      if (given('env')) {
        const env = input.env ?? [];
        if (!samePairs(openPairs(this.box, id, 'env', current.env), env)) {
          next.env = sealPairs(this.box, id, 'env', env);
          secretsChanged = true;
        }
      }
      if (given('headers')) {
        const headers = input.headers ?? [];
        if (!samePairs(openPairs(this.box, id, 'header', current.headers), headers)) {
          next.headers = sealPairs(this.box, id, 'header', headers);
          secretsChanged = true;
        }
      }
      if (given('bearerToken')) {
        const token = input.bearerToken ?? null;
        if (openBearer(this.box, id, current.bearerToken) !== token) {
          next.bearerToken = sealBearer(this.box, id, token);
          secretsChanged = true;
        }
      }
      refuseKeptCredentials(current, next, input);
      checkTransportFields({
        transport: next.transport,
        command: next.command,
        args: next.args,
        envNames: next.env.map((pair) => pair.name),
        cwd: next.cwd,
        url: next.url,
        headerNames: next.headers.map((pair) => pair.name),
        hasBearerToken: next.bearerToken !== null,
      });
      const changed =
        secretsChanged || COMPARED.some((key) => JSON.stringify(next[key]) !== JSON.stringify(current[key]));
      await extras?.(manager, id);
      if (!changed) return { result: toUpstreamView(current), changed: extras !== undefined };

      const unprefixing = next.exposeUnprefixed && !current.exposeUnprefixed;
      const enabling = next.enabled && !current.enabled;
      if (next.enabled && (unprefixing || enabling))
        await refuseCollisions(manager, next, unprefixing ? 'input.exposeUnprefixed' : 'input.enabled');
      if (current.pinToolDefinitions && !next.pinToolDefinitions) await releaseHeldBackTools(manager, id);
      if (secretsChanged) next.secretsVersion = randomUUID();
      next.updatedAt = new Date();
      await manager.save(Upstream, next);
      return { result: toUpstreamView(next), changed: true };
    });
  }

  /** Switches an upstream on or off; nodes hold no connection to a disabled upstream. */
  async setEnabled(rawId: string, enabled: boolean): Promise<UpstreamView> {
    const id = parseId(rawId, 'id');
    return withConfigChange(this.store, async (manager) => {
      const current = await this.lockUpstream(manager, id);
      if (current.enabled === enabled) return { result: toUpstreamView(current), changed: false };
      if (enabled) await refuseCollisions(manager, current, 'enabled');
      current.enabled = enabled;
      current.updatedAt = new Date();
      await manager.update(Upstream, { id }, { enabled, updatedAt: current.updatedAt });
      return { result: toUpstreamView(current), changed: true };
    });
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

  /**
   * Re-encrypts every stored credential not under the current secret key (after a key rotation, so
   * that the previous key can be retired). Returns how many values were re-encrypted. Nodes see no
   * change: the values are the same.
   */
  async rotateSecrets(): Promise<number> {
    return resealAll(this.store.dataSource.manager, this.box);
  }

  /** Upstreams by name, one page (see `Page`). */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<UpstreamView[]> {
    const repository = this.store.dataSource.getRepository(Upstream);
    const query = repository.createQueryBuilder('u').orderBy('u.name', 'ASC').take(page.first);
    if (page.after !== null) {
      const after = parseId(page.after, 'after');
      const cursor = await repository.findOne({ where: { id: after }, select: { id: true, name: true } });
      if (!cursor) throw unknownCursor('upstream', after);
      query.where('u.name > :name', { name: cursor.name });
    }
    return (await query.getMany()).map(toUpstreamView);
  }

  async get(rawId: string): Promise<UpstreamView | null> {
    const id = parseId(rawId, 'id');
    const upstream = await this.store.dataSource.getRepository(Upstream).findOneBy({ id });
    return upstream ? toUpstreamView(upstream) : null;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, UpstreamView>> {
    const rows = await rowsById(this.store.dataSource.getRepository(Upstream), ids);
    return new Map([...rows].map(([id, upstream]) => [id, toUpstreamView(upstream)]));
  }

  private async lockUpstream(manager: EntityManager, id: string): Promise<Upstream> {
    const upstream = await manager.findOne(Upstream, { where: { id }, lock: { mode: 'pessimistic_write' } });
    if (!upstream)
      throw new PortcullisError(
        ErrorCode.NOT_FOUND,
        `id: no upstream has id "${id}"; list them with the upstreams query`,
        { field: 'id' },
      );
    return upstream;
  }
}

/**
 * Refuses to expose names another enabled upstream already exposes (judged by the catalogs nodes
 * reported): one of the two would lose its tool on every node without an error. `field` is what
 * the caller changed: exposing the names unprefixed, or enabling the upstream.
 */
async function refuseCollisions(manager: EntityManager, upstream: Upstream, field: string): Promise<void> {
  await lockExposedNames(manager);
  const collisions = await collisionsOf(manager, upstream, upstream.exposeUnprefixed);
  if (collisions.length === 0) return;
  const fix =
    field === 'input.exposeUnprefixed'
      ? 'keep the prefix (exposeUnprefixed: false) or remove the collision'
      : `disable the other upstream first, or set exposeUnprefixed: false on whichever of the two is unprefixed`;
  const change = field === 'input.exposeUnprefixed' ? 'unprefixed' : 'enabled';
  throw new PortcullisError(
    ErrorCode.CONFLICT,
    `${field}: ${change}, upstream "${upstream.name}" would expose tool names another enabled upstream already ` +
      `exposes: ${describeCollisions(collisions)}; ` +
      `nodes would serve only one of each (the upstream created first). To go ahead, ${fix}`,
    { field, names: collisions.map((c) => c.name) },
  );
}

/** What an upstream connects to: changing it sends its stored credentials somewhere new. */
function targetOf(upstream: Pick<Upstream, 'transport' | 'url' | 'command' | 'args'>): string {
  return JSON.stringify([upstream.transport, upstream.url, upstream.command, upstream.args]);
}

/**
 * An update that changes the target (transport, url, command or args) must say what becomes of
 * each stored credential (headers, bearerToken, env): give it again or clear it. Otherwise the
 * credentials meant for one server would be sent to another, which an admin who cannot read
 * them back might not intend (or might intend too well: it would reveal a token GraphQL never shows).
 */
function refuseKeptCredentials(current: Upstream, next: Upstream, input: UpdateUpstreamInput): void {
  if (targetOf(current) === targetOf(next)) return;
  const kept: Array<{ field: string; what: string; clear: string }> = [];
  if (current.headers.length > 0 && input.headers === undefined)
    kept.push({ field: 'headers', what: 'headers', clear: '[]' });
  if (current.bearerToken !== null && input.bearerToken === undefined)
    kept.push({ field: 'bearerToken', what: 'bearer token', clear: 'null' });
  if (current.env.length > 0 && input.env === undefined)
    kept.push({ field: 'env', what: 'environment variables', clear: '[]' });
  const first = kept[0];
  if (!first) return;
  const changed = (['transport', 'url', 'command', 'args'] as const).filter(
    (key) => JSON.stringify(current[key]) !== JSON.stringify(next[key]),
  );
  throw badInput(
    `input.${first.field}`,
    `the update changes ${changed.join(', ')}, and this upstream's stored ${kept.map((k) => k.what).join(', ')} ` +
      `would go to the new target; ` +
      `give ${kept.map((k) => k.field).join(', ')} again in the same update, or clear ` +
      `${kept.map((k) => `${k.field}: ${k.clear}`).join(', ')}`,
  );
}

/** Pinning switched off: held-back definitions become the tools' definitions (nodes serve them now). */
async function releaseHeldBackTools(manager: EntityManager, upstreamId: string): Promise<void> {
  await manager.query(
    `UPDATE tools SET definition = pending_definition, description = pending_definition->>'description',
     pinned_sha256 = pending_sha256,
       pending_definition = NULL, pending_sha256 = NULL
     WHERE upstream_id = $1 AND pending_definition IS NOT NULL`,
    [upstreamId],
  );
}
