import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { connectLegacyAgent } from '../support/agents.ts';
import { FIXTURE_MAIN, TSX_LOADER } from '../support/conformance.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * What the control plane records of an upstream's prompts, resources and resource templates (issue 5):
 * real processes (control plane on PostgreSQL, one data-plane node), server-everything and the
 * conformance fixture over stdio, the official SDK v1 client as the agent, GraphQL as an operator.
 */

const CATALOG = /* GraphQL */ `
  query ($id: ID!) {
    upstream(id: $id) {
      name
      prompts { name exposedName title description arguments { name description required } }
      resources { uri name title description mimeType size }
      resourceTemplates { uriTemplate name title description mimeType }
      catalogLists { kind count total truncated changedAt reportedAt nodeId added removed changed }
    }
  }
`;

interface CatalogList {
  kind: string;
  count: number;
  total: number;
  truncated: boolean;
  changedAt: string;
  reportedAt: string;
  nodeId: string | null;
  added: string[];
  removed: string[];
  changed: string[];
}
interface UpstreamCatalog {
  name: string;
  prompts: Array<{
    name: string;
    exposedName: string;
    title: string | null;
    description: string | null;
    arguments: Array<{ name: string; description: string | null; required: boolean }>;
  }>;
  resources: Array<{ uri: string; name: string | null; mimeType: string | null }>;
  resourceTemplates: Array<{ uriTemplate: string; name: string | null }>;
  catalogLists: CatalogList[];
}

