import { createServer, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type OAuthClientProvider, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { importJWK, SignJWT, base64url } from 'jose';

type SigningKeyLike = Parameters<SignJWT['sign']>[0];
import { firstText } from '../support/agents.ts';
import {
  AuthorizationServer,
  CLIENT_ID,
  REDIRECT_URI,
  type SigningJwk,
  signIn,
  signingKey,
} from '../support/authorization-server.ts';
import { INITIALIZE, accepts, eventually, postMcp } from '../support/gateway.ts';
import { freePort, startEverythingHttp } from '../support/processes.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';

const SET_AUTHORIZATION = /* GraphQL */ `
  mutation ($input: McpAuthorizationInput) {
    setMcpAuthorization(input: $input) {
      resource metadataUrl identityProviders { issuer teams { claimValue team { name } } }
    }
  }
`;

/** The official SDK's OAuth client side, the browser's part done by `signIn` as `account`. */
class TestAgentAuth implements OAuthClientProvider {
  private saved: OAuthTokens | undefined;
  private verifier = '';
  code: string | undefined;

  constructor(private readonly account: string) {}

  get redirectUrl(): string {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: 'portcullis test agent',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp',
    };
  }
  clientInformation(): OAuthClientInformationMixed {
    return { client_id: CLIENT_ID };
  }
  tokens(): OAuthTokens | undefined {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }
  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.code = await signIn(authorizationUrl, this.account);
  }
  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }
  codeVerifier(): string {
    return this.verifier;
  }
}

/**
 * An HTTP hop in front of an upstream that records the Authorization header of every request the
 * gateway sends it (a real server-everything behind it answers).
 */
async function recordingHop(
  target: string,
): Promise<{ url: string; seen: (string | undefined)[]; close(): Promise<void> }> {
  const seen: (string | undefined)[] = [];
  const to = new URL(target);
  const hop = createServer((req, res) => {
    seen.push(req.headers.authorization);
    const forward = request(
      {
        host: to.hostname,
        port: to.port,
        path: to.pathname,
        method: req.method,
        headers: { ...req.headers, host: to.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => hop.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        hop.closeAllConnections();
        hop.close(() => resolve());
      }),
  };
}

/** Connects the SDK client as `account`: 401 → discovery → sign-in with PKCE → token → connected. */
async function signedInAgent(mcpUrl: string, account: string): Promise<{ client: Client; auth: TestAgentAuth }> {
  const auth = new TestAgentAuth(account);
  const first = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: auth });
  await assert.rejects(new Client({ name: 'agent', version: '1' }).connect(first), UnauthorizedError);
  assert.ok(auth.code, 'the agent was sent to the authorization server and came back with a code');
  await first.finishAuth(auth.code);
  const client = new Client({ name: 'agent', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: auth }));
  return { client, auth };
}

