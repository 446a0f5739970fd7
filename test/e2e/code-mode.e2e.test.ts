import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { everythingUpstream, startTestEnv, type CreatedKey, type TestEnv } from '../support/test-env.ts';
import { legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Code mode end to end: a node with two server-everything upstreams, `ev` in code mode and `plain`
 * not, keys switched on, off and inheriting, agents of both protocol eras (the official SDK clients).
 */

const META = ['list_tool_files', 'read_tool_file', 'run_script', 'search_tools'];

interface Agent {
  listTools(): Promise<string[]>;
  call(name: string, args: Record<string, unknown>): Promise<{ texts: string[]; isError: boolean }>;
  close(): Promise<void>;
}

type ToolResult = { content?: Array<{ type: string; text?: string }>; isError?: boolean };

function shape(result: unknown): { texts: string[]; isError: boolean } {
  const r = result as ToolResult;
  return { texts: (r.content ?? []).map((c) => c.text ?? ''), isError: r.isError === true };
}

const ERAS: ReadonlyArray<readonly [string, (url: URL, secret: string) => Promise<Agent>]> = [
  [
    '2025-11-25 (SDK v1)',
    async (url, secret) => {
      const { client } = await legacyAgent(url, secret);
      return {
        listTools: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
        call: async (name, args) => shape(await client.callTool({ name, arguments: args })),
        close: () => client.close(),
      };
    },
  ],
  [
    '2026-07-28 (SDK v2)',
    async (url, secret) => {
      const client = await modernAgent(url, secret);
      return {
        listTools: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
        call: async (name, args) => shape(await client.callTool({ name, arguments: args })),
        close: () => client.close(),
      };
    },
  ],
];

describe('code mode through a node', () => {
  let env: TestEnv;
  let url: URL;
  let inherit: CreatedKey;
  let off: CreatedKey;
  let on: CreatedKey;
  let limited: CreatedKey;

  before(async () => {
    env = await startTestEnv({
      nodes: ['node-a'],
      upstreams: [everythingUpstream('ev', { codeMode: true }), everythingUpstream('plain')],
      keys: [
        { name: 'inherit' },
        { name: 'off', codeMode: 'OFF' },
        { name: 'on', codeMode: 'ON' },
        { name: 'limited', allowedTools: ['ev__echo', 'plain__*'] },
      ],
    });
    [inherit, off, on, limited] = env.keys as [CreatedKey, CreatedKey, CreatedKey, CreatedKey];
    url = new URL(env.node('node-a').mcpUrl);
    // Both upstreams connected and listed on the node (a key with code mode off sees their tools).
    const probe = await ERAS[0]![1](url, off.secret);
    await eventually('both upstreams listed', async () => {
      const names = await probe.listTools();
      return names.includes('ev__echo') && names.includes('plain__echo');
    });
    await probe.close();
  });
  after(() => env?.dispose());

  test('GraphQL keeps codeMode on upstreams and keys', async () => {
    const data = await env.gqlOk<{
      upstreams: Array<{ name: string; codeMode: boolean }>;
      virtualKeys: Array<{ name: string; codeMode: string }>;
    }>(`{ upstreams { name codeMode } virtualKeys { name codeMode } }`);
    assert.deepEqual(
      data.upstreams.map((u) => [u.name, u.codeMode]),
      [
        ['ev', true],
        ['plain', false],
      ],
    );
    assert.deepEqual(
      data.virtualKeys.map((k) => [k.name, k.codeMode]),
      [
        ['inherit', 'INHERIT'],
        ['off', 'OFF'],
        ['on', 'ON'],
        ['limited', 'INHERIT'],
      ],
    );
    const bad = await env.gql(`mutation { createVirtualKey(input: { name: "x", codeMode: SOMETIMES }) { secret } }`);
    assert.ok(bad.errors?.length, 'an unknown code mode is refused');
  });

  for (const [era, connect] of ERAS) {
    describe(era, () => {
      test(`tools/list: the meta-tools plus the classic tools of upstreams not in code mode; OFF sees \
none`, async () => {
        const agent = await connect(url, inherit.secret);
        const names = await agent.listTools();
        for (const meta of META) assert.ok(names.includes(meta), `${meta} listed`);
        assert.ok(names.includes('plain__echo'), 'plain stays classic');
        assert.ok(!names.some((n) => n.startsWith('ev__')), `ev is behind the meta-tools: ${names.join(', ')}`);
        await agent.close();

        const offAgent = await connect(url, off.secret);
        const offNames = await offAgent.listTools();
        assert.ok(offNames.includes('ev__echo') && offNames.includes('plain__echo'));
        assert.ok(!offNames.some((n) => META.includes(n)), 'OFF sees no meta-tools');
        const refused = await offAgent.call('run_script', { code: 'return 1' }).catch((e: Error) => e.message);
        assert.match(String(refused), /Tool run_script not found/);
        await offAgent.close();

        const onAgent = await connect(url, on.secret);
        const onNames = await onAgent.listTools();
        assert.deepEqual(onNames, META, 'ON: every upstream is behind the meta-tools');
        await onAgent.close();
      });

      test('search_tools, list_tool_files and read_tool_file show only what the key may call', async () => {
        const agent = await connect(url, on.secret);
        const found = await agent.call('search_tools', { query: 'echo' });
        assert.equal(found.isError, false);
        const lines = found.texts[0]!.split('\n');
        // Same-named tools of two upstreams are both there, ranked first.
        assert.deepEqual(lines.slice(0, 2).sort(), [
          'servers/ev/echo.d.ts — Echoes back the input string',
          'servers/plain/echo.d.ts — Echoes back the input string',
        ]);
        const sum = await agent.call('search_tools', { query: 'sum two numbers', limit: 1 });
        assert.match(sum.texts[0]!, /^servers\/(ev|plain)\/get-sum\.d\.ts — Returns the sum of two numbers$/);

        const top = await agent.call('list_tool_files', {});
        assert.deepEqual(top.texts[0]!.split('\n'), [
          'servers/ev/',
          'servers/ev.d.ts',
          'servers/plain/',
          'servers/plain.d.ts',
        ]);
        const ev = await agent.call('list_tool_files', { path: 'servers/ev' });
        assert.ok(ev.texts[0]!.split('\n').includes('servers/ev/get-sum.d.ts'));

        const stub = await agent.call('read_tool_file', { path: 'servers/ev/get-sum.d.ts' });
        assert.equal(
          stub.texts[0],
          [
            '/** Returns the sum of two numbers */',
            '// await tools.ev["get-sum"](args)',
            'export function getSum(args: GetSumArgs): Promise<unknown>;',
            'export interface GetSumArgs {',
            '  /** First number */',
            '  a: number;',
            '  /** Second number */',
            '  b: number;',
            '}',
            '',
          ].join('\n'),
        );
        const structured = await agent.call('read_tool_file', { path: 'servers/ev/get-structured-content.d.ts' });
        assert.match(structured.texts[0]!, /location: "New York" \| "Chicago" \| "Los Angeles";/);
        assert.match(structured.texts[0]!, /Promise<GetStructuredContentResult>/);
        assert.match(
          structured.texts[0]!,
          /export interface GetStructuredContentResult \{\n[\s\S]*temperature: number;/,
        );
        const slice = await agent.call('read_tool_file', { path: 'servers/ev/get-sum.d.ts', startLine: 4, endLine: 4 });
        assert.equal(slice.texts[0], 'export interface GetSumArgs {');
        const missing = await agent.call('read_tool_file', { path: 'servers/ev/nope.d.ts' });
        assert.equal(missing.isError, true);
        await agent.close();

        const narrow = await connect(url, limited.secret);
        const tree = await narrow.call('list_tool_files', { path: 'servers/ev' });
        assert.deepEqual(tree.texts[0]!.split('\n'), ['servers/ev/echo.d.ts'], 'only what the allow-list grants');
        const none = await narrow.call('search_tools', { query: 'sum' });
        assert.equal(none.texts[0], 'No tools match "sum".');
        await narrow.close();
      });

      test(`run_script: calls across upstreams, structured and text results, console output, errors as \
isError`, async () => {
        const agent = await connect(url, inherit.secret);
        const ran = await agent.call('run_script', {
          code: [
            'const echoed = await tools.ev.echo({ message: "hi" });',
            'const sum = await tools.ev["get-sum"]({ a: 2, b: 3 });',
            'const weather = await tools.plain["get-structured-content"]({ location: "Chicago" });',
            'console.log("sum is", sum);',
            'return { echoed, sum, temperature: typeof weather.temperature };',
          ].join('\n'),
        });
        assert.equal(ran.isError, false, ran.texts.join('\n'));
        assert.deepEqual(JSON.parse(ran.texts[0]!), {
          echoed: 'Echo: hi',
          sum: 'The sum of 2 and 3 is 5.',
          temperature: 'number',
        });
        assert.equal(ran.texts[1], 'sum is The sum of 2 and 3 is 5.');

        const syntax = await agent.call('run_script', { code: 'const a = 1;\nconst b = ;' });
        assert.equal(syntax.isError, true);
        assert.match(syntax.texts[0]!, /^syntax error at line 2: SyntaxError: /);
        const runtime = await agent.call('run_script', { code: 'console.log("before");\n\nnull.x;' });
        assert.equal(runtime.isError, true);
        assert.match(runtime.texts[0]!, /^runtime error at line 3: TypeError: /);
        assert.equal(runtime.texts[1], 'before');
        const toolError = await agent.call('run_script', {
          code: 'try { await tools.ev["get-sum"]({ a: "x" }); } catch (e) { return e.message; }',
        });
        assert.match(JSON.parse(toolError.texts[0]!) as string, /Invalid|invalid|expected number/);
        await agent.close();

        const narrow = await connect(url, limited.secret);
        const denied = await narrow.call('run_script', {
          code: 'try { return await tools.ev["get-sum"]({ a: 1, b: 2 }); } catch (e) { return e.message; }',
        });
        assert.equal(JSON.parse(denied.texts[0]!), 'Tool tools.ev["get-sum"] not found; find tools with search_tools');
        await narrow.close();
      });
    });
  }

  test("a live key's code mode changes with updateVirtualKey", async () => {
    const created = await env.gqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(
      `mutation { createVirtualKey(input: { name: "switch", codeMode: OFF }) { secret key { id } } }`,
    );
    const { secret, key } = created.createVirtualKey;
    const names = async () => {
      const agent = await ERAS[1]![1](url, secret).catch(() => undefined);
      if (!agent) return [];
      const listed = await agent.listTools();
      await agent.close();
      return listed;
    };
    await eventually('the key reached the node', async () => (await names()).includes('ev__echo'));
    const UPDATE = `mutation ($id: ID!, $mode: CodeMode) { updateVirtualKey(id: $id, input: { codeMode: $mode }) {
      codeMode } }`;
    const updated = await env.gqlOk<{ updateVirtualKey: { codeMode: string } }>(UPDATE, { id: key.id, mode: 'ON' });
    assert.equal(updated.updateVirtualKey.codeMode, 'ON');
    await eventually(
      'the node puts every upstream behind the meta-tools',
      async () => (await names()).join() === META.join(),
    );
    const unchanged = await env.gqlOk<{ updateVirtualKey: { codeMode: string } }>(UPDATE, { id: key.id, mode: null });
    assert.equal(unchanged.updateVirtualKey.codeMode, 'ON', 'null leaves it as it is');
  });
});
