/**
 * The audit trail end to end: SDK agents of both eras (and the legacy HTTP+SSE transport) talk to a
 * real node in front of server-everything; every discovery, tool call and refusal lands as one row
 * in PostgreSQL with its fields, content switched off per key, long values truncated with a marker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { connectLegacyAgent } from '../support/agents.ts';
import { UNAUTHENTICATED_RECORDS_PER_SECOND } from '../../data-plane/src/http/edge-audit.ts';
import { postMcp } from '../support/gateway.ts';

import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

interface Row {
  id: string;
  kind: string;
  status: string;
  method: string | null;
  key_id: string | null;
  upstream: string | null;
  tool: string | null;
  arguments: string | null;
  result: string | null;
  error_code: number | null;
  error_message: string | null;
  latency_us: number;
  gateway_latency_us: number;
  upstream_latency_us: number | null;
  parent_id: string | null;
  trace_id: string | null;
  session_id: string | null;
  client_name: string | null;
  client_version: string | null;
  node_id: string;
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

describe('audit records', () => {
  let env: TestEnv;
  let mcpUrl: string;

  before(async () => {
    env = await startTestEnv({
      schemaPrefix: 'audit_records',
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'loud' }, { name: 'quiet' }],
    });
    const node = await env.startNode({
      id: 'audit-node',
      args: ['--audit-content-off-keys', env.keys[1]!.id, '--audit-max-value-chars', '200'],
    });
    mcpUrl = node.mcpUrl;
    await env.keysReachedNodes();
  });
  after(() => env?.dispose());

  async function rows(where: string, params: unknown[] = []): Promise<Row[]> {
    return env.schema.query<Row>(`SELECT * FROM audit_events WHERE ${where} ORDER BY seq`, params);
  }

  it('records a 2026-07-28 agent’s discovery and call with parent id, trace id, client and latency split', async () => {
    const client = new ClientV2(
      { name: 'audit-modern', version: '2.0.0' },
      {
        versionNegotiation: { mode: { pin: '2026-07-28' } },
      },
    );
    await client.connect(
      new TransportV2(new URL(mcpUrl), {
        requestInit: {
          headers: {
            authorization: `Bearer ${env.key.secret}`,
            'x-portcullis-parent-request': 'run-modern-1',
            traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01`,
          },
        },
      }),
    );
    try {
      await client.listTools();
      const result = await client.callTool({ name: 'ev__echo', arguments: { message: 'hello audit' } });
      assert.equal(result.isError, undefined);
    } finally {
      await client.close();
    }
    const [call] = await eventually('the modern tool call is stored', async () => {
      const found = await rows(`parent_id = 'run-modern-1' AND kind = 'tool_call'`);
      return found.length === 1 ? found : undefined;
    });
    assert.equal(call!.status, 'ok');
    assert.equal(call!.method, 'tools/call');
    assert.equal(call!.key_id, env.key.id);
    assert.equal(call!.upstream, 'ev');
    assert.equal(call!.tool, 'ev__echo');
    assert.deepEqual(JSON.parse(call!.arguments!), { message: 'hello audit' });
    assert.match(call!.result!, /Echo: hello audit/);
    assert.equal(call!.trace_id, TRACE_ID);
    assert.equal(call!.client_name, 'audit-modern');
    assert.equal(call!.client_version, '2.0.0');
    assert.equal(call!.node_id, 'audit-node');
    assert.ok(call!.upstream_latency_us !== null && call!.upstream_latency_us > 0);
    assert.ok(call!.latency_us >= call!.upstream_latency_us! && call!.gateway_latency_us >= 0);
    assert.equal(call!.latency_us, call!.gateway_latency_us + call!.upstream_latency_us!);
    assert.match(call!.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    const discovery = await rows(`parent_id = 'run-modern-1' AND kind = 'discovery'`);
    assert.equal(discovery.length, 1);
    assert.equal(discovery[0]!.method, 'tools/list');
    assert.equal(discovery[0]!.status, 'ok');
  });

  it('records a 2025-era agent’s calls with its session, and truncates long values with a marker', async () => {
    const { client, transport } = await connectLegacyAgent(mcpUrl, env.key.secret);
    try {
      await client.callTool({ name: 'ev__get-sum', arguments: { a: 2, b: 3 } });
      await client.callTool({ name: 'ev__echo', arguments: { message: 'x'.repeat(500) } });
    } finally {
      await client.close();
    }
    const session = transport.sessionId!;
    const calls = await eventually('both legacy calls are stored', async () => {
      const found = await rows(`kind = 'tool_call' AND client_name = 'portcullis-test-agent' AND key_id = $1`, [
        env.key.id,
      ]);
      return found.length === 2 ? found : undefined;
    });
    const sum = calls.find((c) => c.tool === 'ev__get-sum')!;
    assert.deepEqual(JSON.parse(sum.arguments!), { a: 2, b: 3 });
    assert.ok(sum.session_id !== null && session.endsWith(sum.session_id.slice(0, 20)) === false);
    assert.ok(session.includes(sum.session_id!), 'the record names the session by its signature part');
    const echo = calls.find((c) => c.tool === 'ev__echo')!;
    const marker = JSON.parse(echo.arguments!) as { $truncated: boolean; chars: number; prefix: string };
    assert.equal(marker.$truncated, true);
    assert.equal(marker.chars, JSON.stringify({ message: 'x'.repeat(500) }).length);
    assert.equal(marker.prefix.length, 200);
  });

  it('records a legacy HTTP+SSE agent’s call', async () => {
    const client = new ClientV1({ name: 'audit-sse', version: '0.9' });
    await client.connect(
      new SSEClientTransport(new URL(mcpUrl.replace(/\/mcp$/, '/sse')), {
        requestInit: { headers: { authorization: `Bearer ${env.key.secret}` } },
        eventSourceInit: {
          fetch: (url, init) => {
            const headers = new Headers(init?.headers);
            headers.set('authorization', `Bearer ${env.key.secret}`);
            return fetch(url, { ...init, headers });
          },
        },
      }),
    );
    try {
      await client.callTool({ name: 'ev__echo', arguments: { message: 'over sse' } });
    } finally {
      await client.close();
    }
    const found = await eventually('the SSE call is stored', async () => {
      const r = await rows(`client_name = 'audit-sse' AND kind = 'tool_call'`);
      return r.length === 1 ? r : undefined;
    });
    assert.deepEqual(JSON.parse(found[0]!.arguments!), { message: 'over sse' });
  });

  it('records no content for a key with content logging off, but keeps the metadata', async () => {
    const quiet = env.keys[1]!;
    const { client } = await connectLegacyAgent(mcpUrl, quiet.secret);
    try {
      await client.callTool({ name: 'ev__echo', arguments: { message: 'secret stuff' } });
    } finally {
      await client.close();
    }
    const found = await eventually('the quiet key’s call is stored', async () => {
      const r = await rows(`key_id = $1 AND kind = 'tool_call'`, [quiet.id]);
      return r.length === 1 ? r : undefined;
    });
    assert.equal(found[0]!.arguments, null);
    assert.equal(found[0]!.result, null);
    assert.equal(found[0]!.tool, 'ev__echo');
    assert.equal(found[0]!.status, 'ok');
  });

  it('records refusals: a wrong key, an unknown tool, unparseable input', async () => {
    const wrong = await postMcp(
      mcpUrl,
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      {
        authorization: 'Bearer pcs_not_a_key',
        'x-portcullis-parent-request': 'refusals-1',
      },
    );
    assert.equal(wrong.status, 401);
    const { client } = await connectLegacyAgent(mcpUrl, env.key.secret);
    try {
      await assert.rejects(client.callTool({ name: 'ev__no_such_tool', arguments: {} }));
    } finally {
      await client.close();
    }
    const garbled = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${env.key.secret}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-portcullis-parent-request': 'refusals-1',
      },
      body: '{not json',
    });
    assert.equal(garbled.status, 400);
    const refused = await eventually('three refusals are stored', async () => {
      const r = await rows(`kind = 'refusal' AND (parent_id = 'refusals-1' OR tool = 'ev__no_such_tool')`);
      return r.length === 3 ? r : undefined;
    });
    const byCode = new Map(refused.map((r) => [r.error_code, r]));
    assert.equal(byCode.get(-32040)?.key_id, null, 'the 401 names no key');
    assert.equal(byCode.get(-32602)?.key_id, env.key.id, 'the unknown tool is refused as not found');
    assert.equal(byCode.get(-32700)?.key_id, env.key.id, 'the parse error is refused after authentication');
    for (const r of refused) assert.equal(r.status, 'refused');
  });

  it(`a flood of requests without a key is recorded ${UNAUTHENTICATED_RECORDS_PER_SECOND} a second, the rest counted \
into a summary`, async () => {
    const FLOOD = 400;
    const since = new Date();
    const answers = await Promise.all(
      Array.from({ length: FLOOD }, () =>
        postMcp(
          mcpUrl,
          { jsonrpc: '2.0', id: 1, method: 'tools/list' },
          { authorization: 'Bearer pcs_flood', 'x-portcullis-parent-request': 'flood-1' },
        ).then(async (response) => (await response.body?.cancel(), response.status)),
      ),
    );
    assert.deepEqual(new Set(answers), new Set([401]));
    const counted = (summaries: Row[]) =>
      summaries.reduce((sum, row) => sum + Number(/^(\d+) more requests/.exec(row.error_message ?? '')?.[1]), 0);
    let own: Row[] = [];
    await eventually('every refusal of the flood is recorded or counted', async () => {
      own = await rows(`parent_id = 'flood-1'`);
      const summaries = await rows(`method = 'unauthenticated' AND time >= $1`, [since]);
      return own.length + counted(summaries) === FLOOD;
    });
    assert.ok(own.length < FLOOD, `${own.length} records of their own`);
    // Up to 50 a second, shared with any other request refused before authentication in the same second.
    assert.ok(own.length > 0, `${own.length} records of their own`);
  });

  it('serves auditEvents (filtered, paged by cursor) and usage in GraphQL', async () => {
    type Page = {
      auditEvents: {
        edges: { cursor: string; node: Record<string, unknown> }[];
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
      };
    };
    const query = `query($filter: AuditFilter, $first: Int, $after: String) {
      auditEvents(filter: $filter, first: $first, after: $after) {
        edges { cursor node { id time kind status keyId upstream tool arguments result latencyMs gatewayLatencyMs
          upstreamLatencyMs costMicros parentId traceId clientName node } }
        pageInfo { hasNextPage endCursor }
      } }`;
    const filter = { kind: 'TOOL_CALL', keyId: env.key.id, tool: 'ev__echo' };
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: Page = await env.gqlOk<Page>(query, { filter, first: 1, after });
      seen.push(...page.auditEvents.edges.map((e) => String(e.node['id'])));
      for (const edge of page.auditEvents.edges) {
        assert.equal(edge.node['kind'], 'TOOL_CALL');
        assert.equal(edge.node['tool'], 'ev__echo');
      }
      if (!page.auditEvents.pageInfo.hasNextPage) break;
      after = page.auditEvents.pageInfo.endCursor;
    }
    const stored = await rows(`kind = 'tool_call' AND key_id = $1 AND tool = 'ev__echo'`, [env.key.id]);
    assert.equal(seen.length, stored.length);
    assert.deepEqual([...seen].sort(), stored.map((r) => r.id).sort(), 'every event once, over all pages');
    const byParent = await env.gqlOk<Page>(query, { filter: { parentId: 'run-modern-1', kind: 'TOOL_CALL' } });
    const [event] = byParent.auditEvents.edges.map((e) => e.node);
    assert.equal(event?.['traceId'], TRACE_ID);
    assert.equal(event?.['upstream'], 'ev');
    assert.equal(typeof event?.['latencyMs'], 'number');
    const usage = await env.gqlOk<{ usage: { keyId: string; tool: string; calls: number; errors: number }[] }>(
      `query { usage(groupBy: [KEY, TOOL], filter: { keyId: "${env.key.id}" }) { keyId tool calls errors ` +
        `costMicros } }`,
    );
    const echo = usage.usage.find((u) => u.tool === 'ev__echo');
    assert.equal(echo?.calls, stored.length);
    assert.equal(echo?.keyId, env.key.id);
  });

  it('refuses to update or delete audit rows in the database itself', async () => {
    await assert.rejects(env.schema.query(`UPDATE audit_events SET status = 'ok'`), /append-only/);
    await assert.rejects(env.schema.query(`DELETE FROM audit_events`), /append-only/);
    await assert.rejects(env.schema.query(`TRUNCATE audit_events`), /append-only/);
  });
});
