// Finding 6 (part): `--node-token` showed the config-stream secret to every local user in `ps`. The
// token is read from PORTCULLIS_NODE_TOKEN or --node-token-file only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCommand } from '../../cli/src/commands/index.ts';
import { readOptions } from '../../cli/src/options.ts';
import {
  nodeTokenSettings,
  readControlPlaneConnection,
  controlPlaneConnectionSettings,
  readNodeToken,
} from '../../cli/src/commands/stream-settings.ts';

const TOKEN = 'node-token-0123456789abcdef';

test('finding 6: --node-token is refused by every command, naming the variable and the file flag instead', async () => {
  for (const name of ['control-plane', 'data-plane', 'dev']) {
    const command = (await loadCommand(name))!;
    assert.throws(
      () => readOptions(command.options, ['--node-token', TOKEN], {}),
      new RegExp(
        '--node-token is not accepted: a secret on the command line shows in `ps`' +
          '.*PORTCULLIS_NODE_TOKEN.*--node-token-file',
      ),
      name,
    );
    assert.throws(
      () => readOptions(command.options, [`--node-token=${TOKEN}`], {}),
      /--node-token is not accepted/,
      `${name} (--flag=value)`,
    );
    assert.match(command.help, /env PORTCULLIS_NODE_TOKEN\s+.*not a flag/, `${name} --help says the token is env-only`);
    assert.match(command.help, /--node-token-file <value>/);
  }
});

test('finding 6: the node token comes from PORTCULLIS_NODE_TOKEN or --node-token-file (trimmed), never both', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-token-'));
  try {
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    assert.equal(readNodeToken(readOptions(nodeTokenSettings, [], { PORTCULLIS_NODE_TOKEN: TOKEN }), true), TOKEN);
    assert.equal(readNodeToken(readOptions(nodeTokenSettings, ['--node-token-file', file], {}), true), TOKEN);
    assert.equal(readNodeToken(readOptions(nodeTokenSettings, [], { PORTCULLIS_NODE_TOKEN_FILE: file }), true), TOKEN);
    assert.throws(
      () =>
        readNodeToken(
          readOptions(nodeTokenSettings, ['--node-token-file', file], { PORTCULLIS_NODE_TOKEN: TOKEN }),
          true,
        ),
      /both set/,
    );
    assert.throws(
      () => readNodeToken(readOptions(nodeTokenSettings, ['--node-token-file', join(dir, 'missing')], {}), true),
      /--node-token-file: cannot read/,
    );
    writeFileSync(join(dir, 'short'), 'short\n');
    assert.throws(
      () => readNodeToken(readOptions(nodeTokenSettings, ['--node-token-file', join(dir, 'short')], {}), true),
      /at least 16 characters/,
    );
    assert.throws(
      () => readNodeToken(readOptions(nodeTokenSettings, [], {}), true),
      /node token is required: set PORTCULLIS_NODE_TOKEN or give --node-token-file/,
    );
    assert.equal(readNodeToken(readOptions(nodeTokenSettings, [], {}), false), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('faults: a node takes several --control-plane replicas and a bounded, configurable reconnect backoff', () => {
  const read = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
    readControlPlaneConnection(readOptions(controlPlaneConnectionSettings, argv, env), TOKEN);
  const defaults = read([]);
  assert.equal(defaults.controlPlaneAddress, '127.0.0.1:4001');
  assert.deepEqual(defaults.controlPlaneFallbacks, []);
  assert.deepEqual(defaults.controlPlaneReconnect, { initialMs: 100, maxMs: 5000 }, 'not grpc-js’s 1 s to 120 s');
  assert.equal(defaults.controlPlaneTls, undefined);
  const two = read(['--control-plane', 'cp-a:4001, cp-b:4002', '--control-plane-reconnect-max-ms', '2000']);
  assert.equal(two.controlPlaneAddress, 'cp-a:4001');
  assert.deepEqual(two.controlPlaneFallbacks, ['cp-b:4002']);
  assert.deepEqual(two.controlPlaneReconnect, { initialMs: 100, maxMs: 2000 });
  assert.deepEqual(read([], { PORTCULLIS_CONTROL_PLANE: '[::1]:4001,127.0.0.1:4002' }).controlPlaneFallbacks, [
    '127.0.0.1:4002',
  ]);
  assert.throws(() => read(['--control-plane', 'cp-a']), /--control-plane: each address must be host:port/);
  assert.throws(
    () => read(['--control-plane-reconnect-min-ms', '500', '--control-plane-reconnect-max-ms', '100']),
    /must be at least --control-plane-reconnect-min-ms/,
  );
  assert.deepEqual(read(['--control-plane-tls', 'on', '--control-plane-server-name', 'cp.internal']).controlPlaneTls, {
    serverName: 'cp.internal',
  });
  assert.throws(() => read(['--control-plane-server-name', 'cp.internal']), /needs TLS/);
});
