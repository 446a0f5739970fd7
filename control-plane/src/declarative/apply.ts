/**
 * `applyConfig`: brings the live configuration to what a document describes, in one transaction,
 * through the same service functions the GraphQL mutations call (so the same rules apply and
 * nothing is checked twice). A dry run does all of it and rolls back: the plan is what apply does.
 */
import type { DataSource, EntityManager } from 'typeorm';
import { IsNull } from 'typeorm';
import { ErrorCode, PortcullisError } from '../../../common/src/index.ts';
import { Customer, type KeyValuePair, Team, Upstream, VirtualKey } from '../db/entities.ts';
import { databaseFailure } from '../db/failures.ts';
import { openBearer, openPairs, type SecretBox } from '../secrets/index.ts';
import { ACCESS_LIST_NAMES, storedRateLimits } from '../services/access-lists.ts';
import { BudgetService } from '../services/budgets.ts';
import { type ConfigStore, withConfigChange } from '../services/config-change.ts';
import { ExecutionPolicyService } from '../services/execution-policies.ts';
import {
  AuditSettingsService,
  auditSettingsView,
  DEFAULT_AUDIT_SETTINGS,
  readAuditSettings,
} from '../services/audit-settings.ts';
import {
  McpAuthorizationService,
  type McpAuthorizationView,
  mcpAuthorizationView,
  readMcpAuthorization,
} from '../services/mcp-authorization.ts';
import { PriceService } from '../services/prices.ts';
import { TeamService } from '../services/teams.ts';
import { UpstreamService } from '../services/upstreams.ts';
import { badInput } from '../services/validation.ts';
import { MAX_KEYS_PER_BATCH, VirtualKeyService } from '../services/virtual-keys.ts';
import {
  type ConfigDocument,
  configDocumentSchema,
  type DocumentKind,
  type KeyEntry,
  documentProblem,
  formatPath,
  type PolicyRuleEntry,
  type Secret,
} from './document.ts';

/** extensions.code when the live revision is not the one the plan was made against. */
export const REVISION_MISMATCH = 'REVISION_MISMATCH';

export type ChangeAction = 'CREATE' | 'UPDATE' | 'DELETE' | 'ADOPT';
export type ObjectKind = 'customer' | 'team' | 'upstream' | 'key';
/** `settings`: a gateway-wide settings object (e.g. mcpAuthorization), named by its document field. */
export type ChangeKind = ObjectKind | 'settings';

/** One field of a change; a secret field shows neither value. */
export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
  secret: boolean;
}

export interface PlannedChange {
  action: ChangeAction;
  kind: ChangeKind;
  name: string;
  fields: FieldChange[];
}

export interface ApplyConfigResult {
  dryRun: boolean;
  /** The revision the plan was made against. */
  previousRevision: string;
  /** The revision after the apply (a dry run: unchanged). */
  revision: string;
  changes: PlannedChange[];
  /** Secrets of the keys the apply created (never on a dry run). */
  createdKeys: Array<{ name: string; id: string; secret: string }>;
}

export interface ApplyOptions {
  dryRun: boolean;
  prune: boolean;
  expectedRevision: string | null;
}

type Spec = Record<string, unknown>;
type Rule = {
  tool: string;
  policy: string;
  argument: string | null;
  pattern: string | null;
  approvalTimeoutMs: number | null;
  approvalVia: string | null;
};
type Budget = { period: string; amountMicros: number };
type Prices = { default: number | null; tools: Record<string, number> };

const TABLES: Record<ObjectKind, string> = {
  customer: 'customers',
  team: 'teams',
  upstream: 'upstreams',
  key: 'virtual_keys',
};
const SECRET_FIELDS = ['env', 'headers', 'bearerToken'] as const;

/** JSON with object keys sorted (jsonb does not keep the order they were written in). */
function canon(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return JSON.stringify(sorted(value));
}

function diff(before: Spec, after: Spec): FieldChange[] {
  return Object.keys(after)
    .filter((field) => canon(before[field] ?? null) !== canon(after[field] ?? null))
    .map((field) => ({ field, before: before[field] ?? null, after: after[field] ?? null, secret: false }));
}

/** What a create sets: the fields not left at their default. */
function created(spec: Spec, defaults: Spec): FieldChange[] {
  return diff(defaults, spec);
}

function rateLimits(value: { requestsPerMinute?: number; toolCallsPerMinute?: number; burst?: number } | undefined) {
  if (!value) return null;
  const stored = storedRateLimits(value);
  return Object.keys(stored).length === 0 ? null : stored;
}

const unique = (list: readonly string[] | undefined) => (list === undefined ? null : [...new Set(list)]);

function rules(list: readonly PolicyRuleEntry[] | undefined): Rule[] {
  return (list ?? []).map((rule) => ({
    tool: rule.tool.trim(),
    policy: rule.policy,
    argument: rule.argument ?? null,
    pattern: rule.pattern ?? null,
    approvalTimeoutMs: rule.approvalTimeoutMs ?? null,
    approvalVia: rule.approvalVia ?? null,
  }));
}

function ruleEntries(list: readonly Rule[]): PolicyRuleEntry[] {
  return list.map((rule) => {
    const entry: Record<string, unknown> = { tool: rule.tool, policy: rule.policy };
    if (rule.argument !== null) entry['argument'] = rule.argument;
    if (rule.pattern !== null) entry['pattern'] = rule.pattern;
    if (rule.approvalTimeoutMs !== null) entry['approvalTimeoutMs'] = rule.approvalTimeoutMs;
    if (rule.approvalVia !== null) entry['approvalVia'] = rule.approvalVia;
    return entry as PolicyRuleEntry;
  });
}

