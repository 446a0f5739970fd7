import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { freePort } from '../support/processes.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';

const AUDIENCE = 'portcullis-graphql';

/** What each role tries, and whether it may: every row is tried by every role. */
const OPERATIONS: Record<string, { query: string; variables?: () => Record<string, unknown>; roles: string[] }> = {
  'read teams': { query: '{ teams { id } }', roles: ['ADMIN', 'OPERATOR', 'AUDITOR'] },
  'read upstreams': { query: '{ upstreams { id } }', roles: ['ADMIN', 'OPERATOR', 'AUDITOR'] },
  'create a team': {
    query: 'mutation ($name: String!) { createTeam(input: { name: $name }) { id } }',
    variables: () => ({ name: `team-${Math.random()}` }),
    roles: ['ADMIN', 'OPERATOR'],
  },
  'create a virtual key': {
    query: 'mutation { createVirtualKey(input: { name: "k" }) { key { id } } }',
    roles: ['ADMIN', 'OPERATOR'],
  },
  'create an upstream': {
    query:
      'mutation ($name: String!) { createUpstream(input: { name: $name, transport: STREAMABLE_HTTP, url: ' +
      '"http://127.0.0.1:9/mcp", enabled: false }) { id } }',
    variables: () => ({ name: `up${Math.floor(Math.random() * 1e9)}` }),
    roles: ['ADMIN', 'OPERATOR'],
  },
  'create a customer': {
    query: 'mutation ($name: String!) { createCustomer(input: { name: $name }) { id } }',
    variables: () => ({ name: `customer-${Math.random()}` }),
    roles: ['ADMIN', 'OPERATOR'],
  },
  'rotate secrets': { query: 'mutation { rotateSecrets }', roles: ['ADMIN'] },
  'set MCP authorization': { query: 'mutation { setMcpAuthorization(input: null) { resource } }', roles: ['ADMIN'] },
  'list admin tokens': { query: '{ adminTokens { id } }', roles: ['ADMIN'] },
  'create an admin token': {
    query: 'mutation { createAdminToken(input: { name: "x", role: AUDITOR }) { secret } }',
    roles: ['ADMIN'],
  },
};

const CREATE_TOKEN = /* GraphQL */ `
  mutation ($input: CreateAdminTokenInput!) {
    createAdminToken(input: $input) { secret token { id name role prefix revoked createdBy } }
  }
`;

