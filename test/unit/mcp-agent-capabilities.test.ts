import { test } from 'node:test';
import assert from 'node:assert/strict';
import { askIfDeclared, undeclaredCapability } from '../../data-plane/src/mcp/agent-capabilities.ts';
import { UpstreamRpcError } from '../../data-plane/src/upstream/upstream-rpc-error.ts';

test(`DN-SERVER-REQUEST-CAPABILITY: each server-to-client request needs its capability; URL elicitation needs \
elicitation.url; unknown capabilities let all through`, () => {
  const roots = { method: 'roots/list' };
  const sampling = { method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } };
  const form = {
    method: 'elicitation/create',
    params: { message: 'name?', requestedSchema: { type: 'object', properties: {} } },
  };
  const url = {
    method: 'elicitation/create',
    params: { mode: 'url', message: 'sign in', url: 'https://example.test', elicitationId: 'e1' },
  };
  assert.equal(undeclaredCapability({}, roots), 'roots');
  assert.equal(undeclaredCapability({ roots: {} }, roots), undefined);
  assert.equal(undeclaredCapability({ roots: true }, roots), 'roots', 'a capability is an object');
  assert.equal(undeclaredCapability({ elicitation: {} }, sampling), 'sampling');
  assert.equal(undeclaredCapability({ elicitation: {} }, form), undefined);
  assert.equal(undeclaredCapability({ elicitation: {} }, url), 'elicitation.url');
  assert.equal(undeclaredCapability({ elicitation: { url: {} } }, url), undefined);
  assert.equal(undeclaredCapability(null, form), 'elicitation');
  assert.equal(undeclaredCapability(undefined, roots), undefined, 'a session that has not said is asked');
  assert.equal(undeclaredCapability({}, { method: 'ping' }), undefined, 'requests needing no capability pass');
});

test(`DN-SERVER-REQUEST-CAPABILITY: a request ruled out is answered -32601 without asking; others are \
asked`, async () => {
  const asked: string[] = [];
  const agent = async (request: { method: string }) => {
    asked.push(request.method);
    return { ok: true };
  };
  const ask = (request: { method: string }) => askIfDeclared({ sampling: {} }, request, agent);
  assert.deepEqual(await ask({ method: 'sampling/createMessage' }), { ok: true });
  await assert.rejects(
    ask({ method: 'roots/list' }),
    (error: unknown) =>
      error instanceof UpstreamRpcError &&
      error.code === -32601 &&
      /did not declare the roots capability/.test(error.message),
  );
  assert.deepEqual(asked, ['sampling/createMessage']);
});