describe('the control plane records prompts, resources and resource templates', () => {
  let env: TestEnv;
  let agent: ClientV1 | undefined;
  const ids: Record<string, string> = {};

  before(async () => {
    env = await startTestEnv({
      nodes: ['node-a'],
      upstreams: [
        everythingUpstream('ev'),
        {
          name: 'cf',
          transport: 'STDIO',
          command: process.execPath,
          args: ['--import', TSX_LOADER, FIXTURE_MAIN, '--stdio'],
        },
      ],
      keys: [{ name: 'agent', allowedTools: ['*'] }],
    });
    for (const upstream of env.upstreams) ids[upstream.name] = upstream.id;
    const client = (agent = (await connectLegacyAgent(env.node('node-a').mcpUrl, env.key.secret)).client);
    env.defer(() => client.close());
  });

  after(async () => {
    await env?.dispose();
  });

  const catalog = async (name: string) =>
    (await env.gqlOk<{ upstream: UpstreamCatalog }>(CATALOG, { id: ids[name] })).upstream;
  const list = (upstream: UpstreamCatalog, kind: string) => upstream.catalogLists.find((l) => l.kind === kind);

  async function until(
    name: string,
    what: string,
    check: (upstream: UpstreamCatalog) => boolean,
  ): Promise<UpstreamCatalog> {
    let last: UpstreamCatalog | undefined;
    await eventually(what, async () => check((last = await catalog(name))), 30_000);
    return last!;
  }

  test(`UP-REPORT: server-everything's prompts, resources and templates reach GraphQL as the agent sees them, with \
sizes and when each list changed`, async () => {
    const ev = await until('ev', "server-everything's lists recorded", (u) => u.catalogLists.length === 3);
    const seen = await agent!.listPrompts();
    const evPrompts = seen.prompts.filter((p) => p.name.startsWith('ev__'));
    assert.deepEqual(
      ev.prompts.map((p) => p.exposedName).sort(),
      evPrompts.map((p) => p.name).sort(),
      'the prompts agents are offered',
    );
    const withArguments = ev.prompts.find((p) => p.arguments.length > 0);
    assert.ok(withArguments, 'a prompt with arguments');
    const agentView = evPrompts.find((p) => p.name === withArguments.exposedName)!;
    assert.deepEqual(
      withArguments.arguments.map((a) => ({ name: a.name, required: a.required })),
      agentView.arguments!.map((a) => ({ name: a.name, required: a.required ?? false })),
    );

    const resources = (await agent!.listResources()).resources;
    for (const resource of ev.resources)
      assert.ok(
        resources.some((r) => r.uri === resource.uri),
        `${resource.uri} is listed to agents`,
      );
    assert.ok(ev.resources.length > 0 && ev.resources.every((r) => r.uri !== ''));
    assert.ok(
      ev.resources.some((r) => r.mimeType !== null),
      'MIME types are kept',
    );
    const templates = (await agent!.listResourceTemplates()).resourceTemplates;
    assert.ok(ev.resourceTemplates.length > 0);
    for (const template of ev.resourceTemplates)
      assert.ok(
        templates.some((t) => t.uriTemplate === template.uriTemplate),
        `${template.uriTemplate} is listed to agents`,
      );

    for (const kind of ['PROMPTS', 'RESOURCES', 'RESOURCE_TEMPLATES']) {
      const l = list(ev, kind)!;
      assert.ok(l, `${kind} recorded`);
      assert.equal(l.truncated, false);
      assert.equal(l.count, l.total);
      assert.equal(l.nodeId, 'node-a');
      assert.ok(Date.parse(l.changedAt) <= Date.parse(l.reportedAt));
      assert.equal(l.added.length, Math.min(l.count, 100), 'the first report adds every entry');
    }
    assert.equal(list(ev, 'PROMPTS')!.count, ev.prompts.length);
    assert.equal(list(ev, 'RESOURCES')!.count, ev.resources.length);
  });

  test(`UP-REPORT-LIST-CHANGED: a resource registered by server-everything (resources/list_changed) shows up in \
GraphQL with its change`, async () => {
    const before = await until('ev', 'resources recorded', (u) => list(u, 'RESOURCES') !== undefined);
    const uri = 'demo://resource/session/catalog-report.txt.gz';
    assert.ok(!before.resources.some((r) => r.uri === uri));
    const result = await agent!.callTool({
      name: 'ev__gzip-file-as-resource',
      arguments: {
        name: 'catalog-report.txt.gz',
        data: 'data:text/plain;base64,aGVsbG8gY2F0YWxvZw==',
        outputType: 'resourceLink',
      },
    });
    assert.notEqual(result.isError, true, JSON.stringify(result.content));
    const after = await until('ev', 'the new resource recorded', (u) => u.resources.some((r) => r.uri === uri));
    const resources = list(after, 'RESOURCES')!;
    assert.deepEqual(resources.added, [uri]);
    assert.deepEqual(resources.removed, []);
    assert.equal(resources.total, list(before, 'RESOURCES')!.total + 1);
    assert.ok(Date.parse(resources.changedAt) > Date.parse(list(before, 'RESOURCES')!.changedAt), 'changedAt moved');
    assert.equal(
      list(after, 'PROMPTS')!.changedAt,
      list(before, 'PROMPTS')!.changedAt,
      'an unchanged list keeps its changedAt',
    );
  });

  test(`UP-REPORT-LIST-CHANGED: a prompt added by an upstream (prompts/list_changed) shows up in GraphQL with its \
change`, async () => {
    const before = await until('cf', "the fixture's prompts recorded", (u) => list(u, 'PROMPTS') !== undefined);
    assert.ok(!before.prompts.some((p) => p.name === 'test_dynamic_prompt'));
    await agent!.callTool({ name: 'cf__test_trigger_prompt_change', arguments: {} });
    const after = await until('cf', 'the added prompt recorded', (u) =>
      u.prompts.some((p) => p.name === 'test_dynamic_prompt'),
    );
    const prompt = after.prompts.find((p) => p.name === 'test_dynamic_prompt')!;
    assert.equal(prompt.exposedName, 'cf__test_dynamic_prompt');
    assert.match(prompt.description ?? '', /test_trigger_prompt_change/);
    assert.deepEqual(list(after, 'PROMPTS')!.added, ['test_dynamic_prompt']);
    assert.ok(Date.parse(list(after, 'PROMPTS')!.changedAt) > Date.parse(list(before, 'PROMPTS')!.changedAt));
  });
});
