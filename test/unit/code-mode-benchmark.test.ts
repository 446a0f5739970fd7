import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { type Catalog, exposableTools, loadCatalogs, toolSubset } from '../../bench/src/code-mode/catalog.ts';
import { digestOf, fakeResult, valueFromSchema } from '../../bench/src/code-mode/fake-results.mjs';
import { TASKS } from '../../bench/src/code-mode/tasks.ts';
import { trajectoryTokens } from '../../bench/src/code-mode/token-benchmark.ts';
import { countTokens, jsonTokens } from '../../bench/src/code-mode/tokens.ts';

/** The code-mode token benchmark's parts that need no gateway (issue 17): fixtures, fake results, counting. */

describe('recorded catalogs and the task suite', () => {
  const catalogs = loadCatalogs();

  test('at least 500 exposable tools from at least 16 servers, each naming its package, version and launch', () => {
    const exposable = catalogs.reduce((sum, c) => sum + exposableTools(c).length, 0);
    assert.ok(catalogs.length >= 16, `${catalogs.length} servers recorded`);
    assert.ok(exposable >= 500, `${exposable} tools the gateway exposes`);
    for (const c of catalogs) {
      assert.match(c.version, /^\d+\.\d+\.\d+/, `${c.server}: an exact version`);
      assert.match(c.launched, /^(node node_modules\/|npx -y )/, `${c.server}: how it was launched`);
      assert.ok(!/not-a|_not_|sk_test/.test(c.launched), `${c.server}: no credential value in the fixture`);
    }
  });

  test('at least 40 tasks, most needing three or more tools; each tool recorded and exposable', () => {
    assert.ok(TASKS.length >= 40, `${TASKS.length} tasks`);
    const three = TASKS.filter((t) => Object.keys(t.find).length >= 3).length;
    assert.ok(three >= TASKS.length * 0.75, `${three} of ${TASKS.length} tasks need three tools or more`);
    assert.equal(new Set(TASKS.map((t) => t.id)).size, TASKS.length, 'task ids are unique');
    const must = TASKS.flatMap((t) => Object.keys(t.find) as `${string}/${string}`[]);
    assert.doesNotThrow(() => toolSubset(catalogs, 500, must));
    const servers = new Set(must.map((ref) => ref.split('/')[0]));
    assert.ok(servers.size >= 12, `the tasks span ${servers.size} servers`);
  });
});

describe('toolSubset', () => {
  const catalog = (server: string, names: string[]): Catalog => ({
    server,
    package: server,
    version: '1.0.0',
    launched: 'npx -y x',
    recordedAt: '',
    serverInfo: { name: server, version: '1' },
    tools: names.map((name) => ({ name, inputSchema: { type: 'object' } })),
  });
  const catalogs = [catalog('a', ['a1', 'a2', 'a3']), catalog('b', ['b1', 'x'.repeat(70)]), catalog('c', ['c1'])];

  test('the tasks first, then a tool of each server in turn; names the gateway cannot expose left out', () => {
    assert.deepEqual(toolSubset(catalogs, 4, ['a/a3']), ['a/a3', 'a/a1', 'b/b1', 'c/c1']);
    assert.deepEqual(toolSubset(catalogs, 99, []), ['a/a1', 'b/b1', 'c/c1', 'a/a2', 'a/a3']);
  });

  test('a task calling a tool that is not recorded (or not exposable) is refused by name', () => {
    assert.throws(() => toolSubset(catalogs, 4, ['a/nope']), /no recorded tool a\/nope/);
    assert.throws(() => toolSubset(catalogs, 4, [`b/${'x'.repeat(70)}`]), /no recorded tool/);
  });
});

