import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { connectLegacyAgent, firstText } from '../support/agents.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Human approvals end to end, with two nodes and the control plane as real processes: a call whose
 * policy is APPROVE is held on the node the agent reached, appears in GraphQL, and completes or is
 * refused when a person decides there; a timeout refuses it; the agent's cancellation withdraws it;
 * a held call survives a control-plane restart; a node restart refuses its held calls.
 */

interface ApprovalRow {
  id: string;
  status: string;
  nodeId: string;
  tool: string;
  argumentsJson: string;
  reason: string;
  decidedBy: string | null;
  decisionReason: string | null;
}

const APPROVALS = /* GraphQL */ `
  query ($status: ApprovalStatus) {
    approvals(status: $status) { id status nodeId tool argumentsJson reason decidedBy decisionReason }
  }
`;
const APPROVE =
  /* GraphQL */ `mutation ($id: ID!, $reason: String) { approveCall(id: $id, reason: $reason) { id ` +
  `status decidedBy } }`;
const DENY =
  /* GraphQL */ `mutation ($id: ID!, $reason: String) { denyCall(id: $id, reason: $reason) { id status ` +
  `decisionReason } }`;

interface AuditRow {
  id: string;
  kind: string;
  status: string;
  node: string;
  keyId: string | null;
  subject: string | null;
  tool: string | null;
  arguments: string | null;
  result: string | null;
  parentId: string | null;
  latencyMs: number;
}

const AUDIT = /* GraphQL */ `
  query ($filter: AuditFilter) {
    auditEvents(filter: $filter, first: 100) {
      edges { node { id kind status node keyId subject tool arguments result parentId latencyMs } }
    }
  }
`;

