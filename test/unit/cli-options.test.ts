import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { helpText, listOption, port, readOptions } from '../../cli/src/options.ts';

const table = {
  port: { flag: 'port', env: 'X_PORT', description: 'listen port', schema: port(8080), defaultLabel: '8080' },
  token: {
    flag: 'token',
    env: 'X_TOKEN',
    description: 'the token',
    schema: z.string().min(16, 'must be at least 16 characters'),
  },
};

test('a flag wins over its environment variable, which wins over the default', () => {
  assert.deepEqual(readOptions(table, ['--port', '1', '--token', 't'.repeat(16)], { X_PORT: '2' }), {
    port: 1,
    token: 't'.repeat(16),
  });
  assert.equal(readOptions(table, [], { X_PORT: '2', X_TOKEN: 't'.repeat(16) }).port, 2);
  assert.equal(readOptions(table, [], { X_TOKEN: 't'.repeat(16) }).port, 8080);
});

test('errors name the flag or variable and what is expected', () => {
  assert.throws(
    () => readOptions(table, ['--port', 'abc', '--token', 't'.repeat(16)], {}),
    /--port: must be a port number/,
  );
  assert.throws(() => readOptions(table, ['--token', 'short'], {}), /--token: must be at least 16 characters/);
  assert.throws(() => readOptions(table, [], { X_TOKEN: 'short' }), /X_TOKEN: must be at least 16 characters/);
  assert.throws(() => readOptions(table, [], {}), /--token is required \(or set X_TOKEN\)/);
  assert.throws(() => readOptions(table, ['--nope', '1'], {}), /Unknown option '--nope'.*see --help/);
});

test('a list option trims its comma-separated items and drops the empty ones', () => {
  assert.deepEqual(listOption().parse(' a, b ,,c,'), ['a', 'b', 'c']);
  assert.deepEqual(listOption().parse(' , '), []);
});

test('--help lists every flag with its variable and default', () => {
  const help = helpText('Usage: x', 'Does x.', table);
  assert.match(help, /--port <value>\s+listen port \[env X_PORT\] \(default: 8080\)/);
  assert.match(help, /--token <value>\s+the token \[env X_TOKEN\]/);
});

test(`data-plane settings: --anonymous-key and --allowed-hosts (and their variables) reach the node \
options`, async () => {
  const { dataPlaneOptions, dataPlaneSettings } = await import('../../cli/src/commands/settings.ts');
  const { createLogger } = await import('../../common/src/index.ts');
  const connection = { controlPlaneAddress: '127.0.0.1:4001', nodeToken: 'x'.repeat(16) };
  const logger = createLogger({ level: 'silent' });
  const defaults = dataPlaneOptions(readOptions(dataPlaneSettings, [], {}), connection, logger);
  assert.equal(defaults.anonymousKeyId, undefined, 'anonymous access is off by default');
  assert.equal(defaults.allowedHosts, undefined);
  const set = dataPlaneOptions(
    readOptions(dataPlaneSettings, ['--anonymous-key', 'vk_1', '--allowed-hosts', 'gw.example:8443,localhost'], {}),
    connection,
    logger,
  );
  assert.equal(set.anonymousKeyId, 'vk_1');
  assert.deepEqual(set.allowedHosts, [{ hostname: 'gw.example', port: '8443' }, { hostname: 'localhost' }]);
  const fromEnv = dataPlaneOptions(
    readOptions(dataPlaneSettings, [], { PORTCULLIS_ANONYMOUS_KEY: 'vk_2', PORTCULLIS_ALLOWED_HOSTS: '[::1]' }),
    connection,
    logger,
  );
  assert.equal(fromEnv.anonymousKeyId, 'vk_2');
  assert.deepEqual(fromEnv.allowedHosts, [{ hostname: '[::1]' }]);
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--allowed-hosts', 'http://x'], {}),
    /--allowed-hosts.*not a host/,
  );
});