describe('fake results of the recorded-catalog upstream', () => {
  const plain = { name: 'search', inputSchema: { type: 'object', required: ['query'] } };

  test('the same call answers the same, whatever the order of its arguments; another call differs', () => {
    const one = fakeResult('s', plain, { query: 'x', limit: 2 });
    assert.deepEqual(one, fakeResult('s', plain, { limit: 2, query: 'x' }));
    const { id, n } = digestOf('s', 'search', { query: 'x', limit: 2 });
    assert.deepEqual(JSON.parse(one.content[0]!.text), { id, n });
    assert.match(id, /^[0-9a-f]{8}$/);
    assert.ok(n >= 0 && n < 1000);
    assert.notDeepEqual(one, fakeResult('s', plain, { query: 'y', limit: 2 }));
    assert.notDeepEqual(one, fakeResult('t', plain, { query: 'x', limit: 2 }));
  });

  test('every recorded tool with an outputSchema answers a value the SDK client accepts', () => {
    // The SDK client checks structuredContent against the tool's outputSchema (formats included) and refuses a
    // call whose answer does not fit.
    const validator = new AjvJsonSchemaValidator();
    const checked = loadCatalogs().flatMap((c) =>
      c.tools
        .filter((t) => t.outputSchema !== undefined)
        .map((t) => {
          const result = fakeResult(c.server, { ...t, inputSchema: {} }, {});
          const check = validator.getValidator(t.outputSchema as never)(result.structuredContent);
          return check.valid ? '' : `${c.server}/${t.name}: ${check.errorMessage}`;
        }),
    );
    assert.ok(checked.length >= 50, `${checked.length} tools with an outputSchema`);
    assert.deepEqual(
      checked.filter((e) => e !== ''),
      [],
    );
  });

  test('a missing required argument is an isError result naming it', () => {
    assert.deepEqual(fakeResult('s', plain, {}), {
      content: [{ type: 'text', text: 'search: missing required argument query' }],
      isError: true,
    });
  });

  test('a tool with an outputSchema answers structuredContent of that shape (refs, enums, formats)', () => {
    const outputSchema = {
      type: 'object',
      properties: {
        items: { type: 'array', items: { $ref: '#/$defs/item' } },
        kind: { enum: ['a', 'b'] },
        ok: { type: 'boolean' },
        when: { type: 'string', format: 'date-time' },
      },
      $defs: {
        item: { type: 'object', properties: { url: { type: 'string', format: 'uri' }, size: { type: 'integer' } } },
      },
    };
    const result = fakeResult('s', { name: 'find', inputSchema: { type: 'object' }, outputSchema }, {});
    const { id, n } = digestOf('s', 'find', {});
    const expected = {
      items: [{ url: `https://example.com/${id}`, size: n }],
      kind: 'a',
      ok: n % 2 === 0,
      when: '2026-01-01T00:00:00Z',
    };
    assert.deepEqual(result.structuredContent, expected);
    assert.deepEqual(JSON.parse(result.content[0]!.text), expected);
    assert.deepEqual(valueFromSchema({ type: 'object' }, {}, 'i', 3), { id: 'i', n: 3 });
    const map = { type: 'object', propertyNames: { format: 'uri' }, additionalProperties: { type: 'integer' } };
    assert.deepEqual(valueFromSchema(map, map, 'i', 3), { 'https://example.com/i': 3 });
  });
});

describe('token counting', () => {
  test('o200k_base counts', () => {
    assert.equal(countTokens('hello world'), 2);
    assert.equal(jsonTokens({ a: 1 }), countTokens('{"a":1}'));
  });

  test('a trajectory holds the tool list and prompt every turn, and each step from the turn after it', () => {
    const tools = [{ name: 't', inputSchema: { type: 'object' } }];
    const call = { name: 't', arguments: { x: 1 } };
    const result = { content: [{ type: 'text' as const, text: '{"id":"ab","n":1}' }] };
    const fixed = jsonTokens(tools) + jsonTokens({ role: 'user', content: 'do it' });
    const step =
      jsonTokens({ role: 'assistant', tool_calls: [call] }) +
      jsonTokens({ role: 'tool', name: 't', content: result.content });
    const trajectory = { tools, prompt: 'do it', steps: [{ calls: [call], results: [result] }] };
    // Two turns: the first holds the fixed part; the second (the final answer) also the call and its result.
    assert.equal(trajectoryTokens(trajectory), fixed + (fixed + step));
    const twice = { ...trajectory, steps: [trajectory.steps[0]!, trajectory.steps[0]!] };
    assert.equal(trajectoryTokens(twice), fixed + (fixed + step) + (fixed + 2 * step));
  });
});