function isoOrRaw(value: string | undefined): string | null {
  if (value === undefined) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? value : new Date(time).toISOString();
}

/** A document field for a service's field (`input.url` → `upstreams[1].url`, `rules.2.tool` → `…[2].tool`). */
function documentField(base: string, field: string | undefined, whole: boolean): string {
  if (field === undefined || whole) return base;
  const rename: Record<string, string | null> = {
    teamId: 'team',
    customerId: 'customer',
    upstreamId: null,
    ownerId: null,
    keyId: null,
  };
  let out = base;
  for (const part of field.split('.').slice(1)) {
    const renamed = Object.hasOwn(rename, part) ? rename[part] : part;
    if (renamed === null || renamed === undefined) continue;
    out += /^\d+$/.test(renamed) ? `[${renamed}]` : `.${renamed}`;
  }
  return out;
}

/** Runs one service call, naming the document field in what it refuses. */
async function at<T>(base: string, run: () => Promise<T>, whole = false): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!(error instanceof PortcullisError)) throw error;
    const field = typeof error.details?.['field'] === 'string' ? error.details['field'] : undefined;
    const mapped = documentField(base, field, whole);
    const message =
      field !== undefined && error.message.startsWith(`${field}: `)
        ? error.message.slice(field.length + 2)
        : error.message;
    throw new PortcullisError(
      error.code,
      `${mapped}: ${message}`,
      { ...error.details, field: mapped },
      { cause: error },
    );
  }
}

/** Parses the document, naming the first problem by its path (`upstreams[1].url: …`). */
export function parseDocument(raw: unknown): ConfigDocument {
  const problem = documentProblem(raw);
  if (problem) throw badInput(formatPath(problem.path), problem.message);
  return configDocumentSchema.parse(raw);
}

/** Reads go through the transaction's manager (services read back what they just wrote). */
function readThrough(manager: EntityManager): DataSource {
  const view = {
    manager,
    query: (sql: string, params?: unknown[]) => manager.query(sql, params),
    getRepository: manager.getRepository.bind(manager),
  };
  return view as unknown as DataSource;
}

class DryRun extends Error {
  constructor(readonly result: ApplyConfigResult) {
    super('dry run');
  }
}

interface LiveObject<T> {
  row: T;
  managed: boolean;
}

/** The live configuration, as read in the transaction. */
interface Live {
  customers: Map<string, LiveObject<Customer>>;
  teams: Map<string, LiveObject<Team>>;
  upstreams: Map<string, LiveObject<Upstream>>;
  keys: Map<string, Array<LiveObject<VirtualKey>>>;
  policies: Map<string, Rule[]>;
  prices: Map<string, Prices>;
  budgets: Map<string, Budget & { id: string }>;
  customerNames: Map<string, string>;
  teamNames: Map<string, string>;
}

async function readLive(manager: EntityManager): Promise<Live> {
  const managed = async (table: string) =>
    new Set(((await manager.query(`SELECT id FROM ${table} WHERE managed`)) as Array<{ id: string }>).map((r) => r.id));
  const byName = <T extends { id: string; name: string }>(rows: T[], ids: Set<string>) =>
    new Map(rows.map((row) => [row.name, { row, managed: ids.has(row.id) }]));
  const customers = await manager.find(Customer, { order: { name: 'ASC' } });
  const teams = await manager.find(Team, { order: { name: 'ASC' } });
  const upstreams = await manager.find(Upstream, { order: { name: 'ASC' } });
  const keyRows = await manager.find(VirtualKey, { where: { revokedAt: IsNull() }, order: { createdAt: 'ASC' } });
  const managedKeys = await managed('virtual_keys');
  const keys = new Map<string, Array<LiveObject<VirtualKey>>>();
  for (const row of keyRows)
    keys.set(row.name, [...(keys.get(row.name) ?? []), { row, managed: managedKeys.has(row.id) }]);

  const policies = new Map<string, Rule[]>();
  const policyRows = (await manager.query(
    `SELECT upstream_id, team_id, key_id, tool, policy, argument, pattern, approval_timeout_ms, approval_via
     FROM execution_policies ORDER BY position`,
  )) as Array<Record<string, string | number | null>>;
  for (const row of policyRows) {
    const scope = row['upstream_id'] ?? row['team_id'] ?? row['key_id'];
    const list = policies.get(String(scope)) ?? [];
    list.push({
      tool: String(row['tool']),
      policy: String(row['policy']),
      argument: (row['argument'] as string | null) ?? null,
      pattern: (row['pattern'] as string | null) ?? null,
      approvalTimeoutMs: row['approval_timeout_ms'] === null ? null : Number(row['approval_timeout_ms']),
      approvalVia: (row['approval_via'] as string | null) ?? null,
    });
    policies.set(String(scope), list);
  }
  const prices = new Map<string, Prices>();
  const priceRows = (await manager.query(`SELECT upstream_id, tool, price_micros FROM tool_prices`)) as Array<{
    upstream_id: string;
    tool: string;
    price_micros: string;
  }>;
  for (const row of priceRows) {
    const entry = prices.get(row.upstream_id) ?? { default: null, tools: {} };
    if (row.tool === '') entry.default = Number(row.price_micros);
    else entry.tools[row.tool] = Number(row.price_micros);
    prices.set(row.upstream_id, entry);
  }
  const budgets = new Map<string, Budget & { id: string }>();
  const budgetRows = (await manager.query(`SELECT id, scope, owner_id, period, amount_micros FROM budgets`)) as Array<{
    id: string;
    scope: string;
    owner_id: string;
    period: string;
    amount_micros: string;
  }>;
  for (const row of budgetRows)
    budgets.set(`${row.scope}:${row.owner_id}`, {
      id: row.id,
      period: row.period,
      amountMicros: Number(row.amount_micros),
    });
  return {
    customers: byName(customers, await managed('customers')),
    teams: byName(teams, await managed('teams')),
    upstreams: byName(upstreams, await managed('upstreams')),
    keys,
    policies,
    prices,
    budgets,
    customerNames: new Map(customers.map((c) => [c.id, c.name])),
    teamNames: new Map(teams.map((t) => [t.id, t.name])),
  };
}

