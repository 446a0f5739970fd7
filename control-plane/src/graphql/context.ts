import DataLoader from 'dataloader';
import type {
  Customer,
  Team,
  Tool,
  ToolDefinitionChange,
  UpstreamCatalogList,
  UpstreamNodeStatus,
} from '../db/entities.ts';
import type { PolicyScope, ToolPolicy } from '../services/execution-policies.ts';
import type { Admin } from '../admins/roles.ts';
import type { ControlPlaneServices } from '../services/index.ts';
import type { UpstreamView } from '../services/upstreams.ts';
import { ResultBudget } from './result-budget.ts';

/** The `first`/`after` arguments of a paged list field, as GraphQL passes them. */
export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

/** A collision summary of one upstream (see `CatalogService.collisions`). */
export type CollisionSummary = { message: string; names: string[] } | null;

/**
 * Per-request GraphQL context: the services, the request's loaders and its result budget.
 *
 * Every field below a list resolves through a DataLoader: the keys one level of the query asks
 * for are loaded with one query (DataLoader batches what is asked in one tick), and a key asked
 * for again deeper in the same request (`tools { upstream { tools } }`) comes from the request's
 * cache, so nesting costs at most one query per level and a cycle repeats none. The loaders live
 * only as long as the request: nothing is cached across requests.
 */
export interface GraphqlContext {
  services: ControlPlaneServices;
  /** Who is asking, and with which role (checked by `admins/roles.ts` FIELD_ROLES before a guarded field resolves). */
  admin: Admin;
  loaders: {
    toolsOfUpstream: DataLoader<string, Tool[]>;
    catalogListsOfUpstream: DataLoader<string, UpstreamCatalogList[]>;
    statusOfUpstream: DataLoader<string, UpstreamNodeStatus[]>;
    statusOfNode: DataLoader<string, UpstreamNodeStatus[]>;
    /** Per `first` argument of Tool.changes (at most a few distinct values per request). */
    changesOfTool(first: number): DataLoader<string, ToolDefinitionChange[]>;
    upstream: DataLoader<string, UpstreamView | null>;
    team: DataLoader<string, Team | null>;
    customer: DataLoader<string, Customer | null>;
    /** Name collisions of every upstream, computed once per request. */
    collisions: DataLoader<string, CollisionSummary>;
    /** Execution policy rules of upstreams, teams or keys by id. */
    policiesOf(kind: PolicyScope['kind']): DataLoader<string, ToolPolicy[]>;
  };
  budget: ResultBudget;
}

/** Groups rows by a key into a map of arrays. */
export function groupBy<K, V>(rows: readonly V[], keyOf: (row: V) => K): Map<K, V[]> {
  const groups = new Map<K, V[]>();
  for (const row of rows) {
    const key = keyOf(row);
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  return groups;
}

/** A loader answering each key from one map-returning batch query (`fallback` for keys it lacks). */
function mapLoader<V>(load: (keys: readonly string[]) => Promise<Map<string, V>>, fallback: V): DataLoader<string, V> {
  return new DataLoader<string, V>(async (keys) => {
    const found = await load(keys);
    return keys.map((key) => (found.has(key) ? found.get(key)! : fallback));
  });
}

/** A loader of the rows belonging to each key, grouped by `keyOf`. */
function groupLoader<V>(
  load: (keys: readonly string[]) => Promise<V[]>,
  keyOf: (row: V) => string,
): DataLoader<string, V[]> {
  return mapLoader(async (keys) => groupBy(await load(keys), keyOf), []);
}

export function createContext(
  services: ControlPlaneServices,
  options: { maxListItems: number; admin: Admin },
): GraphqlContext {
  const changeLoaders = new Map<number, DataLoader<string, ToolDefinitionChange[]>>();
  const policyLoaders = new Map<PolicyScope['kind'], DataLoader<string, ToolPolicy[]>>();
  return {
    services,
    admin: options.admin,
    loaders: {
      toolsOfUpstream: groupLoader(
        (ids) => services.catalog.toolsOf(ids),
        (tool) => tool.upstreamId,
      ),
      catalogListsOfUpstream: groupLoader(
        (ids) => services.catalog.catalogListsOf(ids),
        (row) => row.upstreamId,
      ),
      statusOfUpstream: groupLoader(
        (ids) => services.catalog.statusOf(ids),
        (row) => row.upstreamId,
      ),
      statusOfNode: groupLoader(
        (ids) => services.catalog.statusOfNodes(ids),
        (row) => row.nodeId,
      ),
      changesOfTool(first) {
        let loader = changeLoaders.get(first);
        if (!loader) {
          loader = groupLoader(
            (ids) => services.catalog.changesOf(ids, first),
            (row) => row.toolId,
          );
          changeLoaders.set(first, loader);
        }
        return loader;
      },
      upstream: mapLoader((ids) => services.upstreams.getMany(ids), null),
      team: mapLoader((ids) => services.teams.getMany(ids), null),
      customer: mapLoader((ids) => services.teams.getCustomers(ids), null),
      collisions: mapLoader(() => services.catalog.collisions(), null),
      policiesOf(kind) {
        let loader = policyLoaders.get(kind);
        if (!loader) {
          loader = mapLoader((ids) => services.executionPolicies.ofScopes(kind, ids), []);
          policyLoaders.set(kind, loader);
        }
        return loader;
      },
    },
    budget: new ResultBudget(options.maxListItems),
  };
}
