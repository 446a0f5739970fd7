import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { helpText, port, readOptions } from '../../cli/src/options.ts';

const table = {
  port: { flag: 'port', env: 'X_PORT', description: 'listen port', schema: port(8080), defaultLabel: '8080' },
  token: { flag: 'token', env: 'X_TOKEN', description: 'the token', schema: z.string().min(16, 'must be at least 16 characters') },
};

test('a flag wins over its environment variable, which wins over the default', () => {
  assert.deepEqual(readOptions(table, ['--port', '1', '--token', 't'.repeat(16)], { X_PORT: '2' }), { port: 1, token: 't'.repeat(16) });
  assert.equal(readOptions(table, [], { X_PORT: '2', X_TOKEN: 't'.repeat(16) }).port, 2);
  assert.equal(readOptions(table, [], { X_TOKEN: 't'.repeat(16) }).port, 8080);
});

test('errors name the flag or variable and what is expected', () => {
  assert.throws(() => readOptions(table, ['--port', 'abc', '--token', 't'.repeat(16)], {}), /--port: must be a port number/);
  assert.throws(() => readOptions(table, ['--token', 'short'], {}), /--token: must be at least 16 characters/);
  assert.throws(() => readOptions(table, [], { X_TOKEN: 'short' }), /X_TOKEN: must be at least 16 characters/);
  assert.throws(() => readOptions(table, [], {}), /--token is required \(or set X_TOKEN\)/);
  assert.throws(() => readOptions(table, ['--nope', '1'], {}), /Unknown option '--nope'.*see --help/);
});

test('--help lists every flag with its variable and default', () => {
  const help = helpText('Usage: x', 'Does x.', table);
  assert.match(help, /--port <value>\s+listen port \[env X_PORT\] \(default: 8080\)/);
  assert.match(help, /--token <value>\s+the token \[env X_TOKEN\]/);
});
