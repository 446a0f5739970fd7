// Finding 6: the config stream carried every secret (upstream credentials, key hashes, the session
// signing key) in plaintext gRPC. A real control plane and node over TLS, then mTLS, with certificates
// made by the openssl CLI; clients that are not trusted get no snapshot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { credentials, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { ConfigServiceClient, type ConnectResponse } from '../../proto/gen/portcullis/v1/config.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts, eventually } from '../support/gateway.ts';
import { CREATE_KEY, NODES, graphqlOk } from '../support/graphql.ts';
import { makeTestCertificates, type TestCertificates } from '../support/test-certificates.ts';

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

async function createKey(plane: ControlPlaneProcess, name: string): Promise<string> {
  const created = await graphqlOk<{ createVirtualKey: { secret: string } }>(
    plane.graphqlUrl,
    plane.adminToken,
    CREATE_KEY,
    { input: { name, allowedTools: ['*'] } },
  );
  return created.createVirtualKey.secret;
}

describe('finding 6: the config stream over TLS and mTLS', () => {
  let certs: TestCertificates;
  let schema: TestSchema;
  const started: Array<{ stop(): Promise<unknown> }> = [];

  before(async () => {
    certs = makeTestCertificates();
    schema = await createTestSchema();
  });

  after(async () => {
    await Promise.allSettled(started.reverse().map((p) => p.stop()));
    await schema?.drop();
    certs?.remove();
  });

  test(`TLS: a node trusting the CA follows the control plane; a plaintext client or one trusting another CA gets \
nothing`, async () => {
    const plane = await ControlPlaneProcess.start(schema.url, schema.name, {
      args: ['--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', certs.serverKey],
    });
    started.push(plane);
    assert.match(plane.process!.log, /gRPC:\s+\S+ \(TLS\)/);
    const node = await DataPlaneProcess.start(plane, 'node-tls', ['--control-plane-ca', certs.ca]);
    started.push(node);
    const key = await createKey(plane, 'over-tls');
    await eventually('the key reached the node over TLS', () => accepts(node.mcpUrl, key));
    const { nodes } = await graphqlOk<{ nodes: Array<{ id: string; connected: boolean }> }>(
      plane.graphqlUrl,
      plane.adminToken,
      NODES,
    );
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
    const plane = await ControlPlaneProcess.start(schema.url, schema.name, {
      args: tls,
      env: { PORTCULLIS_NODE_TOKEN: '' },
    });
    started.push(plane);
    assert.match(plane.process!.log, /gRPC:\s+\S+ \(mTLS\)/);
    const node = await DataPlaneProcess.start(
      plane,
      'node-mtls',
      [
        '--control-plane-ca',
        certs.ca,
        '--control-plane-cert',
        certs.clientCert,
        '--control-plane-key',
        certs.clientKey,
      ],
      { PORTCULLIS_NODE_TOKEN: '' },
    );
    started.push(node);
    const key = await createKey(plane, 'over-mtls');
    await eventually('the key reached the node over mTLS', () => accepts(node.mcpUrl, key));

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
