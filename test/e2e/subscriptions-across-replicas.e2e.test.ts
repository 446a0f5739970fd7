/**
 * GraphQL subscriptions across control-plane replicas (issue 14): two control-plane processes on one
 * PostgreSQL schema, a node on each. A subscriber to `auditEventAdded` on either replica hears every
 * record, whichever replica stored it (the storing replica announces the committed seq range with
 * NOTIFY, the others read those rows back), and each exactly once; a subscriber to `approvalRequested`
 * hears the calls held on either replica's nodes (the storing replica announces the approval's id).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { connectModernAgent } from '../support/agents.ts';
import type { TestSchema } from '../support/database.ts';
import { eventually } from '../support/eventually.ts';
import type { ControlPlaneProcess, DataPlaneProcess } from '../support/gateway.ts';
import { graphqlOk } from '../support/graphql.ts';
import { startTwoReplicas, type TwoReplicas } from '../support/replicas.ts';

const AUDIT = /* GraphQL */ `
  subscription ($filter: AuditFilter) {
    auditEventAdded(filter: $filter) { id kind tool node parentId latencyMs arguments }
  }
`;

const APPROVALS = /* GraphQL */ `subscription { approvalRequested { id status tool nodeId } }`;

interface HeldCall {
  id: string;
  status: string;
  tool: string;
  nodeId: string;
}

interface Heard {
  id: string;
  kind: string;
  tool: string | null;
  node: string;
  parentId: string | null;
  latencyMs: number;
  arguments: string | null;
}