function pricesOf(value: { default?: number; tools?: Record<string, number> } | undefined): Prices | null {
  if (!value || (value.default === undefined && Object.keys(value.tools ?? {}).length === 0)) return null;
  return { default: value.default ?? null, tools: { ...(value.tools ?? {}) } };
}

const budgetOf = (live: Live, scope: string, id: string | undefined): Budget | null => {
  const found = id === undefined ? undefined : live.budgets.get(`${scope}:${id}`);
  return found ? { period: found.period, amountMicros: found.amountMicros } : null;
};

/** Specs of live objects: the document's fields with defaults filled in (secrets apart). */
function customerLive(live: Live, row: Customer): Spec {
  return { rateLimits: rateLimits(row.rateLimits), budget: budgetOf(live, 'CUSTOMER', row.id) };
}

function teamLive(live: Live, row: Team): Spec {
  const spec: Spec = { customer: row.customerId ? (live.customerNames.get(row.customerId) ?? null) : null };
  for (const list of ACCESS_LIST_NAMES) spec[list] = row.access[list] ?? null;
  spec['rateLimits'] = rateLimits(row.rateLimits);
  spec['policies'] = live.policies.get(row.id) ?? [];
  spec['budget'] = budgetOf(live, 'TEAM', row.id);
  return spec;
}

const UPSTREAM_DEFAULTS: Spec = {
  transport: null,
  command: null,
  args: [],
  cwd: null,
  url: null,
  connectTimeoutMs: null,
  callTimeoutMs: null,
  healthIntervalMs: null,
  healthFailureThreshold: null,
  enabled: true,
  pinToolDefinitions: true,
  exposeUnprefixed: false,
  codeMode: false,
  auditContent: true,
  protocolVersion: 'auto',
  prices: null,
  policies: [],
};
const UPSTREAM_SETTINGS = Object.keys(UPSTREAM_DEFAULTS).filter((k) => k !== 'prices' && k !== 'policies');

function upstreamLive(live: Live, row: Upstream): Spec {
  const spec: Spec = {};
  for (const field of UPSTREAM_SETTINGS) spec[field] = row[field as keyof Upstream] ?? null;
  spec['prices'] = live.prices.get(row.id) ?? null;
  spec['policies'] = live.policies.get(row.id) ?? [];
  return spec;
}

const KEY_DEFAULTS: Spec = {
  team: null,
  allowedTools: ['*'],
  ...Object.fromEntries(ACCESS_LIST_NAMES.filter((n) => n !== 'allowedTools').map((n) => [n, null])),
  rateLimits: null,
  expiresAt: null,
  enabled: true,
  codeMode: 'INHERIT',
  auditContent: 'INHERIT',
  policies: [],
  budget: null,
};

function keyLive(live: Live, row: VirtualKey): Spec {
  const spec: Spec = { team: row.teamId ? (live.teamNames.get(row.teamId) ?? null) : null };
  spec['allowedTools'] = row.allowedTools;
  for (const list of ACCESS_LIST_NAMES) if (list !== 'allowedTools') spec[list] = row.access[list] ?? null;
  spec['rateLimits'] = rateLimits(row.rateLimits);
  spec['expiresAt'] = row.expiresAt ? row.expiresAt.toISOString() : null;
  spec['enabled'] = row.enabled;
  spec['codeMode'] = row.codeMode;
  spec['auditContent'] = row.auditContent;
  spec['policies'] = live.policies.get(row.id) ?? [];
  spec['budget'] = budgetOf(live, 'KEY', row.id);
  return spec;
}

/** MCP authorization settings as the document writes them: teams by name, defaults left out. */
function mcpAuthorizationEntry(view: McpAuthorizationView, teamNames: ReadonlyMap<string, string>): Spec {
  return {
    resource: view.resource,
    identityProviders: view.identityProviders.map((p) => ({
      issuer: p.issuer,
      ...(p.jwksUri !== null ? { jwksUri: p.jwksUri } : {}),
      ...(p.subjectClaim !== 'sub' ? { subjectClaim: p.subjectClaim } : {}),
      ...(p.teamClaim !== null ? { teamClaim: p.teamClaim } : {}),
      teams: p.teams.map((t) => ({
        claimValue: t.claimValue,
        ...(t.teamId !== null ? { team: teamNames.get(t.teamId) ?? t.teamId } : {}),
        ...(t.customerId !== null ? { customerId: t.customerId } : {}),
        ...(canon(t.allowedTools) !== canon(['*']) ? { allowedTools: t.allowedTools } : {}),
      })),
    })),
  };
}