test(`data-plane settings: the SSE resume window, event-store bounds, retry and polling (flags and variables) reach \
the node options; bad values name the flag`, async () => {
  const { dataPlaneOptions, dataPlaneSettings } = await import('../../cli/src/commands/settings.ts');
  const { devOptionTable } = await import('../../cli/src/commands/dev.ts');
  const { createLogger } = await import('../../common/src/index.ts');
  const connection = { controlPlaneAddress: '127.0.0.1:4001', nodeToken: 'x'.repeat(16) };
  const logger = createLogger({ level: 'silent' });
  const defaults = dataPlaneOptions(readOptions(dataPlaneSettings, [], {}), connection, logger);
  assert.deepEqual(
    defaults.sse,
    {
      windowMs: 30_000,
      retryMs: 1000,
      maxConnectionMs: undefined,
      maxEventsPerStream: 1000,
      maxBytesPerStream: 1024 * 1024,
      maxStreams: 10_000,
      maxBytes: 64 * 1024 * 1024,
      maxStreamsPerKey: 1000,
      maxBytesPerKey: 16 * 1024 * 1024,
      maxStreamsPerSession: 100,
      maxBytesPerSession: 8 * 1024 * 1024,
      maxOpenStreamsPerSession: 8,
      maxOpenStreamsPerKey: 1000,
    },
    "today's bounds, polling off",
  );
  assert.deepEqual(
    defaults.callAdmission,
    { maxPerKey: 256, maxPerSession: 64 },
    'requests in flight per key and per session',
  );
  const flags = [
    '--sse-resume-window-seconds',
    '60',
    '--sse-retry-ms',
    '250',
    '--sse-max-stream-seconds',
    '20',
    '--sse-max-events-per-stream',
    '50',
    '--sse-max-bytes-per-stream',
    '65536',
    '--sse-max-streams',
    '500',
    '--sse-max-bytes',
    '1048576',
    '--sse-max-streams-per-key',
    '40',
    '--sse-max-bytes-per-key',
    '524288',
    '--sse-max-streams-per-session',
    '20',
    '--sse-max-bytes-per-session',
    '262144',
    '--sse-max-open-streams-per-session',
    '2',
    '--sse-max-open-streams-per-key',
    '30',
  ];
  const expected = {
    windowMs: 60_000,
    retryMs: 250,
    maxConnectionMs: 20_000,
    maxEventsPerStream: 50,
    maxBytesPerStream: 65_536,
    maxStreams: 500,
    maxBytes: 1_048_576,
    maxStreamsPerKey: 40,
    maxBytesPerKey: 524_288,
    maxStreamsPerSession: 20,
    maxBytesPerSession: 262_144,
    maxOpenStreamsPerSession: 2,
    maxOpenStreamsPerKey: 30,
  };
  assert.deepEqual(dataPlaneOptions(readOptions(dataPlaneSettings, flags, {}), connection, logger).sse, expected);
  // `portcullis dev` reads the same settings.
  assert.deepEqual(dataPlaneOptions(readOptions(devOptionTable, flags, {}), connection, logger).sse, expected);
  const env = {
    PORTCULLIS_SSE_RESUME_WINDOW_SECONDS: '60',
    PORTCULLIS_SSE_RETRY_MS: '250',
    PORTCULLIS_SSE_MAX_STREAM_SECONDS: '20',
    PORTCULLIS_SSE_MAX_EVENTS_PER_STREAM: '50',
    PORTCULLIS_SSE_MAX_BYTES_PER_STREAM: '65536',
    PORTCULLIS_SSE_MAX_STREAMS: '500',
    PORTCULLIS_SSE_MAX_BYTES: '1048576',
    PORTCULLIS_SSE_MAX_STREAMS_PER_KEY: '40',
    PORTCULLIS_SSE_MAX_BYTES_PER_KEY: '524288',
    PORTCULLIS_SSE_MAX_STREAMS_PER_SESSION: '20',
    PORTCULLIS_SSE_MAX_BYTES_PER_SESSION: '262144',
    PORTCULLIS_SSE_MAX_OPEN_STREAMS_PER_SESSION: '2',
    PORTCULLIS_SSE_MAX_OPEN_STREAMS_PER_KEY: '30',
  };
  assert.deepEqual(dataPlaneOptions(readOptions(dataPlaneSettings, [], env), connection, logger).sse, expected);
  const admission = ['--max-in-flight-per-key', '12', '--max-in-flight-per-session', '3'];
  assert.deepEqual(dataPlaneOptions(readOptions(dataPlaneSettings, admission, {}), connection, logger).callAdmission, {
    maxPerKey: 12,
    maxPerSession: 3,
  });
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--max-in-flight-per-session', '0'], {}),
    /--max-in-flight-per-session: must be at least 1/,
  );

  assert.throws(
    () => readOptions(dataPlaneSettings, ['--sse-resume-window-seconds', '0'], {}),
    /--sse-resume-window-seconds: must be at least 1/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--sse-max-stream-seconds', '1.5'], {}),
    /--sse-max-stream-seconds: must be a whole number of seconds/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, [], { PORTCULLIS_SSE_MAX_STREAMS: 'many' }),
    /PORTCULLIS_SSE_MAX_STREAMS: must be a number of streams/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--sse-max-bytes-per-stream', '10'], {}),
    /--sse-max-bytes-per-stream: must be at least 1024/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--sse-max-events-per-stream', '0'], {}),
    /--sse-max-events-per-stream: must be at least 1/,
  );
  assert.throws(
    () => readOptions(dataPlaneSettings, ['--sse-retry-ms', '5'], {}),
    /--sse-retry-ms: must be at least 10/,
  );
  // What one flag alone cannot say: agents must be able to come back within the window; one stream must fit in the
  // total.
  assert.throws(
    () =>
      dataPlaneOptions(
        readOptions(dataPlaneSettings, ['--sse-retry-ms', '2000', '--sse-resume-window-seconds', '2'], {}),
        connection,
        logger,
      ),
    /--sse-retry-ms \(2000\) must be below --sse-resume-window-seconds \(2 s\)/,
  );
  assert.throws(
    () =>
      dataPlaneOptions(
        readOptions(dataPlaneSettings, ['--sse-max-bytes', '2048', '--sse-max-bytes-per-stream', '4096'], {}),
        connection,
        logger,
      ),
    /--sse-max-bytes \(2048\) must be at least --sse-max-bytes-per-stream \(4096\)/,
  );
});

test('--help of data-plane and dev lists the SSE settings with their variables and defaults', async () => {
  const { dataPlaneHelp } = await import('../../cli/src/commands/data-plane.ts');
  const { devHelp } = await import('../../cli/src/commands/dev.ts');
  for (const help of [dataPlaneHelp, devHelp]) {
    assert.match(
      help,
      /--sse-resume-window-seconds <value>.*\[env PORTCULLIS_SSE_RESUME_WINDOW_SECONDS\] \(default: 30\)/,
    );
    assert.match(
      help,
      /--sse-max-stream-seconds <value>.*SEP-1699.*\[env PORTCULLIS_SSE_MAX_STREAM_SECONDS\] \(default: off\)/,
    );
    assert.match(help, /--sse-retry-ms <value>.*\[env PORTCULLIS_SSE_RETRY_MS\] \(default: 1000\)/);
    for (const env of [
      'PORTCULLIS_SSE_MAX_EVENTS_PER_STREAM',
      'PORTCULLIS_SSE_MAX_BYTES_PER_STREAM',
      'PORTCULLIS_SSE_MAX_STREAMS',
      'PORTCULLIS_SSE_MAX_BYTES',
    ])
      assert.match(help, new RegExp(`\\[env ${env}\\]`));
  }
});