describe('GraphQL roles: admin, operator, auditor; admin tokens; OIDC sign-in', () => {
  let env: TestEnv;
  let jwks: Server;
  let issuer: string;
  let signingKey: CryptoKeyLike;
  const tokens: Record<string, { id: string; secret: string }> = {};

  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    signingKey = privateKey;
    const jwk = { ...(await exportJWK(publicKey)), kid: 'admins-1', alg: 'ES256', use: 'sig' };
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    jwks = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
    );
    await new Promise<void>((resolve) => jwks.listen(port, '127.0.0.1', resolve));
    env = await startTestEnv({
      controlPlane: 'in-process',
      overrides: { adminOidc: { issuer, audience: AUDIENCE, jwksUri: `${issuer}/jwks` } },
    });
    env.defer(() => new Promise((resolve) => jwks.close(resolve)));
    for (const [name, role] of [
      ['ada', 'ADMIN'],
      ['olivia', 'OPERATOR'],
      ['audrey', 'AUDITOR'],
    ] as const) {
      const created = await env.gqlOk<{
        createAdminToken: { secret: string; token: { id: string; role: string; prefix: string; createdBy: string } };
      }>(CREATE_TOKEN, { input: { name, role } });
      assert.match(created.createAdminToken.secret, /^pca_[A-Za-z0-9_-]{43}$/);
      assert.equal(created.createAdminToken.token.role, role);
      assert.equal(created.createAdminToken.token.prefix, created.createAdminToken.secret.slice(0, 12));
      assert.equal(created.createAdminToken.token.createdBy, 'bootstrap admin token');
      tokens[role] = { id: created.createAdminToken.token.id, secret: created.createAdminToken.secret };
    }
  });

  after(async () => {
    await env?.dispose();
  });

  const oidcToken = (claims: Record<string, unknown>, audience = AUDIENCE) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'admins-1' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject('sam@example.com')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(signingKey);

  test('the bootstrap token is an admin; each admin token acts with its own role', async () => {
    const me = '{ me { role via subject } }';
    assert.deepEqual((await env.gqlOk(me)).me, { role: 'ADMIN', via: 'BOOTSTRAP', subject: 'bootstrap admin token' });
    assert.deepEqual((await env.gql(me, {}, tokens['OPERATOR']!.secret)).data?.me, {
      role: 'OPERATOR',
      via: 'TOKEN',
      subject: 'olivia',
    });
  });

  test('prices and budgets are for admins: an operator is refused before the budget is looked up', async () => {
    const remove = 'mutation { removeBudget(id: "00000000-0000-4000-8000-000000000000") }';
    const byOperator = await env.gql(remove, {}, tokens['OPERATOR']!.secret);
    assert.equal(byOperator.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    const byAdmin = await env.gql(remove, {}, tokens['ADMIN']!.secret);
    assert.equal(byAdmin.errors?.[0]?.extensions?.code, 'NOT_FOUND');
  });

  for (const role of ['ADMIN', 'OPERATOR', 'AUDITOR']) {
    test(`${role.toLowerCase()}: may do what its role allows, and is refused FORBIDDEN otherwise`, async () => {
      for (const [what, operation] of Object.entries(OPERATIONS)) {
        const result = await env.gql(operation.query, operation.variables?.() ?? {}, tokens[role]!.secret);
        if (operation.roles.includes(role)) {
          assert.equal(result.errors, undefined, `${role} may ${what}: ${JSON.stringify(result.errors)}`);
        } else {
          assert.equal(result.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${role} may not ${what}`);
          assert.match(result.errors![0]!.message, new RegExp(`has the role ${role.toLowerCase()}`));
        }
      }
    });
  }

  test('admin tokens are listed without their secrets and revoked at once', async () => {
    const listed = await env.gqlOk<{ adminTokens: Record<string, unknown>[] }>(
      '{ adminTokens { id name role prefix revoked } }',
    );
    assert.ok(listed.adminTokens.some((t) => t['name'] === 'audrey' && t['role'] === 'AUDITOR'));
    assert.ok(!JSON.stringify(listed).includes(tokens['AUDITOR']!.secret));
    const victim = await env.gqlOk<{ createAdminToken: { secret: string; token: { id: string } } }>(CREATE_TOKEN, {
      input: { name: 'leaver', role: 'OPERATOR' },
    });
    assert.equal((await env.gql('{ teams { id } }', {}, victim.createAdminToken.secret)).errors, undefined);
    const revoked = await env.gqlOk<{ revokeAdminToken: { revoked: boolean } }>(
      'mutation ($id: ID!) { revokeAdminToken(id: $id) { revoked } }',
      { id: victim.createAdminToken.token.id },
    );
    assert.equal(revoked.revokeAdminToken.revoked, true);
    const refused = await env.gql('{ teams { id } }', {}, victim.createAdminToken.secret);
    assert.equal(refused.status, 401);
    assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  });

  test('bad input: an unknown role and an empty name are refused naming the field', async () => {
    const role = await env.gql(CREATE_TOKEN, { input: { name: 'x', role: 'ROOT' } });
    assert.equal(role.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    const name = await env.gql(CREATE_TOKEN, { input: { name: ' ', role: 'AUDITOR' } });
    assert.equal(name.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.equal(name.errors?.[0]?.extensions?.field, 'input.name');
  });

  test('OIDC: a JWT with a role claim acts with that role; without one, or for another audience, 401', async () => {
    const operator = await oidcToken({ portcullis_roles: ['auditor', 'operator'] });
    assert.deepEqual((await env.gql('{ me { role via subject } }', {}, operator)).data?.me, {
      role: 'OPERATOR',
      via: 'OIDC',
      subject: 'sam@example.com',
    });
    const team = await env.gql('mutation { createTeam(input: { name: "oidc-team" }) { id } }', {}, operator);
    assert.equal(team.errors, undefined);
    const rotate = await env.gql('mutation { rotateSecrets }', {}, operator);
    assert.equal(rotate.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    for (const token of [await oidcToken({}), await oidcToken({ portcullis_roles: 'admin' }, 'someone-else')]) {
      const refused = await env.gql('{ teams { id } }', {}, token);
      assert.equal(refused.status, 401);
      assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    }
  });
});

type CryptoKeyLike = Parameters<SignJWT['sign']>[0];
