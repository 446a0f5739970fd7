import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import pino from 'pino';
import { IdentityProviders } from '../../data-plane/src/oauth/identity-providers.ts';
import { IssuerKeys } from '../../data-plane/src/oauth/issuer-keys.ts';

import { freePort } from '../support/processes.ts';
import { eventually } from '../support/eventually.ts';

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
  const eng = providers.principalFor(provider, { email: 'a@x', groups: ['ops', 'eng'] });
  assert.ok(typeof eng === 'object');
  assert.equal(eng.teamId, 'team-eng');
  assert.equal(eng.customerId, 'acme');
  assert.deepEqual(eng.identity, { issuer: 'https://idp.example.com', subject: 'a@x' });
  assert.ok(eng.allowList.allows('ev__echo', 'ev'));
  assert.match(eng.keyId, /^oidc:/);
  const other = providers.principalFor(provider, { email: 'b@x', groups: 'sales' });
  assert.ok(typeof other === 'object');
  assert.equal(other.teamId, 'team-all');
  assert.ok(!other.allowList.allows('ev__echo', 'ev'));
  assert.notEqual(other.keyId, eng.keyId);
  assert.equal(providers.principalFor(provider, { sub: 'no-email' }), 'no_subject');
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