describe('MCP authorization: the gateway as an OAuth 2.1 protected resource', () => {
  let env: TestEnv;
  let as: AuthorizationServer;
  let k1: SigningJwk;
  let mcpUrl: string;
  const accounts = [
    { sub: 'alice', groups: ['engineering'] },
    { sub: 'bob', groups: ['sales'] },
  ];

  let teamId: string;
  let hop: Awaited<ReturnType<typeof recordingHop>>;
  /** No jwksUri: the node discovers it from the issuer's metadata. */
  const authorizationInput = (allowedTools: string[]) => ({
    resource: mcpUrl,
    identityProviders: [
      { issuer: as.issuer, teamClaim: 'groups', teams: [{ claimValue: 'engineering', teamId, allowedTools }] },
    ],
  });

  before(async () => {
    k1 = await signingKey('k1');
    as = await AuthorizationServer.start({ keys: [k1], accounts });
    env = await startTestEnv({
      nodes: [{ id: 'node-a', args: ['--jwks-refresh-cooldown-ms', '0'] }],
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'classic', allowedTools: ['ev__get-sum'] }],
    });
    env.defer(() => as.stop());
    const everything = await startEverythingHttp();
    env.defer(() => everything.process.stop());
    hop = await recordingHop(everything.url);
    env.defer(() => hop.close());
    await env.createUpstream({ name: 'evh', transport: 'STREAMABLE_HTTP', url: hop.url });
    mcpUrl = env.node('node-a').mcpUrl;
    const team = await env.gqlOk<{ createTeam: { id: string } }>(
      'mutation { createTeam(input: { name: "engineering" }) { id } }',
    );
    teamId = team.createTeam.id;
    const set = await env.gqlOk<{ setMcpAuthorization: { metadataUrl: string } }>(SET_AUTHORIZATION, {
      input: authorizationInput(['ev__echo', 'evh__echo']),
    });
    assert.equal(
      set.setMcpAuthorization.metadataUrl,
      new URL('/.well-known/oauth-protected-resource/mcp', mcpUrl).href,
    );
    await eventually('the node serves the resource metadata', async () => {
      const response = await fetch(new URL('/.well-known/oauth-protected-resource/mcp', mcpUrl));
      await response.body?.cancel();
      return response.status === 200;
    });
  });

  after(async () => {
    await env?.dispose();
  });

  test('the metadata names the resource and the authorization server, at both well-known URLs', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const response = await fetch(new URL(path, mcpUrl));
      assert.equal(response.status, 200, path);
      const metadata = (await response.json()) as Record<string, unknown>;
      assert.equal(metadata['resource'], mcpUrl);
      assert.deepEqual(metadata['authorization_servers'], [as.issuer]);
    }
  });

  test('no credentials: 401 whose challenge points at the resource metadata', async () => {
    const response = await postMcp(mcpUrl, INITIALIZE);
    await response.body?.cancel();
    assert.equal(response.status, 401);
    assert.equal(
      response.headers.get('www-authenticate'),
      `Bearer resource_metadata="${new URL('/.well-known/oauth-protected-resource/mcp', mcpUrl).href}"`,
    );
  });

  test('the SDK signs alice in (discovery, code + PKCE, token) and calls only what her team may', async () => {
    const { client, auth } = await signedInAgent(mcpUrl, 'alice');
    try {
      const token = auth.tokens()?.access_token ?? '';
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      assert.equal(claims['aud'], mcpUrl, 'the token was issued for the gateway as resource');
      // The upstreams may still be connecting: wait for their catalogs, then only the echo tools are visible.
      let names: string[] = [];
      await eventually('the upstream catalogs reach the signed-in agent', async () => {
        names = (await client.listTools()).tools.map((t) => t.name).sort();
        return names.length > 1;
      });
      assert.deepEqual(names, ['ev__echo', 'evh__echo']);
      assert.equal(firstText(await client.callTool({ name: 'ev__echo', arguments: { message: 'hi' } })), 'Echo: hi');
      const before = hop.seen.length;
      assert.equal(firstText(await client.callTool({ name: 'evh__echo', arguments: { message: 'up' } })), 'Echo: up');
      assert.ok(hop.seen.length > before, 'the call went through the recording hop');
      // No token passthrough: the upstream never sees the agent's token (nor any Authorization: none is configured).
      assert.deepEqual(
        hop.seen.filter((header) => header !== undefined),
        [],
      );
      await assert.rejects(client.callTool({ name: 'ev__get-sum', arguments: { a: 1, b: 2 } }), /not found/);
    } finally {
      await client.close();
    }
  });

  test("a signed-in agent's notification stream outlives a new snapshot and hears what changed for it", async () => {
    const { client, auth } = await signedInAgent(mcpUrl, 'alice');
    await client.close();
    const authorization = `Bearer ${auth.tokens()!.access_token}`;
    const initialized = await postMcp(mcpUrl, INITIALIZE, { authorization });
    await initialized.body?.cancel();
    const sessionId = initialized.headers.get('mcp-session-id')!;
    const headers = { authorization, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
    const notified = await postMcp(mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
    await notified.body?.cancel();
    const stream = await fetch(mcpUrl, { headers: { ...headers, accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    try {
      // Her team may now call get-sum too: the node re-authenticates her stream against the new
      // snapshot (from the verified-token cache) and tells it the tool list changed, instead of ending it.
      await env.gqlOk(SET_AUTHORIZATION, { input: authorizationInput(['ev__echo', 'evh__echo', 'ev__get-sum']) });
      let received = '';
      while (!received.includes('notifications/tools/list_changed')) {
        const { done, value } = await reader.read();
        assert.equal(done, false, `the stream ended instead of hearing list_changed: ${received}`);
        received += new TextDecoder().decode(value);
      }
    } finally {
      await reader.cancel();
      await env.gqlOk(SET_AUTHORIZATION, { input: authorizationInput(['ev__echo', 'evh__echo']) });
    }
  });

  test('a virtual key keeps working beside OAuth', async () => {
    assert.equal(await accepts(mcpUrl, env.key.secret), true);
  });

  test('a signed-in user whose claims map to no team gets 403', async () => {
    const auth = new TestAgentAuth('bob');
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: auth });
    await assert.rejects(new Client({ name: 'agent', version: '1' }).connect(transport));
    await transport.finishAuth(auth.code!);
    const response = await postMcp(mcpUrl, INITIALIZE, { authorization: `Bearer ${auth.tokens()!.access_token}` });
    const body = (await response.json()) as { error: { message: string } };
    assert.equal(response.status, 403);
    assert.match(body.error.message, /maps to no team/);
    assert.match(response.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
  });

  test('forged, expired, wrong-audience, alg none and HS256-with-the-public-key tokens get 401', async () => {
    const realKey = await importJWK(k1, 'RS256');
    const forger = await signingKey('k1');
    const forgedKey = await importJWK(forger, 'RS256');
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'alice', groups: ['engineering'] };
    const sign = (key: SigningKeyLike, alg: string, changes: { aud?: string; exp?: number }) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg, kid: 'k1' })
        .setIssuer(as.issuer)
        .setAudience(changes.aud ?? mcpUrl)
        .setIssuedAt(now - 600)
        .setExpirationTime(changes.exp ?? now + 300)
        .sign(key);
    const good = await sign(realKey, 'RS256', {});
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = k1;
    const cases: Record<string, string> = {
      forged: await sign(forgedKey, 'RS256', {}),
      expired: await sign(realKey, 'RS256', { exp: now - 120 }),
      'wrong audience': await sign(realKey, 'RS256', { aud: 'https://other.example.com/mcp' }),
      'alg none': `${base64url.encode(JSON.stringify({ alg: 'none', kid: 'k1' }))}.${good.split('.')[1]}.`,
      'HS256 keyed with the public key': await sign(new TextEncoder().encode(JSON.stringify(publicJwk)), 'HS256', {}),
    };
    // The same claims signed properly are admitted: each refusal below is for what was changed.
    const admitted = await postMcp(mcpUrl, INITIALIZE, { authorization: `Bearer ${good}` });
    await admitted.body?.cancel();
    assert.equal(admitted.status, 200);
    for (const [what, token] of Object.entries(cases)) {
      const response = await postMcp(mcpUrl, INITIALIZE, { authorization: `Bearer ${token}` });
      const body = (await response.json()) as { error: { message: string } };
      assert.equal(response.status, 401, `${what}: ${body.error.message}`);
      assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token".*resource_metadata="/, what);
    }
  });

  test(`a signed-in user's access token works on the REST execute API as on /mcp; a bad one gets the \
challenge`, async () => {
    const { client, auth } = await signedInAgent(mcpUrl, 'alice');
    await client.close();
    const execute = new URL('/v1/mcp/tool/execute', mcpUrl);
    const call = (token: string, name: string) =>
      fetch(execute, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, arguments: { message: 'over REST' } }),
      });
    const token = auth.tokens()!.access_token;
    const answer = await call(token, 'ev__echo');
    assert.equal(answer.status, 200);
    assert.equal(firstText((await answer.json()) as Record<string, unknown>), 'Echo: over REST');
    const hidden = await call(token, 'ev__get-sum');
    assert.equal(hidden.status, 404, 'a tool outside her team mapping is not found');
    await hidden.body?.cancel();
    const [header, , signature] = token.split('.');
    const forged = await call(
      `${header}.${base64url.encode(JSON.stringify({ sub: 'mallory' }))}.${signature}`,
      'ev__echo',
    );
    assert.equal(forged.status, 401);
    assert.match(forged.headers.get('www-authenticate') ?? '', /error="invalid_token".*resource_metadata=/);
    assert.equal(((await forged.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
  });

  test("a signed-in user is held to its team's rate limit, as the team's keys are", async () => {
    await env.gqlOk(
      `mutation ($id: ID!) { updateTeam(id: $id, input: { rateLimits: { toolCallsPerMinute: 2 } }) { id } }`,
      {
        id: teamId,
      },
    );
    const { client } = await signedInAgent(mcpUrl, 'alice');
    try {
      let refusal = '';
      // The limit reaches the node with the next snapshot: call until it applies (2 a minute for the whole team).
      await eventually('a call of the signed-in user is refused over the team limit', async () => {
        refusal = await client.callTool({ name: 'ev__echo', arguments: { message: 'again' } }).then(
          () => '',
          (error: Error) => error.message,
        );
        return refusal !== '';
      });
      assert.match(
        refusal,
        /-32049.*Rate limit exceeded: the team \\?"engineering\\?" may make 2 tool calls per minute/,
      );
    } finally {
      await client.close();
      await env.gqlOk(`mutation ($id: ID!) { updateTeam(id: $id, input: { rateLimits: null }) { id } }`, {
        id: teamId,
      });
    }
  });

  test('the provider rotates to a new signing key: tokens with the new kid are accepted', async () => {
    const port = Number(new URL(as.issuer).port);
    await as.stop();
    const k2 = await signingKey('k2');
    as = await AuthorizationServer.start({ keys: [k2], accounts, port });
    env.defer(() => as.stop());
    const { client, auth } = await signedInAgent(mcpUrl, 'alice');
    try {
      const header = JSON.parse(Buffer.from(auth.tokens()!.access_token.split('.')[0]!, 'base64url').toString()) as {
        kid: string;
      };
      assert.equal(header.kid, 'k2');
      assert.equal(firstText(await client.callTool({ name: 'ev__echo', arguments: { message: 'k2' } })), 'Echo: k2');
    } finally {
      await client.close();
    }
  });
});
