// Issue 14's bench measures recording on vs off in one run: `--audit off` starts a node without a recorder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../common/src/index.ts';
import { readOptions } from '../../cli/src/options.ts';
import { dataPlaneOptions, dataPlaneSettings } from '../../cli/src/commands/settings.ts';

const logger = createLogger({ level: 'silent' });
const connection = { controlPlaneAddress: '127.0.0.1:4001', nodeToken: 'x'.repeat(16) };

test('the audit trail is on by default; --audit off (or PORTCULLIS_AUDIT=off) leaves the recorder out', () => {
  const on = dataPlaneOptions(readOptions(dataPlaneSettings, [], {}), connection, logger);
  assert.equal(on.audit?.whenFull, 'refuse');
  const off = dataPlaneOptions(readOptions(dataPlaneSettings, ['--audit', 'off'], {}), connection, logger);
  assert.equal(off.audit, undefined);
  const fromEnv = dataPlaneOptions(readOptions(dataPlaneSettings, [], { PORTCULLIS_AUDIT: 'off' }), connection, logger);
  assert.equal(fromEnv.audit, undefined);
  assert.throws(() => readOptions(dataPlaneSettings, ['--audit', 'no'], {}), /--audit: must be "on" or "off"/);
});
