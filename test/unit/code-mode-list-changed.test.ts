import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { DEFAULT_SANDBOX_POOL, SandboxPool } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import { Transport, UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { sessionKey, testKey, listenGateway, virtualKeyConfig } from '../support/mcp-server-harness.ts';
import { legacyAgent } from '../support/protocol-agents.ts';
import { eventually } from '../support/eventually.ts';

const sandbox = new SandboxPool({ ...DEFAULT_SANDBOX_POOL, workers: 1 });
after(() => sandbox.close());

const key = testKey('k1', ['*']);
const signing = sessionKey('s1');

function config(version: string, codeMode: boolean): AppliedConfig {
  return AppliedConfig.fromSnapshot({
    version,
    upstreams: [
      UpstreamConfig.fromPartial({
        id: 'u1',
        name: 'up',
        transport: Transport.TRANSPORT_STDIO,
        command: 'x',
        codeMode,
      }),
    ],
    virtualKeys: [virtualKeyConfig(key)],
    sessionKeys: [signing],
    executionPolicies: [],
  });
}

test(`switching an upstream into code mode sends tools/list_changed to the streams of keys that inherit \
it`, async () => {
  let current = config('1', false);
  const { gateway: server, url } = await listenGateway({
    getConfig: () => current,
    upstreams: new MemoryToolRouter([{ upstream: 'up', name: 'echo' }]),
    sandbox,
  });
  try {
    const { client } = await legacyAgent(url, key.secret);
    let wake: (() => void) | undefined;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => wake?.());
    const changed = (what: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no list_changed after ${what}`)), 5000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    await eventually('the client to open its GET stream', () => server.notificationStreamCount > 0, 2_000);
    assert.equal(server.notificationStreamCount, 1, 'the client opened its GET stream');
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['up__echo'],
    );

    let arrived = changed('code mode on');
    current = config('2', true);
    server.configChanged();
    await arrived;
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['search_tools', 'list_tool_files', 'read_tool_file', 'run_script'],
    );

    arrived = changed('code mode off');
    current = config('3', false);
    server.configChanged();
    await arrived;
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['up__echo'],
    );
    await client.close();
  } finally {
    await server.close();
  }
});
