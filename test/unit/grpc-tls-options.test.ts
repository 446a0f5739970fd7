import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readOptions } from '../../cli/src/options.ts';
import { grpcTlsSettings, readGrpcTls } from '../../cli/src/commands/stream-settings.ts';
import { startGrpcServer } from '../../control-plane/src/grpc/server.ts';
import type { ConfigStreamService } from '../../control-plane/src/grpc/config-service.ts';
import { makeTestCertificates } from '../support/test-certificates.ts';

const read = (argv: string[]) => readGrpcTls(readOptions(grpcTlsSettings, argv, {}));

test('the control plane TLS flags: plaintext without them, a certificate needs its key, mTLS needs TLS', () => {
  assert.equal(read([]), undefined);
  assert.throws(() => read(['--grpc-tls-cert', 'cert.pem']), /--grpc-tls-cert and --grpc-tls-key go together/);
  assert.throws(() => read(['--grpc-tls-client-ca', 'ca.pem']), /--grpc-tls-client-ca needs TLS/);
  assert.throws(() => read(['--grpc-tls-cert', '/nonexistent/cert.pem', '--grpc-tls-key', '/nonexistent/key.pem']), /--grpc-tls-cert: cannot read \/nonexistent\/cert.pem/);
});

test('a key that does not match the certificate is refused at startup, naming the flags', async () => {
  const certs = makeTestCertificates();
  try {
    const tls = read(['--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', certs.clientKey]);
    assert.ok(tls);
    const service = { implementation: { connect: () => undefined }, drain: async () => undefined } as unknown as ConfigStreamService;
    await assert.rejects(startGrpcServer(service, '127.0.0.1', 0, tls), /grpcTls: .*key values mismatch.*--grpc-tls-cert, --grpc-tls-key/);
  } finally {
    certs.remove();
  }
});
