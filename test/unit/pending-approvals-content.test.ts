import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../common/src/index.ts';
import { PendingApprovals } from '../../data-plane/src/approvals/pending-approvals.ts';
import { AuditContent, type AuditContentOptions } from '../../data-plane/src/audit/audit-content.ts';
import type { Operation } from '../../data-plane/src/pipeline/operation.ts';
import { AllowList } from '../../data-plane/src/policy/allow-list.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';
import type { ApprovalRequest } from '../../proto/gen/portcullis/v1/config.ts';

const ARGS = { text: 'the secret plan' };

/** Holds one call by key `k1` to `everything__echo` and returns the approval request the node sent. */
async function requestSent(content: AuditContentOptions | undefined): Promise<ApprovalRequest> {
  const sent: ApprovalRequest[] = [];
  const approvals = new PendingApprovals({
    link: { request: (r) => sent.push(r) > 0, withdraw: () => {} },
    logger: createLogger({ level: 'silent' }),
    ...(content === undefined ? {} : { content: new AuditContent(content) }),
  });
  const operation: Operation = {
    id: 1,
    method: 'tools/call',
    params: { name: 'everything__echo', arguments: ARGS },
    principal: { keyId: 'k1', keyName: 'k1', teamId: 't1', allowList: new AllowList(['*']) },
    sessionKeys: [],
    cancellation: signalCancellation(new AbortController().signal),
    receivedAt: performance.now(),
  };
  const held = approvals.hold({
    operation,
    tool: 'everything__echo',
    upstream: 'everything',
    arguments: ARGS,
    decision: { verdict: 'approve', approvalTimeoutMs: 60_000 },
  });
  const request = sent[0];
  assert.ok(request, 'the held call was sent for approval');
  approvals.decided({ id: request.id, approved: true, decidedBy: 'op', reason: '', decidedAtMs: 0 });
  assert.equal(await held, undefined);
  return request;
}

describe('approval requests and the audit content switches', () => {
  it('carries the arguments when content logging is on (and when no switches are given)', async () => {
    assert.deepEqual(JSON.parse((await requestSent({})).argumentsJson), ARGS);
    assert.deepEqual(JSON.parse((await requestSent(undefined)).argumentsJson), ARGS);
  });

  for (const [what, content] of [
    ['globally', { enabled: false }],
    ['for the upstream', { offForUpstreams: ['everything'] }],
    ['for the key', { offForKeys: ['k1'] }],
  ] as const) {
    it(`sends {} instead of the arguments when content logging is off ${what}`, async () => {
      const request = await requestSent(content);
      assert.equal(request.argumentsJson, '{}');
      assert.equal(request.tool, 'everything__echo');
    });
  }

  it('keeps the arguments for other keys and upstreams', async () => {
    const request = await requestSent({ offForKeys: ['k2'], offForUpstreams: ['other'] });
    assert.deepEqual(JSON.parse(request.argumentsJson), ARGS);
  });
});
