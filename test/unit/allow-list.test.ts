import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowList } from '../../data-plane/src/policy/allow-list.ts';

test('exact names allow only themselves', () => {
  const list = new AllowList(['up__echo']);
  assert.equal(list.allows('up__echo', 'up'), true);
  assert.equal(list.allows('up__add', 'up'), false);
  assert.equal(list.allows('other__echo', 'other'), false);
});

test('an upstream wildcard allows every tool of that upstream only', () => {
  const list = new AllowList(['up__*']);
  assert.equal(list.allows('up__anything', 'up'), true);
  assert.equal(list.allows('upx__anything', 'upx'), false);
});

test('"*" allows everything and an empty list allows nothing', () => {
  assert.equal(new AllowList(['*']).allows('a__b', 'a'), true);
  assert.equal(new AllowList([]).allows('a__b', 'a'), false);
});