const withoutDefaults = (spec: Spec, defaults: Spec) =>
  Object.fromEntries(Object.entries(spec).filter(([k, v]) => v !== null && canon(v) !== canon(defaults[k] ?? null)));

export class ConfigApplyService {
  constructor(
    private readonly store: ConfigStore,
    private readonly box: SecretBox,
  ) {}

  /** Plans (dryRun) or applies a document; see ApplyConfigResult. */
  async apply(rawDocument: unknown, options: ApplyOptions): Promise<ApplyConfigResult> {
    const document = parseDocument(rawDocument);
    if (!options.dryRun)
      return withConfigChange(this.store, async (manager) => {
        const result = await this.run(manager, document, options);
        return { result, changed: result.revision !== result.previousRevision };
      });
    try {
      await this.store.dataSource.transaction(async (manager) => {
        throw new DryRun(await this.run(manager, document, options));
      });
    } catch (error) {
      if (error instanceof DryRun) return error.result;
      throw databaseFailure(error, 'nothing was changed (a plan never changes anything)') ?? error;
    }
    throw new Error('unreachable: a dry run always rolls back');
  }

  /** The live configuration as a document that applies back to no change. */
  async export(): Promise<{ revision: string; document: Record<string, unknown> }> {
    return this.store.dataSource.transaction('REPEATABLE READ', async (manager) => {
      const rows = (await manager.query(`SELECT version::text AS version FROM config_revision WHERE id = 1`)) as Array<{
        version: string;
      }>;
      const live = await readLive(manager);
      const adopt: Record<string, string[]> = {};
      const hand = (kind: DocumentKind, name: string, managed: boolean) => {
        if (!managed) adopt[kind] = [...(adopt[kind] ?? []), name];
      };
      const customers = [...live.customers.values()].map(({ row, managed }) => {
        hand('customers', row.name, managed);
        return { name: row.name, ...withoutDefaults(customerLive(live, row), {}) };
      });
      const teams = [...live.teams.values()].map(({ row, managed }) => {
        hand('teams', row.name, managed);
        const spec = teamLive(live, row);
        spec['policies'] = ruleEntries(spec['policies'] as Rule[]);
        return { name: row.name, ...withoutDefaults(spec, { policies: [] }) };
      });
      const upstreams = [...live.upstreams.values()].map(({ row, managed }) => {
        hand('upstreams', row.name, managed);
        const spec = upstreamLive(live, row);
        spec['policies'] = ruleEntries(spec['policies'] as Rule[]);
        const prices = spec['prices'] as Prices | null;
        spec['prices'] = prices && {
          ...(prices.default !== null ? { default: prices.default } : {}),
          ...(Object.keys(prices.tools).length > 0 ? { tools: prices.tools } : {}),
        };
        const keep = { keep: true };
        const entry: Spec = { name: row.name, ...withoutDefaults(spec, UPSTREAM_DEFAULTS), transport: row.transport };
        if (row.env.length > 0) entry['env'] = row.env.map((pair) => ({ name: pair.name, value: keep }));
        if (row.headers.length > 0) entry['headers'] = row.headers.map((pair) => ({ name: pair.name, value: keep }));
        if (row.bearerToken !== null) entry['bearerToken'] = keep;
        return entry;
      });
      const keys = [...live.keys.values()].flat().map(({ row, managed }) => {
        hand('keys', row.name, managed);
        const spec = keyLive(live, row);
        spec['policies'] = ruleEntries(spec['policies'] as Rule[]);
        return { name: row.name, ...withoutDefaults(spec, KEY_DEFAULTS) };
      });
      const document: Record<string, unknown> = { version: 1 };
      if (customers.length) document['customers'] = customers;
      if (teams.length) document['teams'] = teams;
      if (upstreams.length) document['upstreams'] = upstreams;
      if (keys.length) document['keys'] = keys;
      const authorization = await readMcpAuthorization(manager);
      if (authorization) document['mcpAuthorization'] = mcpAuthorizationEntry(authorization, live.teamNames);
      const auditSettings = withoutDefaults({ ...(await readAuditSettings(manager)) }, { ...DEFAULT_AUDIT_SETTINGS });
      if (Object.keys(auditSettings).length) document['auditSettings'] = auditSettings;
      if (Object.keys(adopt).length) document['adopt'] = adopt;
      return { revision: rows[0]!.version, document };
    });
  }

  private async run(manager: EntityManager, document: ConfigDocument, options: ApplyOptions) {
    const rows = (await manager.query(
      `SELECT version::text AS version FROM config_revision WHERE id = 1${options.dryRun ? '' : ' FOR UPDATE'}`,
    )) as Array<{ version: string }>;
    const previous = rows[0]!.version;
    if (options.expectedRevision !== null && options.expectedRevision !== previous)
      throw new PortcullisError(
        REVISION_MISMATCH,
        `expectedRevision: the configuration changed since the plan (planned against revision ` +
          `${options.expectedRevision}, now ${previous}); nothing was applied. Run plan again, review it, and apply ` +
          'with its revision',
        { field: 'expectedRevision' },
      );
    const enclosing = { manager, changed: false };
    const store: ConfigStore = { dataSource: readThrough(manager), changes: this.store.changes, enclosing };
    const run = new Run(
      manager,
      await readLive(manager),
      document,
      {
        upstreams: new UpstreamService(store, this.box),
        teams: new TeamService(store),
        keys: new VirtualKeyService(store),
        prices: new PriceService(store),
        budgets: new BudgetService(store),
        policies: new ExecutionPolicyService(store),
        mcpAuthorization: new McpAuthorizationService(store),
        auditSettings: new AuditSettingsService(store),
      },
      this.box,
      options,
    );
    await run.all();
    const changed = enclosing.changed || run.adopted;
    const result: ApplyConfigResult = {
      dryRun: options.dryRun,
      previousRevision: previous,
      revision: changed && !options.dryRun ? String(BigInt(previous) + 1n) : previous,
      changes: run.changes,
      createdKeys: options.dryRun ? [] : run.createdKeys,
    };
    return result;
  }
}

