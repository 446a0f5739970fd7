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

test('data-plane settings: --anonymous-key and --allowed-hosts (and their variables) reach the node options', async () => {
  const { dataPlaneOptions, dataPlaneSettings } = await import('../../cli/src/commands/settings.ts');
  const { createLogger } = await import('../../common/src/index.ts');
  const connection = { controlPlaneAddress: '127.0.0.1:4001', nodeToken: 'x'.repeat(16) };
  const logger = createLogger({ level: 'silent' });
  const defaults = dataPlaneOptions(readOptions(dataPlaneSettings, [], {}), connection, logger);
  assert.equal(defaults.anonymousKeyId, undefined, 'anonymous access is off by default');
  assert.equal(defaults.allowedHosts, undefined);
  const set = dataPlaneOptions(readOptions(dataPlaneSettings, ['--anonymous-key', 'vk_1', '--allowed-hosts', 'gw.example:8443,localhost'], {}), connection, logger);
  assert.equal(set.anonymousKeyId, 'vk_1');
  assert.deepEqual(set.allowedHosts, [{ hostname: 'gw.example', port: '8443' }, { hostname: 'localhost' }]);
  const fromEnv = dataPlaneOptions(readOptions(dataPlaneSettings, [], { PORTCULLIS_ANONYMOUS_KEY: 'vk_2', PORTCULLIS_ALLOWED_HOSTS: '[::1]' }), connection, logger);
  assert.equal(fromEnv.anonymousKeyId, 'vk_2');
  assert.deepEqual(fromEnv.allowedHosts, [{ hostname: '[::1]' }]);
  assert.throws(() => readOptions(dataPlaneSettings, ['--allowed-hosts', 'http://x'], {}), /--allowed-hosts.*not a host/);
});
