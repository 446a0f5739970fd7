import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CallToolResultSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { firstText } from '../support/agents.ts';
import { eventually } from '../support/eventually.ts';
import { legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';

/**
 * Approval by the person at the client (execution policy APPROVE with approvalVia CLIENT), with
 * the official SDK clients as agents that answer: a 2025-era agent (SDK v1) is sent
 * `elicitation/create` on the call's stream, a 2026-07-28 agent (SDK v2) is answered
 * `input_required` and retries with its answer. Accept runs the call, decline refuses it; an
 * agent that did not declare elicitation is held for an operator instead. Each is audited.
 */

interface AuditRow {
  id: string;
  kind: string;
  status: string;
  subject: string | null;
  tool: string | null;
  result: string | null;
  parentId: string | null;
}

const AUDIT = /* GraphQL */ `
  query ($filter: AuditFilter) {
    auditEvents(filter: $filter, first: 100) { edges { node { id kind status subject tool result parentId } } }
  }
`;

/** Answers the gateway's approval elicitations: accept when the arguments say "yes", else decline. */
function answer(message: string): { action: 'accept'; content: Record<string, never> } | { action: 'decline' } {
  return /ask-yes/.test(message) ? { action: 'accept', content: {} } : { action: 'decline' };
}

describe('approval by the person at the client (elicitation, both eras)', () => {
  let env: TestEnv;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    env = await startTestEnv({
      nodes: [{ id: 'node-a', args: ['--approval-timeout-seconds', '2'] }],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'agent', allowedTools: ['ev__*'] }],
    });
    // The upstream's rules, given with updateUpstream (as setToolPolicies would set them).
    const updated = await env.gqlOk<{ updateUpstream: { policies: { tool: string; approvalVia: string | null }[] } }>(
      `mutation ($id: ID!, $input: UpdateUpstreamInput!) { updateUpstream(id: $id, input: $input) { ` +
        `policies { tool approvalVia } } }`,
      {
        id: env.upstreams[0]!.id,
        input: {
          policies: [
            {
              tool: 'echo',
              policy: 'APPROVE',
              argument: 'message',
              pattern: '^ask',
              approvalVia: 'CLIENT',
              approvalTimeoutMs: 60_000,
            },
            { tool: 'get-sum', policy: 'APPROVE' },
          ],
        },
      },
    );
    assert.deepEqual(updated.updateUpstream.policies, [
      { tool: 'echo', approvalVia: 'CLIENT' },
      { tool: 'get-sum', approvalVia: null },
    ]);
  });
  after(async () => {
    await Promise.all(closers.map((close) => close().catch(() => undefined)));
    await env?.dispose();
  });

  const url = (): URL => new URL(env.node('node-a').mcpUrl);

  async function auditEvents(filter: Record<string, unknown>): Promise<AuditRow[]> {
    const data = await env.gqlOk<{ auditEvents: { edges: { node: AuditRow }[] } }>(AUDIT, { filter });
    return data.auditEvents.edges.map((edge) => edge.node);
  }

  /** The decision record of the approval whose request record names `message`, and the held call's record. */
  async function decisionOf(message: string): Promise<{ request: AuditRow; decision: AuditRow; call: AuditRow }> {
    let found: { request: AuditRow; decision: AuditRow; call: AuditRow } | undefined;
    await eventually(`the approval records of "${message}"`, async () => {
      const calls = await auditEvents({ kind: 'TOOL_CALL', tool: 'ev__echo' });
      const call = calls.find((row) => (row.result ?? '').includes(message));
      const children = call === undefined ? [] : await auditEvents({ parentId: call.id });
      const request = children.find((row) => row.kind === 'APPROVAL_REQUEST');
      const decision = children.find((row) => row.kind === 'APPROVAL_DECISION');
      if (call === undefined || request === undefined || decision === undefined) return false;
      found = { request, decision, call };
      return true;
    });
    return found!;
  }

  test(`a 2025-era agent (SDK v1) is asked by elicitation/create: accept runs the call, decline refuses it; both \
audited with the client as decider`, async () => {
    const asked: string[] = [];
    const { client } = await legacyAgent(url(), env.key.secret, { capabilities: { elicitation: {} } });
    closers.push(() => client.close());
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return answer(request.params.message);
    });
    // The rules have reached the node once a call they name is asked about (generous: CI runs many tests at once).
    await eventually(
      'node-a applies the rules',
      async () => {
        const probe = await client.callTool({ name: 'ev__echo', arguments: { message: 'ask-yes probe' } }).then(
          (result) => firstText(result),
          () => '',
        );
        return probe === 'Echo: ask-yes probe' && asked.length > 0;
      },
      90_000,
    );
    asked.length = 0;
    const free = await client.callTool({ name: 'ev__echo', arguments: { message: 'free' } });
    assert.equal(firstText(free), 'Echo: free');
    assert.deepEqual(asked, [], 'a call no rule holds is not asked about');

    const accepted = await client.callTool({ name: 'ev__echo', arguments: { message: 'ask-yes v1' } });
    assert.equal(firstText(accepted), 'Echo: ask-yes v1');
    assert.equal(asked.length, 1);
    assert.match(asked[0]!, /approval to run the tool ev__echo .*"message":"ask-yes v1"/);

    const declined = (await client.callTool({ name: 'ev__echo', arguments: { message: 'ask-no v1' } })) as {
      isError?: boolean;
      _meta?: Record<string, { reason?: string }>;
    };
    assert.equal(declined.isError, true);
    assert.equal(firstText(declined), 'Tool ev__echo was not run: the person at the client declined it');
    assert.equal(declined._meta?.['dev.portcullis/error']?.reason, 'APPROVAL_DECLINED');

    // Nothing waited for an operator.
    const pending = await env.gqlOk<{ approvals: unknown[] }>(`{ approvals(status: PENDING) { id } }`);
    assert.deepEqual(pending.approvals, []);

    const yes = await decisionOf('ask-yes v1');
    assert.equal(JSON.parse(yes.request.result!).via, 'CLIENT');
    assert.equal(yes.decision.status, 'APPROVED');
    assert.equal(yes.decision.subject, `client:${env.key.id}`);
    assert.equal(yes.call.status, 'OK');
  });

  test(`a 2026-07-28 agent (SDK v2) is answered input_required and retries with its answer: accept runs the call, \
decline refuses it`, async () => {
    const asked: string[] = [];
    const client = await modernAgent(url(), env.key.secret, { capabilities: { elicitation: { form: {} } } });
    closers.push(() => client.close());
    client.setRequestHandler('elicitation/create', async (request) => {
      const message = String(request.params.message);
      asked.push(message);
      return answer(message);
    });
    const accepted = await client.callTool({ name: 'ev__echo', arguments: { message: 'ask-yes v2' } });
    assert.equal(firstText(accepted), 'Echo: ask-yes v2');
    assert.equal(asked.length, 1);
    assert.match(asked[0]!, /ev__echo .*"message":"ask-yes v2"/);

    const declined = (await client.callTool({ name: 'ev__echo', arguments: { message: 'ask-no v2' } })) as {
      isError?: boolean;
      _meta?: Record<string, { reason?: string }>;
    };
    assert.equal(declined.isError, true);
    assert.equal(firstText(declined), 'Tool ev__echo was not run: the person at the client declined it');
    assert.equal(declined._meta?.['dev.portcullis/error']?.reason, 'APPROVAL_DECLINED');

    // The call's one record (made on the retry that completed it) is the parent of its approval records.
    const yes = await decisionOf('ask-yes v2');
    assert.equal(yes.decision.status, 'APPROVED');
    assert.equal(yes.decision.subject, `client:${env.key.id}`);
    assert.equal(JSON.parse(yes.request.result!).via, 'CLIENT');
  });

  test(`a rule without its own timeout waits the node's --approval-timeout-seconds`, async () => {
    const { client } = await legacyAgent(url(), env.key.secret);
    closers.push(() => client.close());
    const started = performance.now();
    const result = (await client.callTool({ name: 'ev__get-sum', arguments: { a: 1, b: 2 } })) as {
      isError?: boolean;
    };
    assert.equal(result.isError, true);
    assert.match(firstText(result), /needs a person's approval and none came within 2 s/);
    assert.ok(performance.now() - started < 30_000);
  });

  test("createUpstream takes the upstream's policies too, validated before anything is created", async () => {
    const CREATE =
      `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id name ` +
      `policies { tool policy approvalVia } } }`;
    const input = { name: 'later', transport: 'STREAMABLE_HTTP', url: 'http://127.0.0.1:9/mcp' };
    const bad = await env.gql(CREATE, {
      input: { ...input, policies: [{ tool: '*', policy: 'AUTO', approvalVia: 'CLIENT' }] },
    });
    assert.equal(bad.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(bad.errors?.[0]?.message ?? '', /input\.policies\.0\.approvalVia: only an APPROVE rule/);
    const names = await env.gqlOk<{ upstreams: { name: string }[] }>('{ upstreams { name } }');
    assert.ok(!names.upstreams.some((upstream) => upstream.name === 'later'), 'nothing was created');

    const created = await env.gqlOk<{
      createUpstream: { id: string; policies: { tool: string; policy: string; approvalVia: string | null }[] };
    }>(CREATE, { input: { ...input, policies: [{ tool: '*', policy: 'APPROVE', approvalVia: 'CLIENT' }] } });
    assert.deepEqual(created.createUpstream.policies, [{ tool: '*', policy: 'APPROVE', approvalVia: 'CLIENT' }]);
    await env.gqlOk(`mutation ($id: ID!) { deleteUpstream(id: $id) }`, { id: created.createUpstream.id });
  });

  test('an agent that did not declare elicitation is held for an operator instead', async () => {
    const { client } = await legacyAgent(url(), env.key.secret);
    closers.push(() => client.close());
    const call = client.callTool({ name: 'ev__echo', arguments: { message: 'ask-operator' } }, CallToolResultSchema, {
      timeout: 60_000,
    });
    let id: string | undefined;
    await eventually('the call waits for an operator', async () => {
      const data = await env.gqlOk<{ approvals: { id: string; argumentsJson: string }[] }>(
        `{ approvals(status: PENDING) { id argumentsJson } }`,
      );
      id = data.approvals.find((row) => row.argumentsJson.includes('ask-operator'))?.id;
      return id !== undefined;
    });
    await env.gqlOk(`mutation ($id: ID!) { approveCall(id: $id) { id } }`, { id });
    assert.equal(firstText(await call), 'Echo: ask-operator');
  });
});
