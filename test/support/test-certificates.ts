import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of a throwaway PKI, made with the `openssl` CLI (node:crypto cannot sign certificates). */
export interface TestCertificates {
  readonly dir: string;
  /** The CA that signed the server and node certificates. */
  readonly ca: string;
  /** The control plane's certificate, for `localhost` and 127.0.0.1, and its key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** A node's client certificate (CN=node-mtls) from `ca`, and its key. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** A client certificate from another CA, which the control plane must refuse. */
  readonly rogueCert: string;
  readonly rogueKey: string;
  read(file: string): Buffer;
  remove(): void;
}

function openssl(dir: string, args: readonly string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `openssl req` flags for a new P-256 key pair, unencrypted, written to `<name>.key`. */
function newKey(name: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`];
}

/** A CA with one key pair (P-256) valid for a day. */
function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', ...newKey(name), '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`]);
}

/** A certificate for `cn` signed by CA `ca`, with the given extensions. */
function makeLeaf(dir: string, name: string, cn: string, ca: string, extensions: string): void {
  openssl(dir, ['req', ...newKey(name), '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '1',
    '-extfile',
    `${name}.ext`,
  ]);
}

export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'rogue-ca');
  makeLeaf(
    dir,
    'server',
    'localhost',
    'ca',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  );
  makeLeaf(dir, 'client', 'node-mtls', 'ca', 'extendedKeyUsage=clientAuth\n');
  makeLeaf(dir, 'rogue', 'node-mtls', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  const path = (file: string) => join(dir, file);
  return {
    dir,
    ca: path('ca.pem'),
    serverCert: path('server.pem'),
    serverKey: path('server.key'),
    clientCert: path('client.pem'),
    clientKey: path('client.key'),
    rogueCert: path('rogue.pem'),
    rogueKey: path('rogue.key'),
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
