import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_REPORTED_CHARS,
  MAX_REPORTED_ENTRIES,
  SUMMARY_LIMITS,
  promptSummary,
  resourceSummary,
  resourceTemplateSummary,
  summarize,
} from '../../data-plane/src/upstream/catalog-summary.ts';

test('UP-REPORT: summaries keep what an operator needs and never the content', () => {
  assert.deepEqual(
    promptSummary({
      name: 'greet',
      title: 'Greeting',
      description: 'Says hi',
      arguments: [{ name: 'who', description: 'whom', required: true }, { name: 'tone' }],
      messages: ['not reported'],
    }),
    {
      name: 'greet',
      title: 'Greeting',
      description: 'Says hi',
      arguments: [
        { name: 'who', description: 'whom', required: true },
        { name: 'tone', description: '', required: false },
      ],
    },
  );
  assert.deepEqual(
    resourceSummary({ uri: 'file:///a.txt', name: 'a', mimeType: 'text/plain', size: 12, text: 'secret contents' }),
    {
      uri: 'file:///a.txt',
      name: 'a',
      title: '',
      description: '',
      mimeType: 'text/plain',
      size: 12,
    },
  );
  assert.deepEqual(resourceTemplateSummary({ uriTemplate: 'file:///{path}', name: 'files', description: 'any file' }), {
    uriTemplate: 'file:///{path}',
    name: 'files',
    title: '',
    description: 'any file',
    mimeType: '',
  });
});

test('UP-REPORT-CAP: 10,000 resources are reported as the first 1,000 with the total beside', () => {
  const resources = Array.from({ length: 10_000 }, (_, i) => ({ uri: `test://r/${i}`, name: `r${i}` }));
  const list = summarize(resources, resourceSummary);
  assert.equal(list.total, 10_000);
  assert.equal(list.items.length, MAX_REPORTED_ENTRIES);
  assert.equal(list.items[0]!.uri, 'test://r/0');
  assert.equal(list.items.at(-1)!.uri, `test://r/${MAX_REPORTED_ENTRIES - 1}`);
});

test('UP-REPORT-CAP: long texts are cut, over-long identifiers left out, and the text of a kind is bounded', () => {
  const long = 'x'.repeat(10_000);
  const cut = resourceSummary({ uri: 'test://long', name: long, description: long });
  assert.equal(cut?.name.length, SUMMARY_LIMITS.name);
  assert.equal(cut?.description.length, SUMMARY_LIMITS.description);
  assert.ok(cut?.description.endsWith('…'));
  assert.equal(resourceSummary({ uri: `test://${long}` }), undefined, 'a URI cut short would name another resource');
  assert.equal(promptSummary({ name: long }), undefined);
  const many = promptSummary({ name: 'p', arguments: Array.from({ length: 100 }, (_, i) => ({ name: `a${i}` })) });
  assert.equal(many?.arguments.length, SUMMARY_LIMITS.arguments);

  // 1,000 resources with long descriptions would exceed the text budget: the list stops before it.
  const heavy = Array.from({ length: 1_000 }, (_, i) => ({ uri: `test://h/${i}`, description: long }));
  const list = summarize(heavy, resourceSummary);
  assert.equal(list.total, 1_000);
  assert.ok(list.items.length < 1_000 && list.items.length > 100, `${list.items.length} items`);
  const chars = list.items.reduce((sum, item) => sum + item.uri.length + item.description.length, 0);
  assert.ok(chars <= MAX_REPORTED_CHARS);
});
