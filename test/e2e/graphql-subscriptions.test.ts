import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { connectLegacyAgent, firstText } from '../support/agents.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * GraphQL subscriptions over graphql-ws on the control plane's GraphQL URL, end to end: a real node
 * ships the audit records of an SDK agent's calls, the control plane stores them and streams them
 * to subscribers (filtered as `auditEvents` filters); a call held for approval reaches operators.
 */

const AUDIT = /* GraphQL */ `
  subscription ($filter: AuditFilter) { auditEventAdded(filter: $filter) { id kind status tool keyId node } }
`;
const APPROVALS = /* GraphQL */ `subscription { approvalRequested { id status tool nodeId reason } }`;

interface Received {
  data: Record<string, unknown>[];
  errors: { message: string; extensions?: { code?: string } }[];
  closed?: { code: number; reason: string };
  done: boolean;
}

describe('GraphQL subscriptions (graphql-ws, one node)', () => {
  let env: TestEnv;
  let agent: ClientV1;
  const clients: Client[] = [];
  const tokens: Record<string, string> = {};

  before(async () => {
    env = await startTestEnv({
      controlPlane: 'in-process',
      nodes: ['node-a'],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'agent', allowedTools: ['ev__*'] }],
    });
    for (const role of ['OPERATOR', 'AUDITOR']) {
      const created = await env.gqlOk<{ createAdminToken: { secret: string } }>(
        'mutation ($input: CreateAdminTokenInput!) { createAdminToken(input: $input) { secret } }',
        { input: { name: role.toLowerCase(), role } },
      );
      tokens[role] = created.createAdminToken.secret;
    }
    await env.gqlOk(
      `mutation ($scope: PolicyScopeInput!, $rules: [ToolPolicyInput!]!) {
        setToolPolicies(scope: $scope, rules: $rules) { id }
      }`,
      {
        scope: { upstreamId: env.upstreams[0]!.id },
        rules: [{ tool: 'echo', policy: 'APPROVE', argument: 'message', pattern: '^needs-approval' }],
      },
    );
    ({ client: agent } = await connectLegacyAgent(env.node('node-a').mcpUrl, env.key.secret));
    await eventually('the node serves ev__echo with its policy', async () =>
      agent.callTool({ name: 'ev__echo', arguments: { message: 'free' } }).then(
        (result) => firstText(result) === 'Echo: free',
        () => false,
      ),
    );
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await agent?.close().catch(() => undefined);
    await env?.dispose();
  });

  function connect(token: string | undefined): { client: Client; closed: Promise<{ code: number; reason: string }> } {
    let closedWith: (event: { code: number; reason: string }) => void = () => undefined;
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      closedWith = resolve;
    });
    const client = createClient({
      url: env.graphqlUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: token === undefined ? {} : { authorization: `Bearer ${token}` },
      on: { closed: (event) => closedWith(event as { code: number; reason: string }) },
    });
    clients.push(client);
    return { client, closed };
  }

  function subscribe(client: Client, query: string, variables: Record<string, unknown> = {}): Received {
    const received: Received = { data: [], errors: [], done: false };
    client.subscribe<Record<string, unknown>>(
      { query, variables },
      {
        next: (result) => {
          if (result.data) received.data.push(result.data);
          if (result.errors) received.errors.push(...(result.errors as Received['errors']));
        },
        error: (error) => {
          if (Array.isArray(error)) received.errors.push(...(error as Received['errors']));
          else received.closed = error as { code: number; reason: string };
          received.done = true;
        },
        complete: () => {
          received.done = true;
        },
      },
    );
    return received;
  }

  const events = (received: Received) =>
    received.data.map(
      (data) => data['auditEventAdded'] as { tool: string | null; status: string; kind: string; keyId: string },
    );

  test('a filtered subscriber hears the audit event of a call through the node, none outside its filter', async () => {
    const { client } = connect(env.adminToken);
    const filtered = subscribe(client, AUDIT, { filter: { tool: 'ev__echo', kind: 'TOOL_CALL' } });
    const all = subscribe(client, AUDIT);
    // Subscribed once a record stored later reaches the unfiltered subscriber.
    await eventually('the unfiltered subscriber hears a call', async () => {
      await agent.callTool({ name: 'ev__get-sum', arguments: { a: 1, b: 2 } });
      return events(all).some((event) => event.tool === 'ev__get-sum');
    });
    // Stored in order: had the filter let get-sum through, it would come before this echo.
    const answer = await agent.callTool({ name: 'ev__echo', arguments: { message: 'live' } });
    assert.equal(firstText(answer), 'Echo: live');
    // Records of the setup's calls may still be arriving (the node ships in batches): find this one.
    await eventually('the filtered subscriber hears the echo', () =>
      events(filtered).some((event) => event.status === 'OK'),
    );
    const echo = events(filtered).find((event) => event.status === 'OK');
    assert.deepEqual(
      { tool: echo!.tool, kind: echo!.kind, keyId: echo!.keyId },
      { tool: 'ev__echo', kind: 'TOOL_CALL', keyId: env.key.id },
    );
    assert.ok(events(all).some((event) => event.tool === 'ev__echo'));
    assert.deepEqual(
      events(filtered).filter((event) => event.tool !== 'ev__echo' || event.kind !== 'TOOL_CALL'),
      [],
      'nothing outside the filter',
    );
    assert.deepEqual(filtered.errors, []);
  });

  test('an auditor may subscribe to audit events but not to approvals; an operator not to audit events', async () => {
    const { client } = connect(tokens['AUDITOR']);
    const audit = subscribe(client, AUDIT, { filter: { tool: 'ev__get-sum' } });
    const approvals = subscribe(client, APPROVALS);
    await eventually('the auditor is refused approvals', () => approvals.done);
    assert.equal(approvals.errors[0]?.extensions?.code, 'FORBIDDEN');
    assert.match(approvals.errors[0]!.message, /Subscription\.approvalRequested needs the role admin or operator/);
    await eventually('the auditor hears a call', async () => {
      await agent.callTool({ name: 'ev__get-sum', arguments: { a: 2, b: 3 } });
      return events(audit).length > 0;
    });
    assert.deepEqual(audit.errors, []);

    const operator = subscribe(connect(tokens['OPERATOR']).client, AUDIT);
    await eventually('the operator is refused audit events', () => operator.done);
    assert.equal(operator.errors[0]?.extensions?.code, 'FORBIDDEN');
  });

  test('a connection without a valid admin token is refused', async () => {
    for (const token of [undefined, 'not-a-token']) {
      const { client, closed } = connect(token);
      const refused = subscribe(client, AUDIT);
      const event = await closed;
      assert.equal(event.code, 4401);
      assert.match(
        event.reason,
        token === undefined ? /^UNAUTHENTICATED: Missing admin token/ : /^UNAUTHENTICATED: Wrong or revoked/,
      );
      await eventually('the subscription ends', () => refused.done);
      assert.deepEqual(refused.data, []);
    }
  });

  test('revoking an admin token ends the subscriptions it opened, at once', async () => {
    const created = await env.gqlOk<{ createAdminToken: { token: { id: string }; secret: string } }>(
      'mutation ($input: CreateAdminTokenInput!) { createAdminToken(input: $input) { token { id } secret } }',
      { input: { name: 'leaver', role: 'OPERATOR' } },
    );
    const { client, closed } = connect(created.createAdminToken.secret);
    const approvals = subscribe(client, APPROVALS);
    // Subscribed: the server has acknowledged the connection once another operation on it is answered.
    await client
      .iterate({ query: '{ __typename }' })
      .next()
      .catch(() => undefined);
    await env.gqlOk('mutation ($id: ID!) { revokeAdminToken(id: $id) { id } }', {
      id: created.createAdminToken.token.id,
    });
    let event: { code: number; reason: string } | undefined;
    void closed.then((value) => (event = value));
    // At once on this replica: well before the periodic check of every connection (30 s).
    await eventually('the connection is closed', () => event !== undefined, 5_000);
    assert.equal(event?.code, 4401);
    assert.match(event?.reason ?? '', /^UNAUTHENTICATED: the admin token was revoked or has expired/);
    await eventually('the subscription ends', () => approvals.done);
  });

  test('an operator subscribed to approvalRequested receives a held call', async () => {
    const { client } = connect(tokens['OPERATOR']);
    const approvals = subscribe(client, APPROVALS);
    // The subscription is live once it hears one: hold calls until it does (each one once).
    const held: Promise<unknown>[] = [];
    await eventually('the operator hears a held call', async () => {
      if (approvals.data.length > 0) return true;
      held.push(
        agent.callTool({ name: 'ev__echo', arguments: { message: `needs-approval ${held.length}` } }, undefined, {
          timeout: 60_000,
        }),
      );
      return false;
    });
    const approval = approvals.data[0]!['approvalRequested'] as {
      status: string;
      tool: string;
      nodeId: string;
      reason: string;
    };
    assert.deepEqual(
      { status: approval.status, tool: approval.tool, nodeId: approval.nodeId },
      { status: 'PENDING', tool: 'ev__echo', nodeId: 'node-a' },
    );
    assert.match(approval.reason, /argument "message" matches/);
    assert.deepEqual(approvals.errors, []);
    const pending = await env.gqlOk<{ approvals: { id: string }[] }>('{ approvals(status: PENDING) { id } }');
    for (const { id } of pending.approvals)
      await env.gqlOk('mutation ($id: ID!) { denyCall(id: $id, reason: "test") { id } }', { id });
    await Promise.all(held.map((call) => call.catch(() => undefined)));
  });

  test('HTTP limits (aliases, tokens) apply to subscriptions; queries stay on HTTP; 20 to a connection', async () => {
    const { client } = connect(env.adminToken);
    const aliases = Array.from({ length: 31 }, (_, n) => `a${n}: id`).join(' ');
    const tooWide = subscribe(client, `subscription { auditEventAdded { ${aliases} } }`);
    const query = subscribe(client, '{ teams { id } }');
    const tooLong = subscribe(client, `subscription { auditEventAdded { ${'id '.repeat(2_001)}} }`);
    await eventually('all three are refused', () => tooWide.done && query.done && tooLong.done);
    assert.equal(tooWide.errors[0]?.extensions?.code, 'QUERY_LIMIT_EXCEEDED');
    assert.match(tooWide.errors[0]!.message, /--graphql-max-aliases/);
    assert.equal(tooLong.errors[0]?.extensions?.code, 'QUERY_LIMIT_EXCEEDED');
    assert.match(tooLong.errors[0]!.message, /Token limit of 2000 exceeded.*--graphql-max-tokens/);
    assert.equal(query.errors[0]?.extensions?.code, 'BAD_REQUEST');

    const held = Array.from({ length: 20 }, () => subscribe(client, APPROVALS));
    const extra = subscribe(client, APPROVALS);
    await eventually('the 21st is refused', () => extra.done);
    assert.equal(extra.errors[0]?.extensions?.code, 'TOO_MANY_SUBSCRIPTIONS');
    assert.ok(held.every((received) => !received.done));
  });
});
