import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import pg from 'pg';
import { CREATE_KEY, graphqlOk } from '../support/graphql.ts';
import { freePort, startDev, type RunningProcess } from '../support/processes.ts';

/**
 * Security finding 2 of issue 12: `npm start` served PGlite on a loopback port without a password,
 * and its files were world-readable.
 */

interface Listeners {
  tcpPorts: number[];
  unixPaths: string[];
}

/** The sockets `pid` listens on, from /proc: TCP ports (v4 and v6) and unix socket paths. */
function listenersOf(pid: number): Listeners {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (socket?.[1]) inodes.add(socket[1]);
    } catch {
      // closed meanwhile
    }
  }
  const tcpPorts = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is "<ip>:<port in hex>", st 0A is LISTEN, field 9 the inode.
      if (fields[3] === '0A' && inodes.has(fields[9] ?? ''))
        tcpPorts.add(Number.parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  const unixPaths: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // Flags 00010000 (__SO_ACCEPTCON) marks a listening socket; field 6 the inode, 7 the path.
    if (fields[3] === '00010000' && inodes.has(fields[6] ?? '')) unixPaths.push(fields[7] ?? '(unnamed)');
  }
  return { tcpPorts: [...tcpPorts].sort((a, b) => a - b), unixPaths };
}

/** Every file and directory under `root` with its permission bits, as `path mode` lines. */
function modesUnder(root: string): Array<{ path: string; mode: number; directory: boolean }> {
  const found: Array<{ path: string; mode: number; directory: boolean }> = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const stat = statSync(path);
      found.push({ path: relative(root, path), mode: stat.mode & 0o777, directory: stat.isDirectory() });
      if (stat.isDirectory()) walk(path);
    }
  };
  walk(root);
  return found;
}

/** Tries to log in as postgres over TCP; resolves with what happened. */
async function tryPostgres(port: number): Promise<'connected' | string> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 3_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return 'connected';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('the embedded database is open to every local process', () => {
  let root: string;
  let dataDir: string;
  let running: RunningProcess | undefined;
  let ports: { graphql: number; grpc: number; mcp: number };
  let previousUmask: number;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'portcullis-private-db-'));
    dataDir = join(root, 'data');
    ports = { graphql: await freePort(), grpc: await freePort(), mcp: await freePort() };
    // The usual umask, under which the files used to come out 0644.
    previousUmask = process.umask(0o022);
  });

  after(async () => {
    process.umask(previousUmask);
    await running?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test("npm start listens on no database socket, and every file of the data dir is the owner's alone", async () => {
    const started = await startDev(dataDir, ports);
    running = started.process;
    const { adminToken, process: dev } = started;
    // A change after startup: PGlite writes its WAL (and the key's hash) now, under the process's umask.
    await graphqlOk(`http://127.0.0.1:${ports.graphql}/graphql`, adminToken, CREATE_KEY, {
      input: { name: 'after-start' },
    });

    const pid = dev.child.pid;
    assert.ok(pid);
    const listening = listenersOf(pid);
    assert.deepEqual(
      listening.tcpPorts,
      [ports.graphql, ports.grpc, ports.mcp].sort((a, b) => a - b),
      'only the GraphQL, gRPC and MCP ports listen',
    );
    assert.deepEqual(listening.unixPaths, [], 'no unix socket listens');
    for (const port of listening.tcpPorts) {
      assert.notEqual(await tryPostgres(port), 'connected', `port ${port} must not speak Postgres to another process`);
    }

    const whileRunning = modesUnder(dataDir);
    assert.ok(
      whileRunning.some((entry) => entry.path.startsWith(join('pg', 'pg_wal'))),
      'the WAL is under the data dir',
    );
    const open = whileRunning.filter((entry) => entry.mode !== (entry.directory ? 0o700 : 0o600));
    assert.deepEqual(open, [], 'directories 0700 and files 0600 while running');

    assert.equal(await dev.stop(), 0);
    running = undefined;
    const stopped = modesUnder(dataDir).filter((entry) => entry.mode !== (entry.directory ? 0o700 : 0o600));
    assert.deepEqual(stopped, [], 'and after the shutdown checkpoint');
  });
});
