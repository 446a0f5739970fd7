import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldAnswer, type FoldedAnswer } from '../../control-plane/src/grpc/ack-batcher.ts';

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
