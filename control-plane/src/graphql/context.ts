import type { Team, Tool, ToolDefinitionChange, UpstreamCatalogList, UpstreamNodeStatus } from '../db/entities.ts';
import type { ControlPlaneServices } from '../services/index.ts';
import type { UpstreamView } from '../services/upstreams.ts';
import { BatchLoader, groupBy } from './batch-loader.ts';

/** Per-request GraphQL context: the services and the request's batch loaders. */
export interface GraphqlContext {
  services: ControlPlaneServices;
  loaders: {
    toolsOfUpstream: BatchLoader<string, Tool[]>;
    catalogListsOfUpstream: BatchLoader<string, UpstreamCatalogList[]>;
    statusOfUpstream: BatchLoader<string, UpstreamNodeStatus[]>;
    statusOfNode: BatchLoader<string, UpstreamNodeStatus[]>;
    changesOfTool: BatchLoader<string, ToolDefinitionChange[]>;
    upstream: BatchLoader<string, UpstreamView | null>;
    team: BatchLoader<string, Team | null>;
    /** Name collisions of every upstream, computed once per request. */
    collisions: BatchLoader<string, { message: string; names: string[] } | null>;
  };
}

export function createContext(services: ControlPlaneServices): GraphqlContext {
  return {
    services,
    loaders: {
      toolsOfUpstream: new BatchLoader(async (ids) => groupBy(await services.catalog.toolsOf(ids), (tool) => tool.upstreamId), []),
      catalogListsOfUpstream: new BatchLoader(async (ids) => groupBy(await services.catalog.catalogListsOf(ids), (row) => row.upstreamId), []),
      statusOfUpstream: new BatchLoader(async (ids) => groupBy(await services.catalog.statusOf(ids), (row) => row.upstreamId), []),
      statusOfNode: new BatchLoader(async (ids) => groupBy(await services.catalog.statusOfNodes(ids), (row) => row.nodeId), []),
      changesOfTool: new BatchLoader(async (ids) => groupBy(await services.catalog.changesOf(ids), (row) => row.toolId), []),
      upstream: new BatchLoader((ids) => services.upstreams.getMany(ids), null),
      team: new BatchLoader((ids) => services.teams.getMany(ids), null),
      collisions: new BatchLoader(() => services.catalog.collisions(), null),
    },
  };
}
