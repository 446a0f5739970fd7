import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  mergeCatalogs,
  routeResource,
  toolHash,
  type CatalogSource,
} from '../../data-plane/src/upstream/upstream-catalog.ts';
import { canonicalJson, definitionSha256 } from '../../data-plane/src/upstream/tool-definition-hash.ts';
import type { UpstreamCatalogs } from '../../data-plane/src/upstream/upstream-listing.ts';

function source(
  upstreamName: string,
  catalogs: UpstreamCatalogs | undefined,
  fields: Partial<CatalogSource> = {},
): CatalogSource {
  return {
    upstreamName,
    exposeUnprefixed: false,
    pinToolDefinitions: false,
    pinnedTools: new Map(),
    catalogs,
    ...fields,
  };
}

const tool = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  description: `${name} does things`,
  inputSchema: { type: 'object' },
  ...extra,
});

test('UP-HASH: definition_sha256 is the SHA-256 of the sorted-key JSON of the model-steering fields only', () => {
  const a = {
    name: 't',
    description: 'd',
    inputSchema: { type: 'object', properties: { b: { type: 'string' }, a: { type: 'number' } } },
    annotations: { readOnlyHint: true },
    _meta: { x: 1 },
    icons: [],
  };
  const b = {
    annotations: { readOnlyHint: true },
    inputSchema: { properties: { a: { type: 'number' }, b: { type: 'string' } }, type: 'object' },
    description: 'd',
    name: 't',
  };
  assert.equal(definitionSha256(a), definitionSha256(b), 'key order, _meta and icons do not matter');
  const expected = createHash('sha256')
    .update(
      '{"annotations":{"readOnlyHint":true},"description":"d",' +
        '"inputSchema":{"properties":{"a":{"type":"number"},"b":{"type":"string"}},"type":"object"},"name":"t"}',
    )
    .digest('hex');
  assert.equal(definitionSha256(a), expected);
  assert.notEqual(definitionSha256({ ...b, description: 'd!' }), definitionSha256(b));
  assert.notEqual(definitionSha256({ ...b, title: 'T' }), definitionSha256(b));
  assert.notEqual(definitionSha256({ ...b, outputSchema: { type: 'object' } }), definitionSha256(b));
  assert.equal(canonicalJson([3, { z: 1, a: [true, null] }]), '[3,{"a":[true,null],"z":1}]');
});

test(`UP-NAMES: names are prefixed with the upstream, or bare when unprefixed; invalid and colliding names are left \
out and noted`, () => {
  const long = 'x'.repeat(60);
  const merged = mergeCatalogs([
    source(
      'alpha',
      { tools: [tool('echo'), tool('dotted.name'), tool(long)], prompts: [{ name: 'greet' }] },
      { exposeUnprefixed: true },
    ),
    source('beta', { tools: [tool('echo'), tool('sum')], prompts: [{ name: 'greet' }] }, { exposeUnprefixed: true }),
    source('gamma', { tools: [tool('echo')] }),
    source('down', undefined),
  ]);
  assert.deepEqual(
    merged.tools.map((t) => [t.exposedName, t.upstreamName, t.toolName]),
    [
      ['echo', 'alpha', 'echo'],
      [long, 'alpha', long],
      ['sum', 'beta', 'sum'],
      ['gamma__echo', 'gamma', 'echo'],
    ],
  );
  assert.equal(merged.tools[0]!.definition.name, 'echo');
  assert.equal(merged.index.tools.get('gamma__echo')?.definition['name'], 'gamma__echo');
  assert.deepEqual(
    merged.entries.prompts.map((p) => p.key),
    ['greet'],
  );
  assert.deepEqual(merged.notes.get('alpha'), [
    'tool "dotted.name" not exposed: "dotted.name" is not 1-64 letters, digits, _ or -',
  ]);
  assert.deepEqual(merged.notes.get('beta'), [
    'tool "echo" not exposed: the name "echo" is already taken by upstream "alpha"',
    'prompt "greet" not exposed: the name "greet" is already taken by upstream "alpha"',
  ]);
  const prefixedTooLong = mergeCatalogs([source('gamma', { tools: [tool(long)] })]);
  assert.equal(prefixedTooLong.tools.length, 0, '"gamma__" + 60 characters is over 64');
  assert.match(prefixedTooLong.notes.get('gamma')![0]!, /not 1-64/);
});

