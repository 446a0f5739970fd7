import { AuditFeed } from './audit-feed.ts';
import { AuditQueries } from './audit-queries.ts';
import type { Logger } from '../../../common/src/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import { AdminTokenService } from '../admins/admin-tokens.ts';
import { ApprovalService } from './approvals.ts';
import { CatalogService } from './catalog.ts';
import { ExecutionPolicyService } from './execution-policies.ts';
import { AuditSettingsService } from './audit-settings.ts';
import { McpAuthorizationService } from './mcp-authorization.ts';
import { NodeService } from './nodes.ts';
import { BudgetService } from './budgets.ts';
import { PriceService } from './prices.ts';
import { TeamService } from './teams.ts';
import { UpstreamService } from './upstreams.ts';
import { VirtualKeyService } from './virtual-keys.ts';
import { currentRevision } from '../config/revision.ts';
import type { ConfigStore } from './config-change.ts';
import { ConfigApplyService } from '../declarative/apply.ts';

/** Every domain service of the control plane, over one data source. */
export interface ControlPlaneServices {
  upstreams: UpstreamService;
  virtualKeys: VirtualKeyService;
  teams: TeamService;
  nodes: NodeService;
  catalog: CatalogService;
  prices: PriceService;
  budgets: BudgetService;
  executionPolicies: ExecutionPolicyService;
  approvals: ApprovalService;
  /** The audit trail, read for GraphQL. */
  audit: AuditQueries;
  /** The audit records this process stores, as they commit (for subscriptions). */
  auditFeed: AuditFeed;
  mcpAuthorization: McpAuthorizationService;
  /** Gateway-wide audit settings (content logging default). */
  auditSettings: AuditSettingsService;
  adminTokens: AdminTokenService;
  /** Declarative configuration: applyConfig and exportConfig. */
  config: ConfigApplyService;
  /** The newest committed configuration revision. */
  configVersion(): Promise<string>;
}

export function createServices(store: ConfigStore, box: SecretBox, logger: Logger): ControlPlaneServices {
  const { dataSource } = store;
  const audit = new AuditQueries(dataSource);
  return {
    upstreams: new UpstreamService(store, box),
    virtualKeys: new VirtualKeyService(store),
    teams: new TeamService(store),
    nodes: new NodeService(dataSource),
    catalog: new CatalogService(store, logger),
    prices: new PriceService(store),
    budgets: new BudgetService(store),
    executionPolicies: new ExecutionPolicyService(store),
    approvals: new ApprovalService(dataSource, logger, store.changes),
    audit,
    auditFeed: new AuditFeed(store.changes, (first, last) => audit.bySeqRange(first, last), logger),
    mcpAuthorization: new McpAuthorizationService(store),
    auditSettings: new AuditSettingsService(store),
    adminTokens: new AdminTokenService(dataSource),
    config: new ConfigApplyService(store, box),
    configVersion: () => currentRevision(dataSource.manager),
  };
}
