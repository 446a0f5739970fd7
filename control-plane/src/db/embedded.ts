import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedDatabaseOptions {
  /** PGlite data directory, created when missing (e.g. `./.portcullis/data/pg`). */
  dataDir: string;
  /** Port for the Postgres wire protocol on 127.0.0.1; 0 (default) lets the OS choose. */
  port?: number;
  /**
   * Socket connections accepted. PGlite runs one session and the socket server queues every query
   * through it, so keep the client pool smaller than this.
   */
  maxConnections?: number;
}

export interface EmbeddedDatabase {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  close(): Promise<void>;
}

/** Embedded Postgres for development: PGlite on disk, served over the Postgres wire protocol. */
export async function startEmbeddedDatabase(options: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  await mkdir(options.dataDir, { recursive: true });
  const db = await PGlite.create(options.dataDir);
  const server = new PGLiteSocketServer({
    db,
    host: '127.0.0.1',
    port: options.port ?? 0,
    maxConnections: options.maxConnections ?? 8,
  });
  try {
    await server.start();
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    close() {
      closing ??= (async () => {
        await server.stop();
        await db.close();
      })();
      return closing;
    },
  };
}
