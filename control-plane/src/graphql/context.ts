import type { Team, Tool, UpstreamNodeStatus } from '../db/entities.ts';
import type { ControlPlaneServices } from '../services/index.ts';
import type { UpstreamView } from '../services/upstreams.ts';
import { BatchLoader, groupBy } from './batch-loader.ts';

/** Per-request GraphQL context: the services and the request's batch loaders. */
export interface GraphqlContext {
  services: ControlPlaneServices;
  loaders: {
    toolsOfUpstream: BatchLoader<string, Tool[]>;
    statusOfUpstream: BatchLoader<string, UpstreamNodeStatus[]>;
    upstream: BatchLoader<string, UpstreamView | null>;
    team: BatchLoader<string, Team | null>;
  };
}

export function createContext(services: ControlPlaneServices): GraphqlContext {
  return {
    services,
    loaders: {
      toolsOfUpstream: new BatchLoader(async (ids) => groupBy(await services.catalog.toolsOf(ids), (tool) => tool.upstreamId), []),
      statusOfUpstream: new BatchLoader(async (ids) => groupBy(await services.catalog.statusOf(ids), (row) => row.upstreamId), []),
      upstream: new BatchLoader((ids) => services.upstreams.getMany(ids), null),
      team: new BatchLoader((ids) => services.teams.getMany(ids), null),
    },
  };
}