interface Services {
  upstreams: UpstreamService;
  teams: TeamService;
  keys: VirtualKeyService;
  prices: PriceService;
  budgets: BudgetService;
  policies: ExecutionPolicyService;
  mcpAuthorization: McpAuthorizationService;
  auditSettings: AuditSettingsService;
}

/** One plan or apply, in order: customers, teams, upstreams, keys, then what prune removes. */
class Run {
  readonly changes: PlannedChange[] = [];
  readonly createdKeys: ApplyConfigResult['createdKeys'] = [];
  adopted = false;
  private readonly customerIds = new Map<string, string>();
  private readonly teamIds = new Map<string, string>();
  private readonly newKeys: Array<{ index: number; entry: KeyEntry; spec: Spec; input: Record<string, unknown> }> = [];

  constructor(
    private readonly manager: EntityManager,
    private readonly live: Live,
    private readonly document: ConfigDocument,
    private readonly services: Services,
    private readonly box: SecretBox,
    private readonly options: ApplyOptions,
  ) {
    for (const [name, { row }] of live.customers) this.customerIds.set(name, row.id);
    for (const [name, { row }] of live.teams) this.teamIds.set(name, row.id);
  }

  async all(): Promise<void> {
    for (const [index, entry] of (this.document.customers ?? []).entries()) await this.customer(index, entry);
    for (const [index, entry] of (this.document.teams ?? []).entries()) await this.team(index, entry);
    for (const [index, entry] of (this.document.upstreams ?? []).entries()) await this.upstream(index, entry);
    for (const [index, entry] of (this.document.keys ?? []).entries()) await this.key(index, entry);
    await this.createKeys();
    // After the teams it maps claims to are made, before prune deletes those it no longer maps.
    if (this.document.mcpAuthorization !== undefined) await this.mcpAuthorization(this.document.mcpAuthorization);
    if (this.document.auditSettings !== undefined) await this.auditSettings(this.document.auditSettings);
    if (this.options.prune) await this.prune();
  }

  /**
   * The live object an entry names, or undefined (create). One made by hand must be adopted
   * (listed under adopt) before apply changes it.
   */
  private async match<T extends { id: string }>(
    kind: ObjectKind,
    path: string,
    name: string,
    found: LiveObject<T> | undefined,
  ): Promise<{ row: T; adopting: boolean } | undefined> {
    if (!found) return undefined;
    if (found.managed) return { row: found.row, adopting: false };
    const list = `${kind === 'key' ? 'keys' : `${kind}s`}` as DocumentKind;
    if (!(this.document.adopt?.[list] ?? []).includes(name))
      throw new PortcullisError(
        ErrorCode.CONFLICT,
        `${path}.name: ${kind === 'upstream' ? 'an' : 'a'} ${kind} named "${name}" exists and was not made by apply; ` +
          `to manage it from this file, list it under adopt.${list}, or give this entry another name`,
        { field: `${path}.name` },
      );
    await this.manager.query(`UPDATE ${TABLES[kind]} SET managed = true WHERE id = $1`, [found.row.id]);
    this.adopted = true;
    return { row: found.row, adopting: true };
  }

  private async created(kind: ObjectKind, id: string): Promise<void> {
    await this.manager.query(`UPDATE ${TABLES[kind]} SET managed = true WHERE id = $1`, [id]);
  }

  private record(action: ChangeAction, kind: ChangeKind, name: string, fields: FieldChange[]): void {
    if (action === 'UPDATE' && fields.length === 0) return;
    this.changes.push({ action, kind, name, fields });
  }

  private ref(map: Map<string, string>, name: string | null, path: string, what: string): string | null {
    if (name === null) return null;
    const id = map.get(name);
    if (id === undefined)
      throw badInput(path, `no ${what} is named "${name}" in this file or on the gateway; add it under ${what}s`);
    return id;
  }

  private async budget(path: string, scope: string, ownerId: string, before: unknown, after: Budget | null) {
    if (canon(before) === canon(after)) return;
    if (after) await at(`${path}.budget`, () => this.services.budgets.set({ scope, ownerId, ...after }));
    else {
      const id = this.live.budgets.get(`${scope}:${ownerId}`)?.id;
      if (id) await at(`${path}.budget`, () => this.services.budgets.remove(id));
    }
  }

  private async policies(path: string, scope: Record<string, string>, before: unknown, after: Rule[]) {
    if (canon(before) === canon(after)) return;
    await at(`${path}.policies`, () => this.services.policies.set(scope, after));
  }

