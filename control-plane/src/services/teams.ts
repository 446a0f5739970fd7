import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Customer, Team } from '../db/entities.ts';
import { MCP_AUTHORIZATION_SETTING } from './mcp-authorization.ts';
import { accessListFields, mergeAccessLists, rateLimitsInput, storedRateLimits } from './access-lists.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { MAX_PAGE_SIZE, keysetPage, rowsById, type Page } from './pagination.ts';
import { badInput, isUniqueViolation, parseId, parseInput } from './validation.ts';

const name = (what: string) =>
  z.string().trim().min(1, `is empty; give the ${what} a name`).max(128, 'is longer than 128 characters; shorten it');

const createTeamSchema = z.object({
  name: name('team'),
  customerId: z.string().nullish(),
  ...accessListFields,
  rateLimits: rateLimitsInput.nullish(),
});

const updateTeamSchema = z
  .object({
    name: name('team').optional(),
    customerId: z.string().nullish(),
    ...accessListFields,
    rateLimits: rateLimitsInput.nullish(),
  })
  .strict();

const createCustomerSchema = z.object({ name: name('customer'), rateLimits: rateLimitsInput.nullish() });
const updateCustomerSchema = z
  .object({ name: name('customer').optional(), rateLimits: rateLimitsInput.nullish() })
  .strict();

function nameTaken(kind: string, taken: string): PortcullisError {
  return new PortcullisError(
    ErrorCode.CONFLICT,
    `input.name: a ${kind} named "${taken}" already exists; choose another name`,
    { field: 'input.name' },
  );
}

function notFound(kind: string, id: string, query: string): PortcullisError {
  return new PortcullisError(ErrorCode.NOT_FOUND, `id: no ${kind} has id "${id}"; list them with the ${query} query`, {
    field: 'id',
  });
}

const quoted = (rows: Array<{ name: string; total: number }>) =>
  rows.map((row) => `"${row.name}"`).join(', ') + (rows[0]!.total > rows.length ? ', …' : '');

/** Whether stored MCP authorization settings (JSON) map a claim value to `teamId`. */
function mapsClaimsTo(stored: string, teamId: string): boolean {
  const settings = JSON.parse(stored) as { identityProviders?: Array<{ teams?: Array<{ teamId?: string | null }> }> };
  return (settings.identityProviders ?? []).some((p) => (p.teams ?? []).some((t) => t.teamId === teamId));
}

function stillReferenced(what: string, by: string, fix: string): PortcullisError {
  return new PortcullisError(ErrorCode.CONFLICT, `id: ${what} is still used by ${by}; ${fix}`, { field: 'id' });
}

/**
 * Refuses (CONFLICT) to delete `what` while `from` (`$1` is its id) selects rows, naming the first five by name
 * and, through `by`, how many there are.
 */
async function refuseWhileUsed(
  manager: EntityManager,
  id: string,
  from: string,
  refusal: { readonly what: string; readonly by: (total: number) => string; readonly fix: string },
): Promise<void> {
  const rows = (await manager.query(`SELECT name, count(*) OVER ()::int AS total FROM ${from} ORDER BY name LIMIT 5`, [
    id,
  ])) as Array<{ name: string; total: number }>;
  if (rows.length > 0)
    throw stillReferenced(refusal.what, `${refusal.by(rows[0]!.total)} (${quoted(rows)})`, refusal.fix);
}

async function requireCustomer(manager: EntityManager, customerId: string): Promise<void> {
  if (!(await manager.existsBy(Customer, { id: customerId })))
    throw badInput(
      'input.customerId',
      `no customer has id "${customerId}"; create one with createCustomer or leave customerId out`,
    );
}

/** Runs a change, turning a unique violation of `constraint` into CONFLICT naming `taken`. */
async function uniquely<T>(constraint: string, kind: string, taken: string | undefined, run: () => Promise<T>) {
  try {
    return await run();
  } catch (error) {
    if (taken !== undefined && isUniqueViolation(error, constraint)) throw nameTaken(kind, taken);
    throw error;
  }
}

export class TeamService {
  constructor(private readonly store: ConfigStore) {}

  async create(rawInput: unknown): Promise<Team> {
    const input = parseInput(createTeamSchema, rawInput, 'input');
    const customerId = input.customerId ? parseId(input.customerId, 'input.customerId') : null;
    const team = Object.assign(new Team(), {
      id: randomUUID(),
      name: input.name,
      customerId,
      access: mergeAccessLists({}, input),
      rateLimits: input.rateLimits ? storedRateLimits(input.rateLimits) : {},
      createdAt: new Date(),
    });
    await uniquely('teams_name_key', 'team', input.name, () =>
      withConfigChange(this.store, async (manager) => {
        if (customerId) await requireCustomer(manager, customerId);
        await manager.insert(Team, team);
        return { result: undefined, changed: true };
      }),
    );
    return team;
  }

  /** Changes the given fields of a team; its lists and limits apply to every key of it on the next revision. */
  async update(rawId: string, rawInput: unknown): Promise<Team> {
    const id = parseId(rawId, 'id');
    const input = parseInput(updateTeamSchema, rawInput, 'input');
    const customerId = input.customerId ? parseId(input.customerId, 'input.customerId') : input.customerId;
    return uniquely('teams_name_key', 'team', input.name, () =>
      withConfigChange(this.store, async (manager) => {
        const team = await manager.findOne(Team, { where: { id }, lock: { mode: 'pessimistic_write' } });
        if (!team) throw notFound('team', id, 'teams');
        if (customerId) await requireCustomer(manager, customerId);
        if (input.name !== undefined) team.name = input.name;
        if (customerId !== undefined) team.customerId = customerId;
        team.access = mergeAccessLists(team.access, input);
        if (input.rateLimits !== undefined)
          team.rateLimits = input.rateLimits ? storedRateLimits(input.rateLimits) : {};
        await manager.save(Team, team);
        return { result: team, changed: true };
      }),
    );
  }

