/**
 * Prometheus metrics of both planes, scraped as Prometheus would: the control plane's own
 * `--metrics-listen` (config-stream nodes, snapshot version and build time, audit ingest rows and
 * backlog, approvals pending, GraphQL requests by operation type) and the node's refusals by reason,
 * cost by upstream and tool, and sandbox runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auditRow, newAuditRecord, recordOfLine } from '../../data-plane/src/audit/audit-record.ts';
import { TestNode } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';
import { postMcp } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type CreatedKey, type TestEnv } from '../support/test-env.ts';

const TOKEN = 'cp-metrics-token-0123456789';
const ECHO_PRICE = 700;

/** The value of one sample (`name{labels}`), or undefined when the exposition has none. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe('metrics scrapes', () => {
  let env: TestEnv;
  let mcpUrl: string;
  let nodeMetrics: string;
  let direct: CreatedKey;
  let scripted: CreatedKey;

  before(async () => {
    env = await startTestEnv({
      schemaPrefix: 'metrics_scrape',
      processExtra: { args: ['--metrics-listen', '127.0.0.1:0'], env: { PORTCULLIS_METRICS_TOKEN: TOKEN } },
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'direct' }, { name: 'scripted', codeMode: 'ON' }],
    });
    [direct, scripted] = env.keys as [CreatedKey, CreatedKey];
    await env.gqlOk(`mutation ($input: SetToolPriceInput!) { setToolPrice(input: $input) { priceMicros } }`, {
      input: { upstreamId: env.upstreams[0]!.id, tool: 'echo', priceMicros: ECHO_PRICE },
    });
    const node = await env.startNode({ id: 'scraped-node', args: ['--metrics-listen', '127.0.0.1:0'] });
    mcpUrl = node.mcpUrl;
    nodeMetrics = node.metricsUrl!;
    await env.keysReachedNodes();
  });
  after(() => env?.dispose());

  async function scrape(url: string, token?: string): Promise<string> {
    const response = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    return response.text();
  }

  async function agent(key: CreatedKey): Promise<ClientV1> {
    const client = new ClientV1({ name: 'metrics-agent', version: '1.0.0' });
    await client.connect(
      new TransportV1(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${key.secret}` } } }),
    );
    return client;
  }

  it('the node counts refusals by reason, cost by upstream and tool, and sandbox runs', async () => {
    const client = await agent(direct);
    await client.callTool({ name: 'ev__echo', arguments: { message: 'priced' } });
    await client.callTool({ name: 'ev__echo', arguments: { message: 'priced again' } });
    await assert.rejects(client.callTool({ name: 'ev__no_such_tool', arguments: {} }));
    await client.close();
    const wrongKey = await postMcp(
      mcpUrl,
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      {
        authorization: 'Bearer pcs_not_a_key',
      },
    );
    assert.equal(wrongKey.status, 401);
    await wrongKey.body?.cancel();
    const script = await agent(scripted);
    await script.callTool({ name: 'run_script', arguments: { code: 'return 1 + 1' } });
    await script.callTool({ name: 'run_script', arguments: { code: 'const a = ;' } });
    await script.close();

    const text = await scrape(nodeMetrics);
    assert.equal(sample(text, 'portcullis_tool_cost_micros_total{upstream="ev",tool="echo"}'), 2 * ECHO_PRICE, text);
    assert.equal(sample(text, 'portcullis_refusals_total{reason="invalid_params"}'), 1, text);
    assert.equal(sample(text, 'portcullis_refusals_total{reason="authentication"}'), 1, text);
    assert.equal(sample(text, 'portcullis_sandbox_runs_total{outcome="ok"}'), 1, text);
    assert.equal(sample(text, 'portcullis_sandbox_runs_total{outcome="syntax"}'), 1, text);
  });

  it('the node counts refusals at the legacy SSE edge (/sse, /messages) like those on /mcp', async () => {
    const before = await scrape(nodeMetrics);
    const count = (text: string, reason: string) => sample(text, `portcullis_refusals_total{reason="${reason}"}`) ?? 0;
    const origin = new URL(mcpUrl).origin;
    const send = async (path: string, init: RequestInit) => {
      const response = await fetch(`${origin}${path}`, init);
      await response.body?.cancel();
      return response.status;
    };
    const key = { authorization: `Bearer ${direct.secret}`, 'content-type': 'application/json' };
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    assert.equal(
      await send('/sse', { headers: { authorization: 'Bearer pcs_not_a_key', accept: 'text/event-stream' } }),
      401,
    );
    assert.equal(await send('/messages', { method: 'POST', headers: key, body: ping }), 400, 'no sessionId');
    assert.equal(await send('/messages?sessionId=nope', { method: 'POST', headers: key, body: ping }), 404);
    assert.equal(await send('/sse', { method: 'PUT', headers: key }), 405);

    const text = await scrape(nodeMetrics);
    assert.equal(count(text, 'authentication') - count(before, 'authentication'), 1, text);
    assert.equal(count(text, 'bad_request') - count(before, 'bad_request'), 3, text);
  });

  it('the control plane serves its own metrics, with the token only', async () => {
    const url = env.controlPlane!.metricsUrl;
    assert.ok(url !== undefined, 'the control plane prints its metrics address');
    const anonymous = await fetch(url);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    await env.gqlOk(`{ upstreams { name } }`);
    await env.gqlOk(`mutation { createTeam(input: { name: "metrics-team" }) { id } }`);
    await env.gql(`{ noSuchField }`);
    const { nodes } = await env.gqlOk<{ nodes: { appliedVersion: string }[] }>(`{ nodes { appliedVersion } }`);
    const client = await agent(direct);
    await client.callTool({ name: 'ev__echo', arguments: { message: 'audited' } });
    await client.close();

    let text = '';
    await eventually('the node’s audit records are stored, none left waiting', async () => {
      text = await scrape(url, TOKEN);
      const stored = sample(text, 'portcullis_audit_ingest_records_total{outcome="stored"}') ?? 0;
      return stored > 0 && sample(text, 'portcullis_audit_ingest_backlog_records') === 0;
    });
    assert.equal(sample(text, 'portcullis_config_stream_nodes'), 1, text);
    const version = sample(text, 'portcullis_config_snapshot_version') ?? 0;
    assert.ok(version > 0 && version >= Number(nodes[0]!.appliedVersion), `snapshot version ${version}`);
    assert.ok((sample(text, 'portcullis_config_snapshot_build_seconds_count') ?? 0) >= 1);
    assert.equal(sample(text, 'portcullis_approvals_pending'), 0, text);
    assert.ok((sample(text, 'portcullis_graphql_requests_total{operation="query",outcome="ok"}') ?? 0) >= 2);
    assert.ok((sample(text, 'portcullis_graphql_requests_total{operation="mutation",outcome="ok"}') ?? 0) >= 2);
    assert.ok((sample(text, 'portcullis_graphql_requests_total{operation="unknown",outcome="error"}') ?? 0) >= 1);
    assert.doesNotMatch(text, /pcs_|adm_|node_[0-9a-f]{8}/, 'no secrets in labels');
  });

  it('a stored batch sent again on a node’s new stream costs no failed insert; on a settled stream, one', async () => {
    const url = env.controlPlane!.metricsUrl!;
    const retried = async () => sample(await scrape(url, TOKEN), 'portcullis_audit_ingest_retried_inserts_total');
    const row = () => {
      const record = newAuditRecord('resending-node', 'tool_call', 'ok');
      record.parentId = 'resent-run';
      return auditRow(record);
    };
    const [first, second, third, fourth] = [row(), row(), row(), row()];
    const before = await retried();
    assert.equal(typeof before, 'number', 'the control plane counts retried inserts');

    const stream = (): TestNode => {
      const node = new TestNode(env.grpcAddress, env.nodeToken);
      env.defer(async () => node.close());
      node.hello('resending-node');
      return node;
    };
    const one = stream();
    await one.snapshot();
    one.audit(1, [first!, second!]);
    await one.auditAck(1);
    one.close();

    // After a reconnect a node sends again what it had in flight: its new stream's first ids are looked up.
    const two = stream();
    await two.snapshot();
    two.audit(1, [first!, second!, third!]);
    await two.auditAck(1);
    assert.equal(await retried(), before, 'the repeated records were left out without a failed insert');
    // A group without repeats ends that on this stream: a repeat now is stored optimistically and fails once.
    two.audit(2, [fourth!]);
    await two.auditAck(2);
    two.audit(3, [fourth!]);
    await two.auditAck(3);
    assert.equal(await retried(), before! + 1, 'a repeat on a settled stream costs one failed insert');

    const ids = [first, second, third, fourth].map((line) => recordOfLine(line!).id);
    const { auditEvents } = await env.gqlOk<{ auditEvents: { edges: { node: { id: string } }[] } }>(
      `{ auditEvents(filter: { parentId: "resent-run" }, first: 10) { edges { node { id } } } }`,
    );
    assert.deepEqual(auditEvents.edges.map((e) => e.node.id).sort(), ids.sort(), 'each record stored once');
  });
});