  private async customer(index: number, entry: NonNullable<ConfigDocument['customers']>[number]): Promise<void> {
    const path = `customers[${index}]`;
    const spec: Spec = { rateLimits: rateLimits(entry.rateLimits), budget: entry.budget ?? null };
    const found = await this.match('customer', path, entry.name, this.live.customers.get(entry.name));
    if (!found) {
      const customer = await at(path, () =>
        this.services.teams.createCustomer({ name: entry.name, rateLimits: entry.rateLimits ?? null }),
      );
      await this.created('customer', customer.id);
      this.customerIds.set(entry.name, customer.id);
      await this.budget(path, 'CUSTOMER', customer.id, null, spec['budget'] as Budget | null);
      this.record('CREATE', 'customer', entry.name, created(spec, {}));
      return;
    }
    const before = customerLive(this.live, found.row);
    const fields = diff(before, spec);
    if (fields.some((f) => f.field === 'rateLimits'))
      await at(path, () => this.services.teams.updateCustomer(found.row.id, { rateLimits: entry.rateLimits ?? null }));
    await this.budget(path, 'CUSTOMER', found.row.id, before['budget'], spec['budget'] as Budget | null);
    this.record(found.adopting ? 'ADOPT' : 'UPDATE', 'customer', entry.name, fields);
  }

  private async team(index: number, entry: NonNullable<ConfigDocument['teams']>[number]): Promise<void> {
    const path = `teams[${index}]`;
    const spec: Spec = { customer: entry.customer ?? null };
    for (const list of ACCESS_LIST_NAMES) spec[list] = unique(entry[list]);
    spec['rateLimits'] = rateLimits(entry.rateLimits);
    spec['policies'] = rules(entry.policies);
    spec['budget'] = entry.budget ?? null;
    const customerId = this.ref(this.customerIds, entry.customer ?? null, `${path}.customer`, 'customer');
    const input: Record<string, unknown> = { customerId, rateLimits: entry.rateLimits ?? null };
    for (const list of ACCESS_LIST_NAMES) input[list] = entry[list] ?? null;
    const found = await this.match('team', path, entry.name, this.live.teams.get(entry.name));
    let id: string;
    let before: Spec;
    if (!found) {
      const team = await at(path, () => this.services.teams.create({ name: entry.name, ...input }));
      await this.created('team', team.id);
      this.teamIds.set(entry.name, team.id);
      id = team.id;
      before = { policies: [], budget: null };
      this.record('CREATE', 'team', entry.name, created(spec, { policies: [] }));
    } else {
      id = found.row.id;
      before = teamLive(this.live, found.row);
      const fields = diff(before, spec);
      const settings = fields.filter((f) => f.field !== 'policies' && f.field !== 'budget').map((f) => f.field);
      if (settings.length > 0) {
        const changed = Object.fromEntries(
          settings.map((field) => (field === 'customer' ? ['customerId', customerId] : [field, input[field]])),
        );
        await at(path, () => this.services.teams.update(id, changed));
      }
      this.record(found.adopting ? 'ADOPT' : 'UPDATE', 'team', entry.name, fields);
    }
    await this.policies(path, { teamId: id }, before['policies'], spec['policies'] as Rule[]);
    await this.budget(path, 'TEAM', id, before['budget'], spec['budget'] as Budget | null);
  }

  private resolvePairs(
    path: string,
    given: ReadonlyArray<{ name: string; value: Secret }> | undefined,
    stored: readonly KeyValuePair[],
  ): { pairs: KeyValuePair[]; keeps: boolean } {
    let keeps = false;
    const pairs = (given ?? []).map((pair, index) => {
      if (typeof pair.value === 'string') return { name: pair.name, value: pair.value };
      keeps = true;
      const kept = stored.find((s) => s.name === pair.name);
      if (!kept)
        throw badInput(
          `${path}[${index}].value`,
          `is { keep: true }, but no value is stored for "${pair.name}"; give the value (e.g. "\${env:NAME}")`,
        );
      return kept;
    });
    return { pairs, keeps };
  }

