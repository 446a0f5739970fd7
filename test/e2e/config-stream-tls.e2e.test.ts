// Finding 6: the config stream carried every secret (upstream credentials, key hashes, the session
// signing key) in plaintext gRPC. A real control plane and node over TLS, then mTLS, with certificates
// made by the openssl CLI; clients that are not trusted get no snapshot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { credentials, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { ConfigServiceClient, type ConnectResponse } from '../../proto/gen/portcullis/v1/config.ts';
import { NODES } from '../support/graphql.ts';
import { makeTestCertificates, type TestCertificates } from '../support/test-certificates.ts';
import { startTestEnv } from '../support/test-env.ts';

/** Opens a config stream as a node would; resolves with what came back first: a snapshot, or the error. */
async function tryStream(
  address: string,
  channel: ChannelCredentials,
  token: string | undefined,
): Promise<{ snapshot: boolean; code?: number; details?: string }> {
  const client = new ConfigServiceClient(address, channel);
  try {
    const metadata = new Metadata();
    if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    const call = client.connect(metadata);
    call.write({
      kind: {
        $case: 'hello',
        value: {
          nodeId: 'probe',
          softwareVersion: 'test',
          mcpUrl: '',
          appliedVersion: '',
          acceptsDeltas: false,
          nodeTag: '',
        },
      },
    });
    return await new Promise((resolve) => {
      call.on('data', (message: ConnectResponse) => {
        resolve({ snapshot: message.kind?.$case === 'snapshot' });
        call.cancel();
      });
      call.on('error', (error: ServiceError) => resolve({ snapshot: false, code: error.code, details: error.details }));
    });
  } finally {
    client.close();
  }
}

const UNAVAILABLE = 14;

describe('finding 6: the config stream over TLS and mTLS', () => {
  let certs: TestCertificates;

  before(() => {
    certs = makeTestCertificates();
  });

  after(() => {
    certs?.remove();
  });

  test(`TLS: a node trusting the CA follows the control plane; a plaintext client or one trusting another CA gets \
nothing`, async () => {
    // The environment resolves once the key reached the node over TLS.
    await using plane = await startTestEnv({
      processExtra: { args: ['--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', certs.serverKey] },
      nodes: [{ id: 'node-tls', args: ['--control-plane-ca', certs.ca] }],
      keys: [{ name: 'over-tls', allowedTools: ['*'] }],
    });
    assert.match(plane.controlPlane!.process!.log, /gRPC:\s+\S+ \(TLS\)/);
    const { nodes } = await plane.gqlOk<{ nodes: Array<{ id: string; connected: boolean }> }>(NODES);
    assert.ok(nodes.some((n) => n.id === 'node-tls' && n.connected));

    const plaintext = await tryStream(plane.grpcAddress, credentials.createInsecure(), plane.nodeToken);
    assert.equal(plaintext.snapshot, false, 'a plaintext client is not served');
    assert.equal(plaintext.code, UNAVAILABLE);
    const wrongTrust = await tryStream(
      plane.grpcAddress,
      credentials.createSsl(certs.read(`${certs.dir}/rogue-ca.pem`)),
      plane.nodeToken,
    );
    assert.equal(wrongTrust.snapshot, false, 'a node that does not trust the certificate does not connect');
    const trusted = await tryStream(plane.grpcAddress, credentials.createSsl(certs.read(certs.ca)), plane.nodeToken);
    assert.equal(trusted.snapshot, true, 'the same probe with the right CA is served');
  });

  test(`mTLS: a node is authenticated by its client certificate alone; no certificate or one from another CA is \
refused`, async () => {
    const tls = [
      '--grpc-tls-cert',
      certs.serverCert,
      '--grpc-tls-key',
      certs.serverKey,
      '--grpc-tls-client-ca',
      certs.ca,
    ];
    const nodeCertificate = ['--control-plane-cert', certs.clientCert, '--control-plane-key', certs.clientKey];
    // The environment resolves once the key reached the node over mTLS.
    await using plane = await startTestEnv({
      processExtra: { args: tls, env: { PORTCULLIS_NODE_TOKEN: '' } },
      nodes: [
        {
          id: 'node-mtls',
          args: ['--control-plane-ca', certs.ca, ...nodeCertificate],
          env: { PORTCULLIS_NODE_TOKEN: '' },
        },
      ],
      keys: [{ name: 'over-mtls', allowedTools: ['*'] }],
    });
    assert.match(plane.controlPlane!.process!.log, /gRPC:\s+\S+ \(mTLS\)/);

    const ca = certs.read(certs.ca);
    const noCertificate = await tryStream(plane.grpcAddress, credentials.createSsl(ca), undefined);
    assert.deepEqual(
      [noCertificate.snapshot, noCertificate.code],
      [false, UNAVAILABLE],
      'no client certificate: refused in the handshake',
    );
    const rogue = await tryStream(
      plane.grpcAddress,
      credentials.createSsl(ca, certs.read(certs.rogueKey), certs.read(certs.rogueCert)),
      undefined,
    );
    assert.deepEqual([rogue.snapshot, rogue.code], [false, UNAVAILABLE], 'a certificate from another CA: refused');
    const plaintext = await tryStream(plane.grpcAddress, credentials.createInsecure(), undefined);
    assert.equal(plaintext.snapshot, false);
    const good = await tryStream(
      plane.grpcAddress,
      credentials.createSsl(ca, certs.read(certs.clientKey), certs.read(certs.clientCert)),
      undefined,
    );
    assert.equal(good.snapshot, true, 'the same probe with the CA-signed certificate is served');
  });
});
