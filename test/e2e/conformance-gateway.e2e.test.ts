/**
 * The official MCP conformance suite pointed at the gateway (`portcullis dev`, anonymous access mapped
 * to one virtual key, names unprefixed) with the conformance upstream behind it, over Streamable HTTP
 * and over stdio: the gating (active) suites of both eras must pass with the same counts as against
 * the upstream directly (test/e2e/conformance-direct.e2e.test.ts pins those). `npm run conformance`
 * prints the whole comparison, draft and pending suites included.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GATEWAY_UNPREFIXED_UPSTREAM_INPUT,
  SUITES,
  SUITE_COUNTS,
  conformanceFixtureStdioCommand,
  runSuite,
  startConformanceFixtureHttp,
  startConformanceGateway,
  type SuiteRun,
} from '../support/conformance.ts';

function describeFailures(run: SuiteRun): string {
  return run.failures.map((f) => `${f.scenario} ${f.id}: ${f.message}`).join('\n') || run.output.slice(-3000);
}

for (const transport of ['STREAMABLE_HTTP', 'STDIO'] as const) {
  describe(`the MCP conformance suite through the gateway, upstream over ${transport}`, () => {
    const stops: (() => Promise<unknown>)[] = [];
    let url: Promise<string> | undefined;
    after(async () => {
      for (const stop of stops.reverse()) await stop();
    });

    /** One gateway for the file's suites, started on first use. */
    function gateway(): Promise<string> {
      url ??= (async () => {
        let upstream: Record<string, unknown>;
        if (transport === 'STREAMABLE_HTTP') {
          const fixture = await startConformanceFixtureHttp();
          stops.push(() => fixture.process.stop());
          upstream = { name: 'conformance', transport, url: fixture.url, ...GATEWAY_UNPREFIXED_UPSTREAM_INPUT };
        } else {
          const { command, args } = conformanceFixtureStdioCommand();
          upstream = { name: 'conformance', transport, command, args, ...GATEWAY_UNPREFIXED_UPSTREAM_INPUT };
        }
        const started = await startConformanceGateway(upstream);
        stops.push(() => started.stop());
        return started.mcpUrl;
      })();
      return url;
    }

    for (const suite of SUITES.filter((s) => s.gating)) {
      test(`${suite.name}: every scenario passes, with the counts of the direct run`, async () => {
        const run = await runSuite(await gateway(), suite);
        const expected = SUITE_COUNTS[suite.name]!;
        assert.equal(run.failed, 0, describeFailures(run));
        assert.equal(run.exitCode, 0, run.output.slice(-3000));
        assert.equal(run.scenarios.length, expected.scenarios, `scenario count for ${suite.name}`);
        assert.equal(run.passed, expected.passed, `passed checks for ${suite.name} (direct: ${expected.passed})`);
      });
    }
  });
}