  private async upstream(index: number, entry: NonNullable<ConfigDocument['upstreams']>[number]): Promise<void> {
    const path = `upstreams[${index}]`;
    const spec: Spec = {
      ...UPSTREAM_DEFAULTS,
      ...Object.fromEntries(
        UPSTREAM_SETTINGS.flatMap((field) => {
          const value = entry[field as keyof typeof entry];
          return value === undefined ? [] : [[field, value]];
        }),
      ),
      prices: pricesOf(entry.prices),
      policies: rules(entry.policies),
    };
    const found = await this.match('upstream', path, entry.name, this.live.upstreams.get(entry.name));
    const row = found?.row;
    const stored = {
      env: row ? openPairs(this.box, row.id, 'env', row.env) : [],
      headers: row ? openPairs(this.box, row.id, 'header', row.headers) : [],
      bearerToken: row ? openBearer(this.box, row.id, row.bearerToken) : null,
    };
    const env = this.resolvePairs(`${path}.env`, entry.env, stored.env);
    const headers = this.resolvePairs(`${path}.headers`, entry.headers, stored.headers);
    let bearerToken: string | null = null;
    const bearerKept = typeof entry.bearerToken === 'object';
    if (typeof entry.bearerToken === 'string') bearerToken = entry.bearerToken;
    else if (bearerKept) {
      if (stored.bearerToken === null)
        throw badInput(`${path}.bearerToken`, 'is { keep: true }, but no token is stored; give the token');
      bearerToken = stored.bearerToken;
    }
    const secrets = { env: env.pairs, headers: headers.pairs, bearerToken };
    const kept = { env: env.keeps, headers: headers.keeps, bearerToken: bearerKept };
    const settingsInput = Object.fromEntries(UPSTREAM_SETTINGS.map((field) => [field, spec[field]]));
    let id: string;
    let before: Spec;
    if (!row) {
      const upstream = await at(path, () =>
        this.services.upstreams.create({ name: entry.name, ...settingsInput, ...secrets }),
      );
      await this.created('upstream', upstream.id);
      id = upstream.id;
      before = { prices: null, policies: [] };
      const fields = created(spec, UPSTREAM_DEFAULTS);
      for (const field of SECRET_FIELDS) {
        const value = secrets[field];
        if (value !== null && (!Array.isArray(value) || value.length > 0))
          fields.push({ field, before: null, after: null, secret: true });
      }
      this.record('CREATE', 'upstream', entry.name, fields);
    } else {
      id = row.id;
      before = upstreamLive(this.live, row);
      const fields = diff(before, spec);
      const input: Record<string, unknown> = Object.fromEntries(
        fields.filter((f) => UPSTREAM_SETTINGS.includes(f.field)).map((f) => [f.field, f.after]),
      );
      const retargeted = ['transport', 'url', 'command', 'args'].some((field) => field in input);
      for (const field of SECRET_FIELDS) {
        if (canon(stored[field]) === canon(secrets[field])) continue;
        fields.push({ field, before: null, after: null, secret: true });
        // Kept values are not re-sent to a new target: the service then asks for them again.
        if (!(retargeted && kept[field])) input[field] = secrets[field];
      }
      if (retargeted)
        for (const field of SECRET_FIELDS)
          if (!kept[field] && !(field in input) && canon(stored[field]) !== canon(field === 'bearerToken' ? null : []))
            input[field] = secrets[field];
      if (Object.keys(input).length > 0) await at(path, () => this.services.upstreams.update(id, input));
      this.record(found.adopting ? 'ADOPT' : 'UPDATE', 'upstream', entry.name, fields);
    }
    const beforePrices = (before['prices'] as Prices | null) ?? { default: null, tools: {} };
    const afterPrices = (spec['prices'] as Prices | null) ?? { default: null, tools: {} };
    if (canon(beforePrices) !== canon(afterPrices)) {
      const tools = new Set([...Object.keys(beforePrices.tools), ...Object.keys(afterPrices.tools)]);
      const set = (tool: string | null, was: number | null | undefined, now: number | null | undefined) =>
        was === now
          ? undefined
          : at(
              `${path}.prices`,
              () => this.services.prices.set({ upstreamId: id, tool, priceMicros: now ?? null }),
              true,
            );
      await set(null, beforePrices.default, afterPrices.default);
      for (const tool of tools) await set(tool, beforePrices.tools[tool], afterPrices.tools[tool]);
    }
    await this.policies(path, { upstreamId: id }, before['policies'], spec['policies'] as Rule[]);
  }

  private async key(index: number, entry: NonNullable<ConfigDocument['keys']>[number]): Promise<void> {
    const path = `keys[${index}]`;
    const spec: Spec = { team: entry.team ?? null };
    spec['allowedTools'] = unique(entry.allowedTools) ?? ['*'];
    for (const list of ACCESS_LIST_NAMES) if (list !== 'allowedTools') spec[list] = unique(entry[list]);
    Object.assign(spec, {
      rateLimits: rateLimits(entry.rateLimits),
      expiresAt: isoOrRaw(entry.expiresAt),
      enabled: entry.enabled ?? true,
      codeMode: entry.codeMode ?? 'INHERIT',
      auditContent: entry.auditContent ?? 'INHERIT',
      policies: rules(entry.policies),
      budget: entry.budget ?? null,
    });
    const teamId = this.ref(this.teamIds, entry.team ?? null, `${path}.team`, 'team');
    const input: Record<string, unknown> = {
      teamId,
      rateLimits: entry.rateLimits ?? null,
      expiresAt: entry.expiresAt === undefined ? null : new Date(entry.expiresAt),
      codeMode: entry.codeMode ?? 'INHERIT',
      auditContent: entry.auditContent ?? 'INHERIT',
    };
    for (const list of ACCESS_LIST_NAMES) input[list] = entry[list] ?? null;
    const candidates = this.live.keys.get(entry.name) ?? [];
    if (candidates.length > 1)
      throw new PortcullisError(
        ErrorCode.CONFLICT,
        `${path}.name: ${candidates.length} live keys are named "${entry.name}"; give them distinct names (or revoke ` +
          'the extra ones) so that this entry names one key',
        { field: `${path}.name` },
      );
    const found = await this.match('key', path, entry.name, candidates[0]);
    if (!found) {
      // Made after every entry is read, in batches (see createKeys).
      this.newKeys.push({ index, entry, spec, input: { name: entry.name, ...input } });
      return;
    }
    const id = found.row.id;
    const before = keyLive(this.live, found.row);
    {
      const fields = diff(before, spec);
      const names = fields.map((f) => f.field);
      const settings = names.filter((f) => !['policies', 'budget', 'enabled'].includes(f));
      if (settings.length > 0) {
        const changed = Object.fromEntries(
          settings.map((field) => (field === 'team' ? ['teamId', teamId] : [field, input[field]])),
        );
        await at(path, () => this.services.keys.update(id, changed));
      }
      if (names.includes('enabled')) await at(path, () => this.services.keys.setEnabled(id, spec['enabled']));
      this.record(found.adopting ? 'ADOPT' : 'UPDATE', 'key', entry.name, fields);
    }
    await this.policies(path, { keyId: id }, before['policies'], spec['policies'] as Rule[]);
    await this.budget(path, 'KEY', id, before['budget'], spec['budget'] as Budget | null);
  }

