import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../common/src/index.ts';
import { AckBatcher, foldAnswer, type FoldedAnswer } from '../../control-plane/src/grpc/ack-batcher.ts';
import { NodeRecords } from '../../control-plane/src/grpc/node-records.ts';
import type { NodeHelloInfo } from '../../control-plane/src/services/nodes.ts';

/** Folds answers in order, as a batch does. */
function fold(answers: Array<[version: string, accepted: boolean, error?: string]>): FoldedAnswer | undefined {
  let folded: FoldedAnswer | undefined;
  for (const [version, accepted, error] of answers) folded = foldAnswer(folded, 'n1', version, accepted, error ?? '');
  return folded;
}

describe("folding a node's answers into one write", () => {
  it('leaves what answering one by one would have left', () => {
    assert.deepEqual(fold([['5', true]]), { nodeId: 'n1', appliedVersion: '5', lastError: null });
    assert.deepEqual(
      fold([
        ['5', true],
        ['6', true],
      ]),
      { nodeId: 'n1', appliedVersion: '6', lastError: null },
    );
    assert.deepEqual(
      fold([
        ['5', true],
        ['6', false, 'bad upstream'],
      ]),
      { nodeId: 'n1', appliedVersion: '5', lastError: 'version 6 refused: bad upstream' },
      'a refusal keeps the version accepted before it',
    );
    assert.deepEqual(
      fold([
        ['6', false, 'bad upstream'],
        ['7', true],
      ]),
      { nodeId: 'n1', appliedVersion: '7', lastError: null },
      'an acceptance clears the error',
    );
    assert.deepEqual(
      fold([['6', false]]),
      { nodeId: 'n1', appliedVersion: null, lastError: 'version 6 refused: no reason given' },
      'a refusal alone keeps the stored version',
    );
  });
});

describe("a node's answers and reports wait for its row", () => {
  /** A node service whose writes of a connection take `connectMs`, logging what reached the database. */
  function slowNodes(connectMs: number) {
    const written: string[] = [];
    const nodes = {
      connected: async (hello: NodeHelloInfo) => {
        await sleep(connectMs);
        written.push(`connected ${hello.nodeId}`);
      },
      disconnected: async (nodeId: string) => {
        written.push(`disconnected ${nodeId}`);
      },
      recordAnswers: async (answers: ReadonlyArray<{ nodeId: string }>) => {
        written.push(`answers ${answers.map((a) => a.nodeId).join(',')}`);
      },
    };
    return { nodes, written };
  }

  const hello = (nodeId: string) => ({ nodeId }) as NodeHelloInfo;

  it('writes an ACK only after the connection of its node, however slow that write is', async () => {
    const { nodes, written } = slowNodes(60);
    const logger = createLogger({ level: 'silent' });
    const records = new NodeRecords(nodes, async (nodeId) => written.push(`report ${nodeId}`), logger);
    const acks = new AckBatcher(nodes, logger, (ids) => records.presenceWritten(ids), 1);
    records.connected(hello('n1'), 'stream-1');
    acks.record('n1', '5', true, '');
    await records.report('n1', {} as Parameters<NodeRecords['report']>[1]);
    await acks.flush();
    await records.close();
    await acks.close();
    assert.deepEqual(written, ['connected n1', 'report n1', 'answers n1']);
  });
});
