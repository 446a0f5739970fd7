import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDataPlane, type DataPlane } from '../../data-plane/src/index.ts';
import { TEST_DATABASE_URL } from '../support/database.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { INITIALIZE, accepts, postMcp } from '../support/gateway.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Faults finding of issue 12: a database outage cut every node's config stream (a failed write
 * while greeting a node or storing its report or ACK ended the stream), so ended sessions and
 * node-to-node relays stopped during the outage: a session DELETEd on one node still worked on the
 * others for 22 s.
 */

const PING = { jsonrpc: '2.0', id: 2, method: 'ping' };

/** In this process, not the environment's node processes: the test stops and starts node B in the outage. */
function startNode(plane: TestEnv, nodeId: string): Promise<DataPlane> {
  return startDataPlane({
    controlPlaneAddress: plane.grpcAddress,
    nodeToken: plane.nodeToken,
    nodeId,
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024 * 1024,
    snapshotCache: undefined,
    upstreamConnectTimeoutMs: 10_000,
    upstreamCallTimeoutMs: 10_000,
    logger: testLogger(),
  });
}

describe("a database outage cuts every node's config stream", () => {
  let proxy: FaultProxy;
  let plane: TestEnv;
  let nodeA: DataPlane | undefined;
  let nodeB: DataPlane | undefined;
  let secret: string;

  before(async () => {
    proxy = await FaultProxy.start({ host: '127.0.0.1', port: Number(new URL(TEST_DATABASE_URL).port || 5432) });
    plane = await startTestEnv({
      schemaPrefix: 'db_outage',
      controlPlane: 'in-process',
      overrides: {
        databaseUrl: proxy.urlFor(TEST_DATABASE_URL),
        databaseConnectTimeoutMs: 1_000,
        databaseStatementTimeoutMs: 2_000,
      },
    });
    nodeA = await startNode(plane, 'node-a');
    nodeB = await startNode(plane, 'node-b');
    secret = (await plane.createKey({ name: 'agent', allowedTools: ['*'] })).secret;
    await eventually(
      'the key reached both nodes',
      async () => (await accepts(nodeA!.mcpUrl, secret)) && (await accepts(nodeB!.mcpUrl, secret)),
      10_000,
    );
  });

  after(async () => {
    await Promise.allSettled([nodeA?.close(), nodeB?.close()]);
    await plane?.dispose();
    await proxy?.close();
  });

  test('a node greeted in the outage gets the last snapshot; a session ended on another node stops on it', async () => {
    proxy.cut();
    // A node (re)connecting while the database is down: its hello used to end its stream.
    await nodeB!.close();
    nodeB = await startNode(plane, 'node-b');
    assert.equal(await nodeB.whenConfigured(10_000), true, 'node B got the configuration without the database');
    assert.ok(await accepts(nodeB.mcpUrl, secret));

    const initialized = await postMcp(nodeA!.mcpUrl, INITIALIZE, { authorization: `Bearer ${secret}` });
    await initialized.body?.cancel();
    const sessionId = initialized.headers.get('mcp-session-id');
    assert.ok(sessionId);
    const headers = { authorization: `Bearer ${secret}`, 'mcp-session-id': sessionId };
    const served = await postMcp(nodeB.mcpUrl, PING, headers);
    await served.body?.cancel();
    assert.equal(served.status, 200, 'node B serves the session before the DELETE');

    const deleted = await fetch(nodeA!.mcpUrl, { method: 'DELETE', headers });
    await deleted.body?.cancel();
    assert.ok(deleted.status < 300, `DELETE answered ${deleted.status}`);
    const tookSince = Date.now();
    await eventually(
      'node B refuses the ended session during the outage',
      async () => {
        const response = await postMcp(nodeB!.mcpUrl, PING, headers);
        await response.body?.cancel();
        return response.status === 404;
      },
      2_000,
    );
    const took = Date.now() - tookSince;
    console.log(`ended session refused by the other node ${took} ms after the DELETE, database down`);

    // The writes that waited (the ended session, node B's connection) are made once it is back.
    proxy.restore();
    await eventually(
      'the ended session was written after the outage',
      async () => (await plane.schema.query(`SELECT 1 FROM ended_sessions`)).length === 1,
      15_000,
    );
    await eventually(
      'node B is recorded as connected',
      async () => {
        const rows = await plane.schema.query<{ connected: boolean }>(
          `SELECT connected FROM data_plane_nodes WHERE id = 'node-b'`,
        );
        return rows[0]?.connected === true;
      },
      15_000,
    );
  });
});
