/**
 * The conformance upstream (test/fixtures/conformance-server) against the official MCP conformance suite,
 * with no gateway in between: the baseline `npm run conformance` measures the gateway against. The full
 * suites take a few seconds, so they run whole. Also checks the fixture's stdio entry in both eras.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as StdioV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { firstText } from '../support/agents.ts';
import {
  SUITES,
  SUITE_COUNTS,
  conformanceFixtureStdioCommand,
  runSuite,
  startConformanceFixtureHttp,
  type SuiteRun,
} from '../support/conformance.ts';
import type { RunningProcess } from '../support/processes.ts';

const EXPECTED = SUITE_COUNTS;

function describeFailures(run: SuiteRun): string {
  return run.failures.map((f) => `${f.scenario} ${f.id}: ${f.message}`).join('\n') || run.output.slice(-3000);
}

describe('the conformance upstream passes the MCP conformance suite directly', () => {
  let fixture: { process: RunningProcess; url: string };

  before(async () => {
    fixture = await startConformanceFixtureHttp();
  });

  after(async () => {
    await fixture?.process.stop();
  });

  for (const suite of SUITES.filter((s) => s.name in EXPECTED)) {
    test(`${suite.name}: every scenario passes`, async () => {
      const run = await runSuite(fixture.url, suite);
      const expected = EXPECTED[suite.name]!;
      assert.equal(run.failed, 0, describeFailures(run));
      assert.equal(run.exitCode, 0, run.output.slice(-3000));
      assert.equal(run.scenarios.length, expected.scenarios, `scenario count for ${suite.name}`);
      assert.equal(run.passed, expected.passed, `passed checks for ${suite.name}`);
    });
  }

  test('pending: only the tasks extension (not in the SDK) fails', async () => {
    const run = await runSuite(fixture.url, SUITES.find((s) => s.name === 'pending')!);
    const failing = run.scenarios.filter((s) => s.failed > 0).map((s) => s.scenario);
    assert.ok(run.scenarios.length > 0, run.output.slice(-3000));
    assert.deepEqual(
      failing.filter((name) => !name.startsWith('tasks-')),
      [],
      describeFailures(run),
    );
    for (const name of [
      'json-schema-2020-12',
      'server-sse-polling',
      'http-header-validation',
      'http-custom-header-server-validation',
    ]) {
      assert.ok(
        run.scenarios.some((s) => s.scenario === name && s.failed === 0 && s.passed > 0),
        `${name} passes`,
      );
    }
  });
});

describe('the conformance upstream over stdio', () => {
  test('a 2025-era client: tools, a resource subscription with an update, sampling relayed to the client', async () => {
    const { command, args } = conformanceFixtureStdioCommand();
    const client = new ClientV1({ name: 'stdio-2025', version: '1' }, { capabilities: { sampling: {} } });
    client.setRequestHandler(
      (await import('@modelcontextprotocol/sdk/types.js')).CreateMessageRequestSchema,
      async () => ({
        role: 'assistant',
        content: { type: 'text', text: 'sampled' },
        model: 'test-model',
      }),
    );
    await client.connect(new StdioV1({ command, args, stderr: 'pipe' }));
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(
        tools.includes('test_simple_text') && tools.includes('test_input_required_result_elicitation'),
        tools.join(', '),
      );
      assert.equal(
        firstText(await client.callTool({ name: 'test_simple_text', arguments: {} })),
        'This is a simple text response for testing.',
      );
      assert.equal(
        firstText(await client.callTool({ name: 'test_sampling', arguments: { prompt: 'hi' } })),
        'LLM response: sampled',
      );

      const updated = new Promise<string>((resolve) =>
        client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => resolve(n.params.uri)),
      );
      await client.subscribeResource({ uri: 'test://watched-resource' });
      assert.equal(await updated, 'test://watched-resource');
    } finally {
      await client.close();
    }
  });

  test('a 2026-07-28 client: lists and calls tools', async () => {
    const { command, args } = conformanceFixtureStdioCommand();
    const client = new ClientV2(
      { name: 'stdio-2026', version: '1' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await client.connect(new StdioV2({ command, args, stderr: 'pipe' }));
    try {
      assert.equal(
        firstText(await client.callTool({ name: 'test_simple_text', arguments: {} })),
        'This is a simple text response for testing.',
      );
      const tools = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(tools.includes('test_input_required_result_multi_round'), tools.join(', '));
    } finally {
      await client.close();
    }
  });
});