test(`UP-PINNING: a pinned tool whose definition changed is held back and noted; matching and unpinned tools are \
exposed; pinning off exposes all`, () => {
  const changed = tool('changed', { description: 'now different' });
  const same = tool('same');
  const pins = new Map([
    ['changed', definitionSha256(tool('changed'))],
    ['same', definitionSha256(same)],
  ]);
  const catalogs = { tools: [changed, same, tool('new')] };
  const on = mergeCatalogs([source('up', catalogs, { pinToolDefinitions: true, pinnedTools: pins })]);
  assert.deepEqual(
    on.tools.map((t) => t.toolName),
    ['same', 'new'],
  );
  assert.match(
    on.notes.get('up')![0]!,
    /^tool "changed" held back: its definition changed since it was pinned \(pinned [0-9a-f]{12}, now [0-9a-f]{12}\)$/,
  );
  const off = mergeCatalogs([source('up', catalogs, { pinToolDefinitions: false, pinnedTools: pins })]);
  assert.deepEqual(
    off.tools.map((t) => t.toolName),
    ['changed', 'same', 'new'],
  );
  assert.equal(toolHash(changed), definitionSha256(changed));
});

test(`UP-ROUTE-RESOURCE: listed URIs route first (the first upstream wins, the collision is noted), then templates in \
upstream order`, () => {
  const merged = mergeCatalogs([
    source('files', {
      resources: [{ uri: 'file:///readme.md', name: 'readme' }],
      resourceTemplates: [{ uriTemplate: 'file:///{path}', name: 'any file' }],
    }),
    source('docs', {
      resources: [
        { uri: 'file:///readme.md', name: 'readme too' },
        { uri: 'docs://index', name: 'index' },
      ],
      resourceTemplates: [
        { uriTemplate: 'docs://pages/{id}', name: 'page' },
        { uriTemplate: 'file:///{path}', name: 'shadowed' },
      ],
    }),
  ]);
  assert.equal(routeResource(merged, 'file:///readme.md'), 'files');
  assert.equal(routeResource(merged, 'docs://index'), 'docs');
  assert.equal(routeResource(merged, 'docs://pages/42'), 'docs');
  assert.equal(routeResource(merged, 'file:///other.txt'), 'files');
  assert.equal(routeResource(merged, 'unknown://x'), undefined);
  // A key that may not use "files" is served by the next upstream listing the URI (or matching it by template), not
  // refused.
  const docsOnly = (upstream: string) => upstream === 'docs';
  assert.equal(routeResource(merged, 'file:///readme.md', docsOnly), 'docs');
  assert.equal(routeResource(merged, 'file:///other.txt', docsOnly), 'docs');
  assert.equal(
    routeResource(merged, 'file:///readme.md', () => false),
    undefined,
  );
  assert.deepEqual(
    merged.entries.resources.map((r) => [r.key, r.upstreamName]),
    [
      ['file:///readme.md', 'files'],
      ['file:///readme.md', 'docs'],
      ['docs://index', 'docs'],
    ],
  );
  assert.equal(merged.index.resources.get('file:///readme.md')?.upstreamName, 'files');
  assert.deepEqual(merged.notes.get('docs'), [
    'resource "file:///readme.md" is also listed by upstream "files", which serves it to keys that may use both',
  ]);
  assert.equal(merged.entries.resourceTemplates.length, 3);
  assert.equal(merged.index.resourceTemplates.get('file:///{path}')?.upstreamName, 'files');
});