  /** Creates the new keys in batches (createVirtualKeys: a few statements per batch, not per key). */
  private async createKeys(): Promise<void> {
    for (let start = 0; start < this.newKeys.length; start += MAX_KEYS_PER_BATCH) {
      const batch = this.newKeys.slice(start, start + MAX_KEYS_PER_BATCH);
      const made = await this.services.keys.createMany(batch.map((key) => key.input)).catch((error: unknown) => {
        // `inputs.<n>.field` is the field of batch entry n: named as keys[<its index>].field.
        const field = error instanceof PortcullisError ? error.details?.['field'] : undefined;
        const entry = typeof field === 'string' ? /^inputs\.(\d+)(.*)$/.exec(field) : null;
        if (!entry || !(error instanceof PortcullisError) || typeof field !== 'string') throw error;
        const renamed = `input${entry[2]}`;
        const message = error.message.startsWith(`${field}: `)
          ? `${renamed}${error.message.slice(field.length)}`
          : error.message;
        return at<never>(`keys[${batch[Number(entry[1])]!.index}]`, () => {
          throw new PortcullisError(error.code, message, { ...error.details, field: renamed }, { cause: error });
        });
      });
      const ids = made.map((created) => created.key.id);
      await this.manager.query(`UPDATE virtual_keys SET managed = true WHERE id = ANY($1)`, [ids]);
      for (const [i, { index, entry, spec }] of batch.entries()) {
        const path = `keys[${index}]`;
        const { key, secret } = made[i]!;
        if (entry.enabled === false) await at(path, () => this.services.keys.setEnabled(key.id, false));
        this.createdKeys.push({ name: entry.name, id: key.id, secret });
        this.record('CREATE', 'key', entry.name, created(spec, KEY_DEFAULTS));
        await this.policies(path, { keyId: key.id }, [], spec['policies'] as Rule[]);
        await this.budget(path, 'KEY', key.id, null, spec['budget'] as Budget | null);
      }
    }
  }

  /** Replaces the MCP authorization settings (null: clears them) when they differ from the document's. */
  private async mcpAuthorization(entry: (ConfigDocument['mcpAuthorization'] & object) | null): Promise<void> {
    const path = 'mcpAuthorization';
    const before = await readMcpAuthorization(this.manager);
    let input: unknown = null;
    let after: McpAuthorizationView | null = null;
    if (entry !== null) {
      input = {
        ...entry,
        identityProviders: entry.identityProviders.map((provider, i) => ({
          ...provider,
          teams: provider.teams.map(({ team, ...mapping }, j) => ({
            ...mapping,
            teamId: this.ref(this.teamIds, team ?? null, `${path}.identityProviders[${i}].teams[${j}].team`, 'team'),
          })),
        })),
      };
      after = await at(path, async () => mcpAuthorizationView(input));
    }
    if (canon(before) === canon(after)) return;
    await at(path, () => this.services.mcpAuthorization.set(input));
    const names = new Map([...this.teamIds].map(([name, id]) => [id, name]));
    const shown = (view: McpAuthorizationView | null): Spec =>
      view === null ? {} : mcpAuthorizationEntry(view, names);
    const action = before === null ? 'CREATE' : after === null ? 'DELETE' : 'UPDATE';
    this.record(action, 'settings', path, after === null ? [] : diff(shown(before), shown(after)));
  }

  /** Changes the audit settings the document gives (a field omitted: left as it is) when they differ. */
  private async auditSettings(entry: NonNullable<ConfigDocument['auditSettings']>): Promise<void> {
    const path = 'auditSettings';
    const before = await readAuditSettings(this.manager);
    const after = await at(path, async () => auditSettingsView(entry, before));
    const fields = diff({ ...before }, { ...after });
    if (fields.length === 0) return;
    await at(path, () => this.services.auditSettings.set(entry));
    this.record('UPDATE', 'settings', path, fields);
  }

  /**
   * Revokes managed keys, then deletes managed upstreams, teams and customers the file no longer names
   * (a team or customer still used, e.g. by a key or team made by hand, is refused as deleteTeam does).
   */
  private async prune(): Promise<void> {
    const named = (kind: DocumentKind) => new Set((this.document[kind] ?? []).map((entry) => entry.name));
    const keys = named('keys');
    for (const [name, list] of this.live.keys) {
      if (keys.has(name)) continue;
      for (const { row, managed } of list) {
        if (!managed) continue;
        await at(`keys`, () => this.services.keys.revoke(row.id), true);
        this.record('DELETE', 'key', name, []);
      }
    }
    const upstreams = named('upstreams');
    for (const [name, { row, managed }] of this.live.upstreams) {
      if (!managed || upstreams.has(name)) continue;
      await at('upstreams', () => this.services.upstreams.delete(row.id), true);
      this.record('DELETE', 'upstream', name, []);
    }
    const teams = named('teams');
    for (const [name, { row, managed }] of this.live.teams) {
      if (!managed || teams.has(name)) continue;
      await at('teams', () => this.services.teams.delete(row.id), true);
      this.record('DELETE', 'team', name, []);
    }
    const customers = named('customers');
    for (const [name, { row, managed }] of this.live.customers) {
      if (!managed || customers.has(name)) continue;
      await at('customers', () => this.services.teams.deleteCustomer(row.id), true);
      this.record('DELETE', 'customer', name, []);
    }
  }
}