describe('approvals (two nodes, GraphQL decisions over the config stream)', () => {
  let env: TestEnv;
  const agents: ClientV1[] = [];

  before(async () => {
    env = await startTestEnv({
      nodes: ['node-a', 'node-b'],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'agent', allowedTools: ['ev__*'] }],
    });
    await env.gqlOk(
      `mutation ($scope: PolicyScopeInput!, $rules: [ToolPolicyInput!]!) { setToolPolicies(scope: $scope, rules: ` +
        `$rules) { id } }`,
      {
        scope: { upstreamId: env.upstreams[0]!.id },
        rules: [
          { tool: 'echo', policy: 'APPROVE', argument: 'message', pattern: '^needs-approval' },
          { tool: 'get-sum', policy: 'APPROVE', approvalTimeoutMs: 1500 },
        ],
      },
    );
    // The rules reached both nodes when an unconditional call still runs and a conditional one is held.
    for (const node of ['node-a', 'node-b']) {
      const agent = await agentOn(node);
      // Generous: on a loaded machine (CI runs two test files at once) a node takes a while to connect upstream.
      await eventually(
        `${node} serves ev__echo`,
        async () =>
          agent.callTool({ name: 'ev__echo', arguments: { message: 'free' } }).then(
            (result) => firstText(result) === 'Echo: free',
            () => false,
          ),
        60_000,
      );
    }
  });
  after(async () => {
    await Promise.all(agents.map((agent) => agent.close().catch(() => undefined)));
    await env?.dispose();
  });

  async function agentOn(node: string): Promise<ClientV1> {
    const { client } = await connectLegacyAgent(env.node(node).mcpUrl, env.key.secret);
    agents.push(client);
    return client;
  }

  async function pending(what: (row: ApprovalRow) => boolean): Promise<ApprovalRow> {
    let found: ApprovalRow | undefined;
    await eventually('the approval request appears in GraphQL', async () => {
      const data = await env.gqlOk<{ approvals: ApprovalRow[] }>(APPROVALS, { status: 'PENDING' });
      found = data.approvals.find(what);
      return found !== undefined;
    });
    return found!;
  }

  async function auditEvents(filter: Record<string, unknown>): Promise<AuditRow[]> {
    const data = await env.gqlOk<{ auditEvents: { edges: { node: AuditRow }[] } }>(AUDIT, { filter });
    return data.auditEvents.edges.map((edge) => edge.node);
  }

  /** The approval_request and approval_decision records of one approval, and the held call's own record. */
  async function approvalRecords(
    approvalId: string,
  ): Promise<{ request: AuditRow; decision: AuditRow; call: AuditRow }> {
    let found: { request: AuditRow; decision: AuditRow; call: AuditRow } | undefined;
    await eventually(`the audit records of approval ${approvalId}`, async () => {
      const requests = await auditEvents({ kind: 'APPROVAL_REQUEST' });
      const request = requests.find((row) => JSON.parse(row.result ?? '{}').approvalId === approvalId);
      if (request?.parentId == null) return false;
      const children = await auditEvents({ parentId: request.parentId });
      const decision = children.find((row) => row.kind === 'APPROVAL_DECISION');
      const call = (await auditEvents({ kind: 'TOOL_CALL', tool: request.tool })).find(
        (row) => row.id === request.parentId,
      );
      if (decision === undefined || call === undefined) return false;
      found = { request, decision, call };
      return true;
    });
    return found!;
  }

  async function statusOf(id: string): Promise<ApprovalRow | undefined> {
    const data = await env.gqlOk<{ approvals: ApprovalRow[] }>(APPROVALS, {});
    return data.approvals.find((row) => row.id === id);
  }

  test(`a held call approved through GraphQL completes for its agent, on the node holding it; another is denied with \
its reason`, async () => {
    const onA = await agentOn('node-a');
    const onB = await agentOn('node-b');
    const progress: string[] = [];
    const callB = onB.callTool({ name: 'ev__echo', arguments: { message: 'needs-approval b' } }, undefined, {
      onprogress: (p) => progress.push(String(p.message)),
      timeout: 60_000,
    });
    const callA = onA.callTool({ name: 'ev__echo', arguments: { message: 'needs-approval a' } }, undefined, {
      timeout: 60_000,
    });
    const requestB = await pending((row) => row.argumentsJson.includes('needs-approval b'));
    const requestA = await pending((row) => row.argumentsJson.includes('needs-approval a'));
    assert.equal(requestB.nodeId, 'node-b');
    assert.equal(requestA.nodeId, 'node-a');
    assert.equal(requestB.tool, 'ev__echo');
    assert.match(requestB.reason, /argument "message" matches/);
    await eventually('the waiting agent is told it waits', () =>
      progress.some((m) => /Waiting for a person to approve ev__echo/.test(m)),
    );

    const started = performance.now();
    const approved = await env.gqlOk<{ approveCall: { status: string; decidedBy: string } }>(APPROVE, {
      id: requestB.id,
      reason: 'looks fine',
    });
    assert.deepEqual(approved.approveCall, {
      id: requestB.id,
      status: 'APPROVED',
      decidedBy: 'admin:bootstrap admin token',
    });
    assert.equal(firstText(await callB), 'Echo: needs-approval b');
    const latencyMs = performance.now() - started;
    assert.ok(latencyMs < 2000, `the decision reached the node in ${latencyMs} ms`);

    // The other call still waits; denied, its agent reads why.
    assert.equal((await statusOf(requestA.id))?.status, 'PENDING');
    await env.gqlOk(DENY, { id: requestA.id, reason: 'not on a Friday' });
    const deniedResult = (await callA) as { isError?: boolean; _meta?: Record<string, { reason?: string }> };
    assert.equal(deniedResult.isError, true);
    assert.match(firstText(deniedResult), /^Tool ev__echo was not run: a person denied it: not on a Friday$/);
    assert.equal(deniedResult._meta?.['dev.portcullis/error']?.reason, 'APPROVAL_DENIED');

    // A decided request cannot be decided again.
    const again = await env.gql(APPROVE, { id: requestA.id });
    assert.equal(again.errors?.[0]?.extensions?.code, 'CONFLICT');
    assert.match(again.errors?.[0]?.message ?? '', /is DENIED already/);

    // Both are audited: the request and the decision (who, when, why), under the held call's record.
    const approvedRecords = await approvalRecords(requestB.id);
    assert.equal(approvedRecords.request.status, 'PENDING');
    assert.equal(approvedRecords.request.node, 'node-b');
    assert.equal(approvedRecords.request.tool, 'ev__echo');
    assert.equal(approvedRecords.request.keyId, env.key.id);
    assert.match(approvedRecords.request.arguments ?? '', /needs-approval b/);
    assert.equal(JSON.parse(approvedRecords.request.result!).via, 'OPERATOR');
    assert.equal(approvedRecords.call.status, 'OK');
    assert.match(approvedRecords.call.result ?? '', /Echo: needs-approval b/);
    const approvedDecision = approvedRecords.decision;
    assert.equal(approvedDecision.status, 'APPROVED');
    assert.equal(approvedDecision.subject, 'admin:bootstrap admin token');
    const approvedDetail = JSON.parse(approvedDecision.result!) as Record<string, string>;
    assert.equal(approvedDetail['decidedBy'], 'admin:bootstrap admin token');
    assert.equal(approvedDetail['reason'], 'looks fine');
    assert.ok(Math.abs(Date.parse(approvedDetail['decidedAt']!) - Date.now()) < 60_000, 'decidedAt is a time');
    assert.ok(approvedDecision.latencyMs > 0, 'the decision says how long the call waited');

    const deniedRecords = await approvalRecords(requestA.id);
    assert.equal(deniedRecords.request.node, 'node-a');
    assert.equal(deniedRecords.decision.status, 'DENIED');
    assert.equal(deniedRecords.decision.subject, 'admin:bootstrap admin token');
    assert.equal(JSON.parse(deniedRecords.decision.result!).reason, 'not on a Friday');
    assert.equal(deniedRecords.call.status, 'TOOL_ERROR');
  });

  test('a call nobody decides is refused when its timeout passes, and marked TIMED_OUT', async () => {
    const agent = await agentOn('node-a');
    const result = (await agent.callTool({ name: 'ev__get-sum', arguments: { a: 1, b: 2 } })) as { isError?: boolean };
    assert.equal(result.isError, true);
    assert.match(firstText(result), /needs a person's approval and none came within 2 s/);
    const id = /approval request ([0-9a-f-]{36})/.exec(firstText(result))?.[1];
    assert.ok(id);
    await eventually('the request is TIMED_OUT', async () => (await statusOf(id))?.status === 'TIMED_OUT');
    const { decision } = await approvalRecords(id);
    assert.equal(decision.status, 'TIMED_OUT');
    assert.equal(decision.subject, 'node:node-a');
  });

  test('the agent cancelling withdraws the request', async () => {
    const agent = await agentOn('node-b');
    const controller = new AbortController();
    const call = agent.callTool({ name: 'ev__echo', arguments: { message: 'needs-approval cancel' } }, undefined, {
      signal: controller.signal,
    });
    const request = await pending((row) => row.argumentsJson.includes('needs-approval cancel'));
    controller.abort();
    await assert.rejects(call);
    await eventually('the request is WITHDRAWN', async () => (await statusOf(request.id))?.status === 'WITHDRAWN');
  });

  test('a held call survives a control-plane restart and completes when approved after it', async () => {
    const agent = await agentOn('node-a');
    const call = agent.callTool({ name: 'ev__echo', arguments: { message: 'needs-approval restart' } }, undefined, {
      timeout: 120_000,
    });
    const request = await pending((row) => row.argumentsJson.includes('needs-approval restart'));
    await env.controlPlane!.stop();
    await env.controlPlane!.restart();
    // The node reconnects and sends its pending request again; the decision reaches it.
    await eventually(
      'the approval is decided after the restart',
      async () => (await env.gql(APPROVE, { id: request.id })).errors === undefined,
      60_000,
    );
    assert.equal(firstText(await call), 'Echo: needs-approval restart');
  });

  test('a node restart refuses its held calls clearly; the control plane marks them NODE_RESTARTED', async () => {
    const agent = await agentOn('node-b');
    const call = agent.callTool({ name: 'ev__echo', arguments: { message: 'needs-approval node' } }, undefined, {
      timeout: 120_000,
    });
    const request = await pending((row) => row.argumentsJson.includes('needs-approval node'));
    await env.node('node-b').stop();
    // The stopping node refuses the call it held, saying so (an agent whose node crashed loses its connection instead).
    const refused = (await call) as { isError?: boolean };
    assert.equal(refused.isError, true);
    assert.match(firstText(refused), /^Tool ev__echo was not run: the gateway node holding it for approval stopped$/);
    await env.startNode('node-b');
    await eventually(
      'the request is NODE_RESTARTED',
      async () => (await statusOf(request.id))?.status === 'NODE_RESTARTED',
      60_000,
    );
    const row = await statusOf(request.id);
    assert.match(row?.decisionReason ?? '', /the node holding the call restarted/);
  });
});