  async createCustomer(rawInput: unknown): Promise<Customer> {
    const input = parseInput(createCustomerSchema, rawInput, 'input');
    const customer = Object.assign(new Customer(), {
      id: randomUUID(),
      name: input.name,
      rateLimits: input.rateLimits ? storedRateLimits(input.rateLimits) : {},
      createdAt: new Date(),
    });
    await uniquely('customers_name_key', 'customer', input.name, () =>
      withConfigChange(this.store, async (manager) => {
        await manager.insert(Customer, customer);
        return { result: undefined, changed: true };
      }),
    );
    return customer;
  }

  async updateCustomer(rawId: string, rawInput: unknown): Promise<Customer> {
    const id = parseId(rawId, 'id');
    const input = parseInput(updateCustomerSchema, rawInput, 'input');
    return uniquely('customers_name_key', 'customer', input.name, () =>
      withConfigChange(this.store, async (manager) => {
        const customer = await manager.findOne(Customer, { where: { id }, lock: { mode: 'pessimistic_write' } });
        if (!customer) throw notFound('customer', id, 'customers');
        if (input.name !== undefined) customer.name = input.name;
        if (input.rateLimits !== undefined)
          customer.rateLimits = input.rateLimits ? storedRateLimits(input.rateLimits) : {};
        await manager.save(Customer, customer);
        return { result: customer, changed: true };
      }),
    );
  }

  /**
   * Deletes a team, its execution policies and its budget. Refused (CONFLICT, naming them) while live
   * keys belong to it or the MCP authorization settings map a claim to it: move or revoke those first.
   * Revoked keys keep their history in the audit trail and lose the link. The team row is locked
   * first, so a key made or moved into it meanwhile either waits and is seen, or fails its reference.
   */
  async delete(rawId: string): Promise<boolean> {
    const id = parseId(rawId, 'id');
    return withConfigChange(this.store, async (manager) => {
      const team = await manager.findOne(Team, { where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!team) throw notFound('team', id, 'teams');
      await refuseWhileUsed(manager, id, 'virtual_keys WHERE team_id = $1 AND revoked_at IS NULL', {
        what: `team "${team.name}"`,
        by: (total) => `${total} live key(s)`,
        fix: 'move them to another team (updateVirtualKey teamId) or revoke them, then delete it',
      });
      const settings = (await manager.query(`SELECT value FROM settings WHERE key = $1 FOR UPDATE`, [
        MCP_AUTHORIZATION_SETTING,
      ])) as Array<{ value: string }>;
      if (settings[0] !== undefined && mapsClaimsTo(settings[0].value, id))
        throw stillReferenced(
          `team "${team.name}"`,
          'the MCP authorization settings (a claim value maps to it)',
          'map that claim value to another team with setMcpAuthorization, then delete it',
        );
      await manager.query(`DELETE FROM budgets WHERE scope = 'TEAM' AND owner_id = $1`, [id]);
      // execution_policies and (revoked) keys follow by their foreign keys (CASCADE, SET NULL).
      await manager.delete(Team, { id });
      return { result: true, changed: true };
    });
  }

  /** Deletes a customer and its budget; refused (CONFLICT, naming them) while teams belong to it. */
  async deleteCustomer(rawId: string): Promise<boolean> {
    const id = parseId(rawId, 'id');
    return withConfigChange(this.store, async (manager) => {
      const customer = await manager.findOne(Customer, { where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!customer) throw notFound('customer', id, 'customers');
      await refuseWhileUsed(manager, id, 'teams WHERE customer_id = $1', {
        what: `customer "${customer.name}"`,
        by: (total) => `${total} team(s)`,
        fix: 'delete them or move them to another customer (updateTeam customerId), then delete it',
      });
      await manager.query(`DELETE FROM budgets WHERE scope = 'CUSTOMER' AND owner_id = $1`, [id]);
      await manager.delete(Customer, { id });
      return { result: true, changed: true };
    });
  }

  /** Teams by name, one page (see `Page`). */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<Team[]> {
    const repository = this.store.dataSource.getRepository(Team);
    const order = { alias: 't', property: 'name', column: 'name', table: 'teams', what: 'team' };
    return keysetPage(repository, order, page);
  }

  /** Customers by name, one page (see `Page`). */
  async listCustomers(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<Customer[]> {
    const repository = this.store.dataSource.getRepository(Customer);
    const order = { alias: 'c', property: 'name', column: 'name', table: 'customers', what: 'customer' };
    return keysetPage(repository, order, page);
  }

  /** The teams of one customer, by name (at most 1000). */
  async teamsOf(customerId: string): Promise<Team[]> {
    return this.store.dataSource
      .getRepository(Team)
      .find({ where: { customerId }, order: { name: 'ASC', id: 'ASC' }, take: MAX_PAGE_SIZE });
  }

  async getMany(ids: readonly string[]): Promise<Map<string, Team>> {
    return rowsById(this.store.dataSource.getRepository(Team), ids);
  }

  async getCustomers(ids: readonly string[]): Promise<Map<string, Customer>> {
    return rowsById(this.store.dataSource.getRepository(Customer), ids);
  }
}
