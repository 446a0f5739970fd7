/**
 * OpenTelemetry traces end to end: a node started with the standard OTEL_* variables exports its spans
 * (OTLP over HTTP, JSON bodies) to a real OTLP receiver started here. The gateway's span of each MCP
 * request continues the agent's `traceparent` (header or `_meta`), its upstream call's span is a child
 * of it, that span's context reaches the upstream (a header over Streamable HTTP, `_meta` over stdio),
 * and the audit record carries the trace id.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { firstText } from '../support/agents.ts';
import { eventually } from '../support/eventually.ts';
import { REPO_ROOT } from '../support/processes.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';

const RAW_STDIO = resolve(REPO_ROOT, 'test/fixtures/raw-stdio-upstream.ts');

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP SpanKind: 2 server, 3 client. */
  kind: number;
  service: string | undefined;
  attributes: Record<string, unknown>;
}

/** An OTLP/HTTP receiver (JSON bodies): keeps every span posted to /v1/traces. */
class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly contentTypes = new Set<string>();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        receiver.contentTypes.add(String(req.headers['content-type']));
        receiver.take(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private take(body: {
    resourceSpans?: {
      resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
      scopeSpans?: { spans?: (Omit<ReceivedSpan, 'service' | 'attributes'> & { attributes?: unknown[] })[] }[];
    }[];
  }): void {
    for (const resource of body.resourceSpans ?? []) {
      const service = resource.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue;
      for (const scope of resource.scopeSpans ?? [])
        for (const span of scope.spans ?? []) {
          const attributes: Record<string, unknown> = {};
          for (const a of (span.attributes ?? []) as { key: string; value: Record<string, unknown> }[])
            attributes[a.key] = Object.values(a.value)[0];
          this.spans.push({ ...span, service, attributes });
        }
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';
const META_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const META_CALLER_SPAN = '00f067aa0ba902b7';

describe('OpenTelemetry traces', () => {
  let env: TestEnv;
  let receiver: OtlpReceiver;
  let http2025: SdkHttpFixture;
  let http2026: SdkHttpFixture;
  let mcpUrl: string;

  before(async () => {
    receiver = await OtlpReceiver.start();
    http2025 = await SdkHttpFixture.start('sessionful-2025');
    http2026 = await SdkHttpFixture.start('modern-2026');
    env = await startTestEnv({
      schemaPrefix: 'traces',
      // The control plane exports its spans (GraphQL requests, audit ingest) to the same receiver.
      processExtra: {
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_BSP_SCHEDULE_DELAY: '50',
        },
      },
      upstreams: [
        {
          name: 'raw',
          transport: 'STDIO',
          command: process.execPath,
          args: ['--import', import.meta.resolve('tsx'), RAW_STDIO, 'serve'],
        },
        { name: 'web', transport: 'STREAMABLE_HTTP', url: http2025.url },
        { name: 'modern', transport: 'STREAMABLE_HTTP', url: http2026.url },
      ],
      keys: [{ name: 'traced' }],
    });
    const node = await env.startNode({
      id: 'traced-node',
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
    });
    mcpUrl = node.mcpUrl;
    await env.keysReachedNodes();
  });
  after(async () => {
    await env?.dispose();
    await Promise.all([receiver?.close(), http2025?.stop(), http2026?.stop()]);
  });

  async function agent(headers: Record<string, string>): Promise<ClientV1> {
    const client = new ClientV1({ name: 'traced-agent', version: '1.0.0' });
    await client.connect(
      new TransportV1(new URL(mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${env.key.secret}`, ...headers } },
      }),
    );
    return client;
  }

  async function spansOf(traceId: string, count: number, what: string): Promise<ReceivedSpan[]> {
    await eventually(what, async () => receiver.spans.filter((s) => s.traceId === traceId).length >= count, 20_000);
    return receiver.spans.filter((s) => s.traceId === traceId);
  }

  /** The trace ids of `tool`'s call records, once at least `count` are stored (the node ships them in batches). */
  async function auditTraceIds(tool: string, count = 1): Promise<(string | null)[]> {
    let ids: (string | null)[] = [];
    await eventually(`${count} audit record(s) of ${tool}`, async () => {
      const rows = await env.schema.query<{ trace_id: string | null }>(
        `SELECT trace_id FROM audit_events WHERE tool = $1 AND kind = 'tool_call' ORDER BY seq`,
        [tool],
      );
      ids = rows.map((r) => r.trace_id);
      return ids.length >= count;
    });
    return ids;
  }

  it('continues the traceparent header: gateway and upstream spans join the caller’s trace', async () => {
    const client = await agent({ traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` });
    let stdioMeta: { traceparent?: string };
    try {
      stdioMeta = JSON.parse(firstText(await client.callTool({ name: 'raw__meta', arguments: {} })));
      await client.callTool({ name: 'web__echo', arguments: { message: 'traced 2025' } });
      await client.callTool({ name: 'modern__echo', arguments: { message: 'traced 2026' } });
    } finally {
      await client.close();
    }
    const spans = await spansOf(TRACE_ID, 6, 'three request spans and three upstream-call spans');
    const calls = spans.filter((s) => s.kind === 2 && s.name === 'tools/call');
    assert.equal(calls.length, 3, JSON.stringify(spans.map((s) => s.name)));
    for (const call of calls) {
      assert.equal(call.parentSpanId, CALLER_SPAN, 'the request span is a child of the caller’s span');
      assert.equal(call.service, 'portcullis-data-plane');
    }
    const upstreamSpan = (upstream: string) => {
      const span = spans.find((s) => s.kind === 3 && s.attributes['portcullis.upstream'] === upstream);
      assert.ok(span, `an upstream-call span for ${upstream}: ${JSON.stringify(spans)}`);
      assert.equal(span.name, `tools/call ${upstream}`);
      const parent = calls.find((c) => c.spanId === span.parentSpanId);
      assert.ok(parent, 'the upstream call’s span is a child of a request span');
      assert.equal(parent.attributes['portcullis.upstream'], upstream);
      return span;
    };
    // Each upstream was sent the context of the gateway's span for that call.
    assert.equal(stdioMeta.traceparent, `00-${TRACE_ID}-${upstreamSpan('raw').spanId}-01`, 'stdio: in _meta');
    const sent = (fixture: SdkHttpFixture) => fixture.state.headers.map((h) => h['traceparent']).filter(Boolean);
    assert.deepEqual(sent(http2025), [`00-${TRACE_ID}-${upstreamSpan('web').spanId}-01`], 'HTTP: a header');
    assert.deepEqual(sent(http2026), [`00-${TRACE_ID}-${upstreamSpan('modern').spanId}-01`], 'HTTP: a header');
    assert.ok(receiver.contentTypes.has('application/json'));
    assert.deepEqual(await auditTraceIds('raw__meta'), [TRACE_ID]);
  });

  it('continues a traceparent in _meta, and starts a trace of its own when the caller sends none', async () => {
    const client = await agent({});
    try {
      await client.callTool({
        name: 'web__echo',
        arguments: { message: 'meta-traced' },
        _meta: { traceparent: `00-${META_TRACE_ID}-${META_CALLER_SPAN}-01` },
      });
      const untraced = JSON.parse(firstText(await client.callTool({ name: 'raw__meta', arguments: {} }))) as {
        traceparent?: string;
      };
      const ownTrace = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(untraced.traceparent ?? '')?.[1];
      assert.ok(ownTrace !== undefined && ownTrace !== TRACE_ID, `a new trace: ${untraced.traceparent}`);
      const own = await spansOf(ownTrace, 2, 'the new trace’s request and upstream spans');
      const root = own.find((s) => s.kind === 2);
      assert.ok(root !== undefined && (root.parentSpanId ?? '') === '', 'the request span is the trace’s root');
      assert.deepEqual(
        (await auditTraceIds('raw__meta', 2)).filter((id) => id !== TRACE_ID),
        [ownTrace],
        'the audit record carries the new trace id',
      );
    } finally {
      await client.close();
    }
    const spans = await spansOf(META_TRACE_ID, 2, 'the _meta-traced request and upstream spans');
    const request = spans.find((s) => s.kind === 2);
    assert.equal(request?.parentSpanId, META_CALLER_SPAN);
    assert.equal(spans.find((s) => s.kind === 3)?.parentSpanId, request?.spanId);
    const header = http2025.state.headers.map((h) => h['traceparent']).find((t) => t?.includes(META_TRACE_ID));
    assert.equal(header, `00-${META_TRACE_ID}-${spans.find((s) => s.kind === 3)?.spanId}-01`);
    assert.ok((await auditTraceIds('web__echo')).includes(META_TRACE_ID));
  });

  it('the control plane traces GraphQL requests (continuing traceparent) and each stored audit batch', async () => {
    const GRAPHQL_TRACE = '5c1ea5a0c2b5e8f1a9d3c7b6e4f20a11';
    const response = await fetch(env.graphqlUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${env.adminToken}`,
        traceparent: `00-${GRAPHQL_TRACE}-${CALLER_SPAN}-01`,
      },
      body: JSON.stringify({ query: 'query TracedUpstreams { upstreams { name } }' }),
    });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    const [span] = await spansOf(GRAPHQL_TRACE, 1, 'the GraphQL request span');
    assert.equal(span!.name, 'graphql query');
    assert.equal(span!.kind, 2);
    assert.equal(span!.parentSpanId, CALLER_SPAN);
    assert.equal(span!.service, 'portcullis-control-plane');
    assert.equal(span!.attributes['graphql.operation.name'], 'TracedUpstreams');

    // The calls of the tests above were shipped and stored: each stored batch has its span.
    await eventually(
      'an audit ingest span',
      () =>
        receiver.spans.some((s) => s.name === 'audit ingest' && Number(s.attributes['portcullis.audit.stored']) > 0),
      20_000,
    );
    const ingest = receiver.spans.find((s) => s.name === 'audit ingest')!;
    assert.equal(ingest.service, 'portcullis-control-plane');
    assert.equal(ingest.attributes['portcullis.node_id'], 'traced-node');
  });
});
