import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstSentence, toolStub } from '../../data-plane/src/code-mode/tool-stubs.ts';
import { ToolTree } from '../../data-plane/src/code-mode/tool-tree.ts';
import type { CatalogEntry } from '../../data-plane/src/upstream/upstream-router.ts';

function entry(upstream: string, name: string, definition: Record<string, unknown> = {}): CatalogEntry {
  return {
    upstreamName: upstream,
    key: `${upstream}__${name}`,
    upstreamKey: name,
    definition: { name, ...definition },
  };
}

test('a stub declares the signature, required and optional arguments, enums, nested objects, arrays, unions, $refs and the output type', () => {
  const stub = toolStub({
    upstream: 'github',
    tool: 'create_issue',
    definition: {
      name: 'github__create_issue',
      description: 'Create an issue.\nMarkdown body allowed.',
      inputSchema: {
        type: 'object',
        properties: {
          repo: { type: 'string', description: 'owner/name' },
          state: { enum: ['open', 'closed'] },
          labels: { type: 'array', items: { type: 'string' } },
          assignee: { anyOf: [{ type: 'string' }, { type: 'null' }] },
          meta: {
            type: 'object',
            properties: { priority: { type: 'integer' }, 'due-date': { type: 'string' } },
            required: ['priority'],
          },
          milestone: { $ref: '#/$defs/Milestone' },
          count: { type: ['number', 'null'] },
        },
        required: ['repo'],
        $defs: { Milestone: { type: 'object', properties: { id: { type: 'number' } } } },
      },
      outputSchema: {
        type: 'object',
        properties: { number: { type: 'integer' }, url: { type: 'string' } },
        required: ['number'],
      },
    },
  });
  assert.equal(
    stub,
    [
      '/**',
      ' * Create an issue.',
      ' * Markdown body allowed.',
      ' */',
      '// await tools.github.create_issue(args)',
      'export function create_issue(args: CreateIssueArgs): Promise<CreateIssueResult>;',
      'export interface CreateIssueArgs {',
      '  /** owner/name */',
      '  repo: string;',
      '  state?: "open" | "closed";',
      '  labels?: string[];',
      '  assignee?: string | null;',
      '  meta?: {',
      '    priority: number;',
      '    "due-date"?: string;',
      '  };',
      '  milestone?: {',
      '    id?: number;',
      '  };',
      '  count?: number | null;',
      '}',
      'export interface CreateIssueResult {',
      '  number: number;',
      '  url?: string;',
      '}',
      '',
    ].join('\n'),
  );
});

test('a tool without arguments or output schema has a bare signature; a recursive $ref stops as unknown', () => {
  assert.equal(
    toolStub({ upstream: 'my-server', tool: 'ping', definition: { name: 'ping', inputSchema: { type: 'object' } } }),
    '// await tools["my-server"].ping()\nexport function ping(): Promise<unknown>;\n',
  );
  const recursive = toolStub({
    upstream: 'fs',
    tool: 'tree',
    definition: {
      inputSchema: {
        type: 'object',
        properties: { node: { $ref: '#/$defs/Node' } },
        $defs: {
          Node: { type: 'object', properties: { children: { type: 'array', items: { $ref: '#/$defs/Node' } } } },
        },
      },
    },
  });
  assert.match(recursive, /unknown/);
});

test('firstSentence keeps the first sentence of the first line, at most 160 characters', () => {
  assert.equal(firstSentence('Reads a file. Then more.'), 'Reads a file.');
  assert.equal(firstSentence('Version 1.2 of the reader\nsecond line'), 'Version 1.2 of the reader');
  assert.equal(firstSentence('x'.repeat(200)).length, 160);
  assert.equal(firstSentence(undefined), '');
});

test('search ranks by how well the words match and never drops same-named tools of different upstreams', () => {
  const tree = new ToolTree([
    entry('github', 'search_issues', { description: 'Search issues and pull requests.' }),
    entry('gitlab', 'search_issues', { description: 'Search issues in a project.' }),
    entry('github', 'create_issue', { description: 'Create an issue.' }),
    entry('slack', 'post_message', { description: 'Post a message to a channel. Mentions issues.' }),
    entry('fs', 'read_file', { description: 'Read a file.' }),
  ]);
  const found = tree.search('search issues', 10);
  assert.deepEqual(found.slice(0, 2), [
    'servers/github/search_issues.d.ts — Search issues and pull requests.',
    'servers/gitlab/search_issues.d.ts — Search issues in a project.',
  ]);
  // Words in the name weigh more than in the description; a prefix counts.
  assert.deepEqual(tree.search('issue', 10).slice(0, 1), ['servers/github/create_issue.d.ts — Create an issue.']);
  assert.deepEqual(tree.search('gitlab', 10), ['servers/gitlab/search_issues.d.ts — Search issues in a project.']);
  assert.equal(tree.search('issues', 2).length, 2, 'limit');
  assert.deepEqual(tree.search('weather', 10), []);
  assert.deepEqual(tree.search('readFile', 1), ['servers/fs/read_file.d.ts — Read a file.']);
});

test('the tree lists servers and their tool files, and reads a whole server as one file', () => {
  const tree = new ToolTree([entry('a', 'one'), entry('a', 'two'), entry('b', 'three')]);
  assert.deepEqual(tree.list(undefined), ['servers/a/', 'servers/a.d.ts', 'servers/b/', 'servers/b.d.ts']);
  assert.deepEqual(tree.list('servers/a/'), ['servers/a/one.d.ts', 'servers/a/two.d.ts']);
  assert.equal(tree.list('servers/zzz'), undefined);
  assert.equal(tree.read('servers/a.d.ts'), `${tree.read('servers/a/one.d.ts')}\n${tree.read('servers/a/two.d.ts')}`);
  assert.equal(tree.read('servers/a/three.d.ts'), undefined);
  assert.equal(tree.read('../../etc/passwd'), undefined);
});