describe('subscriptions across control-plane replicas (LISTEN/NOTIFY)', () => {
  let replicas: TwoReplicas;
  let schema: TestSchema;
  let replica1: ControlPlaneProcess;
  let replica2: ControlPlaneProcess;
  let nodeA: DataPlaneProcess;
  let nodeB: DataPlaneProcess;
  let secret: string;
  const clients: Client[] = [];

  before(async () => {
    replicas = await startTwoReplicas();
    ({ schema, replica1, replica2, nodeA, nodeB } = replicas);
    secret = replicas.key.secret;
  });

  after(async () => {
    await Promise.allSettled(clients.map((client) => client.dispose()));
    await replicas?.dispose();
  });

  /** Subscribes on `replica` to `query`; each event's `field` is pushed to the array. */
  function listen<T>(replica: ControlPlaneProcess, query: string, field: string, variables?: object): T[] {
    const client = createClient({
      url: replica.graphqlUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${replica.adminToken}` },
    });
    clients.push(client);
    const heard: T[] = [];
    client.subscribe<Record<string, T>>(
      { query, variables: { ...variables } },
      {
        next: (result) => {
          const event = result.data?.[field];
          if (event !== undefined) heard.push(event);
        },
        error: () => undefined,
        complete: () => undefined,
      },
    );
    return heard;
  }

  /** Subscribes on `replica` to the records tagged with `parentId`. */
  const subscribe = (replica: ControlPlaneProcess, parentId: string): Heard[] =>
    listen<Heard>(replica, AUDIT, 'auditEventAdded', { filter: { parentId } });

  /** One echo call through `node`, tagged with `parentId`. */
  async function call(node: DataPlaneProcess, parentId: string, message: string): Promise<void> {
    const client = await connectModernAgent(node.mcpUrl, secret);
    try {
      await client.callTool({
        name: 'ev__echo',
        arguments: { message },
        _meta: { 'io.portcullis/parent-request': parentId },
      });
    } finally {
      await client.close();
    }
  }

  test('a subscriber on either replica hears the records both replicas store, each once', async () => {
    const parentId = `replicas-${randomUUID()}`;
    const on1 = subscribe(replica1, parentId);
    const on2 = subscribe(replica2, parentId);
    // Subscribed once a record stored by each replica reaches the subscriber on the other one.
    const warmUp = `${parentId}-warm`;
    const warm1 = subscribe(replica1, warmUp);
    const warm2 = subscribe(replica2, warmUp);
    await eventually('both subscribers are listening', async () => {
      await call(nodeA, warmUp, 'warm');
      await call(nodeB, warmUp, 'warm');
      return warm1.some((e) => e.node === 'node-b') && warm2.some((e) => e.node === 'node-a');
    });

    await call(nodeB, parentId, 'from node b');
    await call(nodeA, parentId, 'from node a');
    await call(nodeB, parentId, 'from node b again');
    const calls = (heard: Heard[]) => heard.filter((e) => e.kind === 'TOOL_CALL');
    await eventually('both subscribers hear the three calls', async () =>
      [on1, on2].every((heard) => calls(heard).length >= 3),
    );
    for (const [name, heard] of [
      ['replica 1', on1],
      ['replica 2', on2],
    ] as const) {
      const ids = heard.map((e) => e.id);
      assert.equal(new Set(ids).size, ids.length, `${name} hears each record once`);
      assert.deepEqual(
        calls(heard)
          .map((e) => `${e.node} ${JSON.parse(e.arguments!).message}`)
          .sort(),
        ['node-a from node a', 'node-b from node b', 'node-b from node b again'],
        name,
      );
      for (const event of heard) {
        assert.equal(event.parentId, parentId);
        assert.equal(typeof event.latencyMs, 'number');
      }
    }
    // What the subscribers heard is what is stored, nothing more.
    const stored = await schema.query<{ id: string }>(`SELECT id::text AS id FROM audit_events WHERE parent_id = $1`, [
      parentId,
    ]);
    assert.deepEqual(on1.map((e) => e.id).sort(), stored.map((row) => row.id).sort());
  });

  test("a subscriber on either replica hears the calls held on both replicas' nodes", async () => {
    const { upstreams } = await graphqlOk<{ upstreams: { id: string }[] }>(
      replica1.graphqlUrl,
      replica1.adminToken,
      '{ upstreams { id } }',
    );
    await graphqlOk(
      replica1.graphqlUrl,
      replica1.adminToken,
      `mutation ($scope: PolicyScopeInput!, $rules: [ToolPolicyInput!]!) {
        setToolPolicies(scope: $scope, rules: $rules) { id }
      }`,
      { scope: { upstreamId: upstreams[0]!.id }, rules: [{ tool: 'echo', policy: 'APPROVE' }] },
    );
    const on1 = listen<HeldCall>(replica1, APPROVALS, 'approvalRequested');
    const on2 = listen<HeldCall>(replica2, APPROVALS, 'approvalRequested');
    const nodes = [nodeA, nodeB];
    const agents = await Promise.all(nodes.map((node) => connectModernAgent(node.mcpUrl, secret)));
    const held: Promise<unknown>[] = [];
    const hold = (n: number) =>
      held.push(agents[n]!.callTool({ name: 'ev__echo', arguments: { message: 'held' } }, { timeout: 60_000 }));
    try {
      // The subscribers are live, and the policy is on a node, once a call held there reaches both of them. Until
      // then a node holds a new call every 300 ms (one held earlier is only in the stored approvals).
      const heardOn = (node: string) => [on1, on2].every((heard) => heard.some((h) => h.nodeId === node));
      await eventually(
        'both subscribers hear calls held on either node',
        () => {
          nodes.forEach((node, n) => heardOn(node.nodeId) || hold(n));
          return nodes.every((node) => heardOn(node.nodeId));
        },
        15_000,
        300,
      );
      for (const heard of [on1, on2]) {
        const ids = heard.map((h) => h.id);
        assert.equal(new Set(ids).size, ids.length, 'each request is heard once');
        assert.ok(heard.every((h) => h.status === 'PENDING' && h.tool === 'ev__echo'));
      }
      const stored = await schema.query<{ id: string }>(`SELECT id::text AS id FROM approvals`);
      const storedIds = new Set(stored.map((row) => row.id));
      assert.ok(
        [...on1, ...on2].every((h) => storedIds.has(h.id)),
        'what is heard is what is stored',
      );
    } finally {
      // Deny every held call, including those still on their way to the control plane.
      const settled = Promise.allSettled(held);
      let done = false;
      void settled.then(() => (done = true));
      await eventually(
        'every held call is denied',
        async () => {
          const pending = await schema.query<{ id: string }>(
            `SELECT id::text AS id FROM approvals WHERE status = 'PENDING'`,
          );
          for (const { id } of pending)
            await graphqlOk(
              replica1.graphqlUrl,
              replica1.adminToken,
              'mutation ($id: ID!) { denyCall(id: $id) { id } }',
              {
                id,
              },
            );
          return done;
        },
        15_000,
        100,
      );
      await Promise.allSettled(agents.map((agent) => agent.close()));
    }
  });
});
