/**
 * The declarative configuration document (issue 18): its JSON Schema for editors is generated from
 * the one zod schema, and a document of the wrong shape is named by the path of its first problem.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configDocumentJsonSchema, documentProblem, formatPath } from '../../control-plane/src/declarative/document.ts';

test('portcullis schema: a JSON Schema of every kind of object, closed to unknown fields', () => {
  const schema = configDocumentJsonSchema() as {
    properties: Record<string, { items?: { properties: Record<string, unknown>; additionalProperties: unknown } }>;
  };
  for (const kind of ['customers', 'teams', 'upstreams', 'keys'])
    assert.equal(schema.properties[kind]?.items?.additionalProperties, false, kind);
  const upstream = schema.properties['upstreams']!.items!.properties;
  for (const field of ['url', 'env', 'bearerToken', 'prices', 'policies', 'codeMode'])
    assert.ok(upstream[field], field);
  assert.match(JSON.stringify(upstream['bearerToken']), /keep/);
});

test('a document of the wrong shape is named by the path of its first problem', () => {
  assert.equal(documentProblem({ version: 1 }), undefined);
  assert.deepEqual(documentProblem({ version: 1, upstreams: [{ name: 'a', transport: 'STDIO', comand: 'x' }] }), {
    path: ['upstreams', 0, 'comand'],
    message: 'is not a field here; check its spelling or remove it (see portcullis schema)',
  });
  const twice = documentProblem({ version: 1, teams: [{ name: 't' }, { name: 't' }] });
  assert.equal(formatPath(twice!.path), 'teams[1].name');
  assert.match(twice!.message, /named twice \(first at teams\[0\]\)/);
  const token = documentProblem({ version: 1, upstreams: [{ name: 'a', transport: 'SSE', bearerToken: 7 }] });
  assert.equal(formatPath(token!.path), 'upstreams[0].bearerToken');
  assert.match(token!.message, /\{ keep: true \}/);
});
