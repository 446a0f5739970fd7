import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApprovalVia,
  ExecutionPolicy,
  type ExecutionPolicyRule,
  Transport,
  UpstreamConfig,
} from '../../proto/gen/portcullis/v1/config.ts';
import { ExecutionPolicies } from '../../data-plane/src/policy/execution-policy.ts';

const { EXECUTION_POLICY_AUTO: AUTO, EXECUTION_POLICY_APPROVE: APPROVE, EXECUTION_POLICY_DENY: DENY } = ExecutionPolicy;

function upstream(id: string, name: string, exposeUnprefixed = false): UpstreamConfig {
  return UpstreamConfig.fromPartial({ id, name, transport: Transport.TRANSPORT_STDIO, command: 'x', exposeUnprefixed });
}

function rule(fields: Partial<ExecutionPolicyRule>): ExecutionPolicyRule {
  return {
    upstreamId: '',
    teamId: '',
    keyId: '',
    tool: '*',
    policy: AUTO,
    argument: '',
    pattern: '',
    approvalTimeoutMs: 0,
    approvalVia: ApprovalVia.APPROVAL_VIA_UNSPECIFIED,
    ...fields,
  };
}

const UPSTREAMS = [upstream('u1', 'fs'), upstream('u2', 'plain', true)];

test('no rules: every call is auto and nothing is denied', () => {
  const policies = ExecutionPolicies.of([], UPSTREAMS);
  assert.ok(policies.empty);
  assert.equal(policies.decide('k', undefined, 'fs__read', 'fs', {}).verdict, 'auto');
});

test('the strictest of upstream, team and key rules wins; AUTO never relaxes a stricter rule', () => {
  const policies = ExecutionPolicies.of(
    [
      rule({ upstreamId: 'u1', tool: 'write', policy: APPROVE }),
      rule({ teamId: 't1', tool: 'fs__*', policy: AUTO }),
      rule({ keyId: 'k2', tool: 'fs__write', policy: DENY }),
    ],
    UPSTREAMS,
  );
  assert.equal(policies.decide('k1', 't1', 'fs__write', 'fs', {}).verdict, 'approve');
  assert.equal(policies.decide('k2', 't1', 'fs__write', 'fs', {}).verdict, 'deny');
  assert.equal(policies.decide('k1', 't1', 'fs__read', 'fs', {}).verdict, 'auto');
  assert.ok(policies.denies('k2', undefined, 'fs__write', 'fs'));
  assert.ok(!policies.denies('k1', 't1', 'fs__write', 'fs'), 'approve is not a denial');
});

test('upstream rules name the upstream’s own tool, exposed prefixed or not; "*" is its default', () => {
  const policies = ExecutionPolicies.of(
    [rule({ upstreamId: 'u2', tool: 'run', policy: DENY }), rule({ upstreamId: 'u1', tool: '*', policy: APPROVE })],
    UPSTREAMS,
  );
  assert.ok(policies.denies('k', undefined, 'run', 'plain'));
  assert.ok(!policies.denies('k', undefined, 'plain__run', 'plain'));
  assert.equal(policies.decide('k', undefined, 'fs__anything', 'fs', {}).verdict, 'approve');
  assert.equal(policies.decide('k', undefined, 'other', 'plain', {}).verdict, 'auto');
});

test('an APPROVE condition applies only when the argument matches; the shortest timeout of the approvals wins', () => {
  const policies = ExecutionPolicies.of(
    [
      rule({
        upstreamId: 'u1',
        tool: 'write',
        policy: APPROVE,
        argument: 'path',
        pattern: '^/etc/',
        approvalTimeoutMs: 60_000,
      }),
      rule({
        keyId: 'k',
        tool: 'fs__write',
        policy: APPROVE,
        argument: 'path',
        pattern: 'passwd',
        approvalTimeoutMs: 5_000,
      }),
    ],
    UPSTREAMS,
  );
  assert.equal(policies.decide('k', undefined, 'fs__write', 'fs', { path: '/tmp/x' }).verdict, 'auto');
  assert.equal(policies.decide('k', undefined, 'fs__write', 'fs', {}).verdict, 'auto');
  const one = policies.decide('k', undefined, 'fs__write', 'fs', { path: '/etc/hosts' });
  assert.deepEqual(one, {
    verdict: 'approve',
    approvalTimeoutMs: 60_000,
    because: 'argument "path" matches /^\\/etc\\//',
  });
  assert.equal(policies.decide('k', undefined, 'fs__write', 'fs', { path: '/etc/passwd' }).approvalTimeoutMs, 5_000);
  // A non-string argument is matched as its JSON text.
  const json = ExecutionPolicies.of(
    [rule({ keyId: 'k', tool: '*', policy: APPROVE, argument: 'n', pattern: '^[0-9]{4,}$' })],
    UPSTREAMS,
  );
  assert.equal(json.decide('k', undefined, 'fs__x', 'fs', { n: 12345 }).verdict, 'approve');
  assert.equal(json.decide('k', undefined, 'fs__x', 'fs', { n: 12 }).verdict, 'auto');
});

test('malformed rules are refused naming the rule', () => {
  assert.throws(
    () => ExecutionPolicies.of([rule({ keyId: 'k', policy: DENY, argument: 'a', pattern: 'b' })], UPSTREAMS),
    /execution_policies\.0: only an APPROVE rule may have a condition/,
  );
  assert.throws(
    () => ExecutionPolicies.of([rule({ keyId: 'k', teamId: 't', policy: DENY })], UPSTREAMS),
    /exactly one of upstream_id, team_id and key_id/,
  );
  assert.throws(
    () => ExecutionPolicies.of([rule({ keyId: 'k', policy: APPROVE, argument: 'a', pattern: '(' })], UPSTREAMS),
    /pattern is not a valid regular expression/,
  );
});

test('approvalVia: a CLIENT rule asks the client; where an OPERATOR rule also applies, the operator decides', () => {
  const CLIENT = ApprovalVia.APPROVAL_VIA_CLIENT;
  const policies = ExecutionPolicies.of(
    [
      rule({ upstreamId: 'u1', tool: '*', policy: APPROVE, approvalVia: CLIENT }),
      rule({ keyId: 'strict', tool: 'fs__write', policy: APPROVE }),
      rule({ keyId: 'also-client', tool: 'fs__write', policy: APPROVE, approvalVia: CLIENT }),
    ],
    UPSTREAMS,
  );
  assert.equal(policies.decide('k', undefined, 'fs__write', 'fs', {}).viaClient, true);
  assert.equal(policies.decide('also-client', undefined, 'fs__write', 'fs', {}).viaClient, true);
  const strict = policies.decide('strict', undefined, 'fs__write', 'fs', {});
  assert.equal(strict.verdict, 'approve');
  assert.equal(strict.viaClient, undefined);
});
