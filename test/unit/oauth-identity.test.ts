import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { resolveAccessLists } from '../../common/src/index.ts';
import { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import { IdentityProviders } from '../../data-plane/src/oauth/identity-providers.ts';
import { AllowList } from '../../data-plane/src/policy/allow-list.ts';
import { ExecutionPolicy } from '../../proto/gen/portcullis/v1/config.ts';
import { IssuerKeys } from '../../data-plane/src/oauth/issuer-keys.ts';
import { eventually } from '../support/gateway.ts';
import { freePort } from '../support/processes.ts';

const config = (resource: string) =>
  IdentityProviders.fromConfig({
    resource,
    identityProviders: [
      {
        issuer: 'https://idp.example.com',
        jwksUri: '',
        subjectClaim: 'email',
        teamClaim: 'groups',
        teams: [
          { claimValue: 'eng', teamId: 'team-eng', customerId: 'acme', allowedTools: ['ev__*'] },
          { claimValue: '*', teamId: 'team-all', customerId: '', allowedTools: [] },
        ],
      },
    ],
  });

test('the metadata URL is the well-known path followed by the resource path (RFC 9728 §3.1)', () => {
  const providers = config('https://gw.example.com/mcp');
  assert.equal(providers.metadataUrl, 'https://gw.example.com/.well-known/oauth-protected-resource/mcp');
  assert.equal(providers.challenge, `Bearer resource_metadata="${providers.metadataUrl}"`);
  assert.ok(providers.servesMetadataAt('/.well-known/oauth-protected-resource'));
  assert.ok(providers.servesMetadataAt('/.well-known/oauth-protected-resource/mcp'));
  assert.ok(!providers.servesMetadataAt('/.well-known/oauth-protected-resource/other'));
  assert.equal(
    config('https://gw.example.com/').metadataUrl,
    'https://gw.example.com/.well-known/oauth-protected-resource',
  );
  assert.deepEqual(JSON.parse(providers.metadataJson).authorization_servers, ['https://idp.example.com']);
});

test('claims map to the first matching team, by one value of an array claim, else the "*" mapping', () => {
  const providers = config('https://gw.example.com/mcp');
  const provider = providers.provider('https://idp.example.com')!;
  const eng = providers.userFor(provider, { email: 'a@x', groups: ['ops', 'eng'] });
  assert.ok(typeof eng === 'object');
  assert.equal(eng.teamId, 'team-eng');
  assert.equal(eng.customerId, 'acme');
  assert.deepEqual(eng.identity, { issuer: 'https://idp.example.com', subject: 'a@x' });
  assert.ok(AllowList.of(eng.access).allows('ev__echo', 'ev'));
  assert.match(eng.keyId, /^oidc:/);
  const other = providers.userFor(provider, { email: 'b@x', groups: 'sales' });
  assert.ok(typeof other === 'object');
  assert.equal(other.teamId, 'team-all');
  assert.ok(!AllowList.of(other.access).allows('ev__echo', 'ev'));
  assert.notEqual(other.keyId, eng.keyId);
  assert.equal(providers.userFor(provider, { sub: 'no-email' }), 'no_subject');
});

test(`a signed-in user is held to its team's and customer's lists, execution policies, rate limits and budgets, \
as the team's keys are`, () => {
  const limits = (toolCallsPerMinute: number) => ({ requestsPerMinute: 0, toolCallsPerMinute, burst: 0 });
  const applied = AppliedConfig.fromSnapshot({
    version: '1',
    upstreams: [],
    virtualKeys: [],
    sessionKeys: [{ id: 's1', secret: randomBytes(32) }],
    teams: [
      {
        id: 'team-eng',
        name: 'eng',
        customerId: 'acme',
        access: resolveAccessLists({ allowedTools: ['*'], deniedTools: ['ev__get-env'] }),
        rateLimits: limits(5),
      },
    ],
    customers: [{ id: 'acme', name: 'Acme', rateLimits: limits(50) }],
    executionPolicies: [
      {
        upstreamId: '',
        teamId: 'team-eng',
        keyId: '',
        tool: 'ev__add',
        policy: ExecutionPolicy.EXECUTION_POLICY_DENY,
        argument: '',
        pattern: '',
        approvalTimeoutMs: 0,
      },
    ],
  });
  const providers = config('https://gw.example.com/mcp');
  const user = providers.userFor(providers.provider('https://idp.example.com')!, { email: 'a@x', groups: ['eng'] });
  assert.ok(typeof user === 'object');
  const principal = applied.principalOfUser(user);
  assert.deepEqual(
    principal.limits?.map((rule) => [rule.bucket, rule.perMinute]),
    [
      ['team:team-eng:toolCalls', 5],
      ['customer:acme:toolCalls', 50],
    ],
  );
  assert.deepEqual(principal.owners, ['team:team-eng', 'customer:acme']);
  assert.ok(principal.allowList.allows('ev__echo', 'ev'), "the mapping's ev__* and the team's * allow it");
  assert.ok(!principal.allowList.allows('ev__get-env', 'ev'), "the team's deny-list hides it");
  assert.ok(!principal.allowList.allows('ev__add', 'ev'), "the team's execution policy denies it");
  assert.deepEqual(principal.identity, { issuer: 'https://idp.example.com', subject: 'a@x' });
});

test('an issuer whose metadata is away when the snapshot comes is discovered once it is back', async () => {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const keys = new IssuerKeys(pino({ level: 'silent' }));
  try {
    keys.sync([{ issuer, jwksUri: '', subjectClaim: 'sub', teamClaim: '', teams: [] }]);
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' };
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k' })
      .setIssuer(issuer)
      .sign(privateKey);
    const verifies = async () => {
      const resolver = keys.resolver(issuer);
      return (
        resolver !== undefined &&
        (await jwtVerify(token, resolver).then(
          () => true,
          () => false,
        ))
      );
    };
    assert.equal(await verifies(), false);
    const server = createServer((req, res) => {
      const body =
        req.url === '/jwks'
          ? { keys: [jwk] }
          : req.url === '/.well-known/oauth-authorization-server'
            ? { issuer, jwks_uri: `${issuer}/jwks` }
            : undefined;
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await eventually('the issuer is discovered after it came back', verifies, 10_000);
    } finally {
      server.close();
    }
  } finally {
    keys.close();
  }
});
