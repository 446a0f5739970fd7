// How the control plane stores nodes' answers (ACK/NACK): batched in one write per burst, without
// holding up the rest of a node's stream, and never lost when the control plane stops.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ACK_WINDOW_MS, AckBatcher } from '../../control-plane/src/grpc/ack-batcher.ts';
import { NodeService } from '../../control-plane/src/services/nodes.ts';
import { startTestEnv, useTestEnv, type TestEnv } from '../support/test-env.ts';
import { TestNode, testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

const NODES = 16;
/** The rows of these tests' nodes are inserted before the batcher writes to them. */
const rowsExist = async (): Promise<void> => {};

describe('storing node answers', () => {
  let env: TestEnv;
  let nodes: NodeService;

  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'acks', controlPlane: 'none' });
    nodes = new NodeService(await env.openDatabase());
    for (let i = 0; i < NODES; i++)
      await nodes.connected({ nodeId: `n${i}`, softwareVersion: 'test', mcpUrl: '', appliedVersion: '' }, randomUUID());
  });
  after(async () => {
    await env?.dispose();
  });

  const applied = async () =>
    (
      await env.schema.query<{ id: string; applied_version: string | null }>(
        `SELECT id, applied_version FROM data_plane_nodes ORDER BY id`,
      )
    ).map((row) => row.applied_version);

  it('stores the answers of a revision arriving one by one over a few ms in one write', async () => {
    const writes: number[] = [];
    // A window wider than the default, so that a busy test machine still delivers the burst inside it.
    const windowMs = 40 * ACK_WINDOW_MS;
    let stored!: () => void;
    const written = new Promise<void>((resolve) => (stored = resolve));
    const recordAnswers = async (answers: Parameters<NodeService['recordAnswers']>[0]) => {
      writes.push(answers.length);
      await nodes.recordAnswers(answers);
      stored();
    };
    const batcher = new AckBatcher({ recordAnswers }, testLogger(), rowsExist, windowMs);
    const started = performance.now();
    // As sixteen nodes answer: one every ms or so, each after the previous write could have finished.
    for (let i = 0; i < NODES; i++) {
      batcher.record(`n${i}`, '7', true, '');
      await sleep(1); // the spacing of the answers is what this test is about
    }
    assert.ok(performance.now() - started < windowMs, 'the answers arrived within the window');
    await written;
    assert.deepEqual(writes, [NODES], 'one write for the whole burst');
    assert.deepEqual(await applied(), Array(NODES).fill('7'));
  });

  it('writes what waits in its window at once when flushed', async () => {
    const batcher = new AckBatcher(nodes, testLogger(), rowsExist, 60_000);
    batcher.record('n3', '8', true, '');
    const started = performance.now();
    await batcher.flush();
    assert.ok(performance.now() - started < 5_000, 'flush did not wait for the window');
    const [row] = await env.schema.query<{ applied_version: string | null }>(
      `SELECT applied_version FROM data_plane_nodes WHERE id = 'n3'`,
    );
    assert.equal(row?.applied_version, '8');
  });
});

describe("a node's stream while its ACK waits to be stored", () => {
  let env: TestEnv;

  // A window far longer than the test: the ACK is only stored by the flush at shutdown.
  useTestEnv(
    {
      schemaPrefix: 'acks_stream',
      controlPlane: 'in-process',
      overrides: { ackWindowMs: 60_000 },
    },
    (started) => (env = started),
  );

  it("relays the node's next message at once, and stores the ACK when the control plane stops", async () => {
    const sender = new TestNode(env.grpcAddress, env.nodeToken);
    const receiver = new TestNode(env.grpcAddress, env.nodeToken);
    let version = '';
    try {
      receiver.hello('receiver', { nodeTag: 'rcv' });
      await receiver.snapshot();
      sender.hello('sender', { nodeTag: 'snd' });
      version = (await sender.snapshot()).version;
      sender.ack(version);
      sender.send({
        kind: {
          $case: 'relay',
          value: {
            toNodeTag: '',
            fromNodeId: '',
            fromNodeTag: '',
            keyId: 'k1',
            sessionId: 's1',
            kind: { $case: 'cancel', value: { requestIdJson: '1', reason: 'test' } },
          },
        },
      });
      const relayed = await eventually(
        'the relayed cancel',
        () => receiver.received.find((message) => message.kind?.$case === 'relay'),
        5_000,
      );
      assert.equal(relayed.kind?.$case === 'relay' && relayed.kind.value.fromNodeId, 'sender');
      // The hello is recorded in the background: on a busy machine its row can come after the relay.
      const row = await eventually(
        "the sender's row",
        async () =>
          (
            await env.schema.query<{ applied_version: string | null }>(
              `SELECT applied_version FROM data_plane_nodes WHERE id = 'sender'`,
            )
          )[0],
        5_000,
      );
      assert.equal(row.applied_version, null, 'the ACK still waits in its window');
    } finally {
      sender.close();
      receiver.close();
      await env.plane!.close();
    }
    const [stored] = await env.schema.query<{ applied_version: string | null }>(
      `SELECT applied_version FROM data_plane_nodes WHERE id = 'sender'`,
    );
    assert.equal(stored?.applied_version, version, 'the ACK was stored when the control plane stopped');
  });
});
