import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { InProcessSocket } from './in-process-socket.ts';

export interface EmbeddedDatabaseOptions {
  /** PGlite data directory, created when missing (e.g. `./.portcullis/data/pg`); kept at mode 0700. */
  dataDir: string;
}

/** How `pg` reaches the embedded database: a placeholder URL and a stream factory (see `openDatabase`). */
export interface EmbeddedConnection {
  /** `postgres://postgres@pglite.in-process/postgres`: names the database; nothing listens there. */
  readonly url: string;
  /** A new in-process connection, for `pg`'s `stream` option. */
  readonly stream: () => Duplex;
}

export interface EmbeddedDatabase {
  readonly connection: EmbeddedConnection;
  close(): Promise<void>;
}

export const EMBEDDED_DATABASE_URL = 'postgres://postgres@pglite.in-process/postgres';

/** Mode bits no one but the owner may have on anything under the data dir. */
const OTHERS = 0o077;

/**
 * Embedded Postgres for development: PGlite on disk, reached only from this process. The database
 * has no password and holds the session signing key and every virtual key, so it listens on no
 * socket at all: each `pg` connection is an in-memory stream pair whose far end pglite-socket's
 * handler serves (one query queue for all of them, as its TCP server would). Its files are the
 * owner's alone: the directory is 0700, existing files are made 0600, and files PGlite creates later
 * (the WAL holds the signing key) are too (see keepNewFilesPrivate; the process umask covers the rest).
 */
export async function startEmbeddedDatabase(options: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  restrictUmask();
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const db = await PGlite.create(options.dataDir);
  keepNewFilesPrivate(db);
  // What initdb (or an earlier version) created before the guard was in place.
  await restrictTree(options.dataDir);
  // Never started: it only lends its query queue (shared by every connection) to the handlers.
  const queue = new PGLiteSocketServer({ db })['queryQueue'];
  /** Each open connection's server end, and when its handler let go of it (its queued messages dropped). */
  const connections = new Map<InProcessSocket, Promise<void>>();
  let closing: Promise<void> | undefined;
  return {
    connection: {
      url: EMBEDDED_DATABASE_URL,
      stream() {
        const [client, server] = InProcessSocket.pair();
        if (closing !== undefined) {
          process.nextTick(() => client.destroy(new Error('the embedded database is closed')));
          return client;
        }
        const handler = new PGLiteSocketHandler({ queryQueue: queue, closeOnDetach: true });
        const detached = new Promise<void>((resolve) =>
          handler.addEventListener('close', () => resolve(), { once: true }),
        );
        connections.set(server, detached);
        void detached.then(() => connections.delete(server));
        void handler.attach(server as unknown as Socket);
        return client;
      },
    },
    close() {
      closing ??= (async () => {
        for (const server of connections.keys()) server.destroy();
        await Promise.all(connections.values());
        // A message taken before its connection closed may still run: PGlite must outlive it.
        await db.runExclusive(async () => undefined);
        await db.close();
      })();
      return closing;
    },
  };
}

/** Node's `fs.chmodSync`-style setattr of Emscripten's NODEFS: `(path or fd, node, attributes)`. */
type SetAttr = (target: unknown, attributes: { mode?: number }) => void;

/**
 * PGlite's Emscripten file system chmods every file it creates to the mode Postgres asked for as
 * Emscripten understood it (0666), past the process umask: its NODEFS setattr drops group and
 * other bits here, as the umask would.
 */
function keepNewFilesPrivate(db: PGlite): void {
  const nodefs = db.Module.FS.filesystems.NODEFS as unknown as {
    node_ops: { setattr?: SetAttr };
    stream_ops: { setattr?: SetAttr };
  };
  for (const ops of [nodefs.node_ops, nodefs.stream_ops]) {
    const setattr = ops.setattr;
    if (setattr === undefined) continue;
    ops.setattr = (target, attributes) =>
      setattr(target, attributes.mode === undefined ? attributes : { ...attributes, mode: attributes.mode & ~OTHERS });
  }
}

/** Group and other lose every bit on files this process creates from now on. */
function restrictUmask(): void {
  const previous = process.umask(OTHERS);
  process.umask(previous | OTHERS);
}

/** Directories 0700 and files 0600 under `dir` (a data dir created by an earlier version kept 0755/0644). */
async function restrictTree(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await restrictTree(path);
    else if (entry.isFile()) await chmod(path, 0o600);
  }
}
