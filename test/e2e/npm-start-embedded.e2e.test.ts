import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectLegacyAgent, connectModernAgent, firstText } from '../support/agents.ts';
import { accepts } from '../support/gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, graphqlOk } from '../support/graphql.ts';
import { EVERYTHING_SERVER, freePort, startDev, type RunningProcess } from '../support/processes.ts';
import { eventually } from '../support/eventually.ts';

describe('npm start: both planes in one process on the embedded database', () => {
  let dataDir: string;
  let ports: { graphql: number; grpc: number; mcp: number };
  let running: { process: RunningProcess; adminToken: string } | undefined;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-dev-'));
    ports = { graphql: await freePort(), grpc: await freePort(), mcp: await freePort() };
  });

  after(async () => {
    await running?.process.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('prints the URLs and an admin token, registers, lists, calls, stops cleanly and keeps its data', async () => {
    running = await startDev(dataDir, ports);
    const log = running.process.log;
    assert.match(log, new RegExp(`MCP endpoint \\(agents\\):\\s+http://127\\.0\\.0\\.1:${ports.mcp}/mcp`));
    assert.match(log, new RegExp(`GraphQL API \\(admin\\):\\s+http://127\\.0\\.0\\.1:${ports.graphql}/graphql`));
    assert.match(log, /embedded PostgreSQL/);

    const gql = `http://127.0.0.1:${ports.graphql}/graphql`;
    const mcp = `http://127.0.0.1:${ports.mcp}/mcp`;
    await graphqlOk(gql, running.adminToken, CREATE_UPSTREAM, {
      input: { name: 'ev', transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] },
    });
    const created = await graphqlOk<{ createVirtualKey: { secret: string } }>(gql, running.adminToken, CREATE_KEY, {
      input: { name: 'dev', allowedTools: ['ev__*'] },
    });
    const secret = created.createVirtualKey.secret;
    await eventually('the key reached the node', () => accepts(mcp, secret), 2_000);

    const { client } = await connectLegacyAgent(mcp, secret);
    try {
      await eventually('the stdio upstream is listed', async () =>
        (await client.listTools()).tools.some((t) => t.name === 'ev__echo'),
      );
      assert.equal(
        firstText(await client.callTool({ name: 'ev__echo', arguments: { message: 'embedded' } })),
        'Echo: embedded',
      );
    } finally {
      await client.close();
    }

    const firstToken = running.adminToken;
    assert.equal(await running.process.stop(), 0, 'Ctrl-C (SIGTERM) exits cleanly with 0');
    running = undefined;

    running = await startDev(dataDir, ports);
    assert.equal(running.adminToken, firstToken, 'the generated admin token is kept in the data dir');
    const agent = await connectModernAgent(mcp, secret);
    try {
      await eventually('the key and upstream survived the restart', async () =>
        (await agent.listTools()).tools.some((t) => t.name === 'ev__echo'),
      );
      assert.equal(
        firstText(await agent.callTool({ name: 'ev__echo', arguments: { message: 'again' } })),
        'Echo: again',
      );
    } finally {
      await agent.close();
    }
  });
});
