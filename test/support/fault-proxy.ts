import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';

/** One client connection and its connection to the target. */
interface Link {
  client: Socket;
  server: Socket;
  /** Client bytes not yet passed on (the target "hangs"), and whether the client closed after them. */
  held: Buffer[];
  clientEnded: boolean;
  serverClosed: Promise<void>;
}

/**
 * A TCP proxy in front of a real server (PostgreSQL here) that can fail the way a database fails:
 * `hang()` stops passing anything on, as a stopped (SIGSTOP) or partitioned server does — what
 * clients send is held, as the server's socket buffer would hold it, and passed on, followed by
 * their close, at `resume()`; `cut()` drops every connection and refuses new ones, as a server
 * that is down does, until `restore()`.
 */
export class FaultProxy {
  private readonly links = new Set<Link>();
  private hung = false;
  private down = false;
  private hangTrigger: Buffer | undefined;

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const server = createServer();
    const proxy = new FaultProxy(server, target);
    server.on('connection', (client) => proxy.accept(client));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy is not listening');
    return address.port;
  }

  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  /** From now on nothing passes, either way; new connections are accepted and held too. */
  hang(): void {
    this.hung = true;
  }

  /** Hangs as soon as a client sends `bytes` (that chunk is held too): a server hanging at that exact message. */
  hangWhenSent(bytes: Buffer): void {
    this.hangTrigger = bytes;
  }

  /**
   * Passes on what was held (and the closes that followed it) and forwards again. Resolves once every
   * connection whose client went away meanwhile was closed by the target, i.e. the target has
   * processed everything it was sent.
   */
  async resume(): Promise<void> {
    this.hung = false;
    this.hangTrigger = undefined;
    const finishing: Array<Promise<void>> = [];
    for (const link of this.links) {
      for (const chunk of link.held.splice(0)) link.server.write(chunk);
      if (link.clientEnded) {
        link.server.end();
        finishing.push(link.serverClosed);
      }
    }
    await Promise.all(finishing);
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.down = true;
    for (const link of this.links) {
      link.client.destroy();
      link.server.destroy();
    }
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    this.server.close();
    await once(this.server, 'close');
  }

  private accept(client: Socket): void {
    if (this.down) {
      client.destroy();
      return;
    }
    const server = connect(this.target.port, this.target.host);
    const link: Link = {
      client,
      server,
      held: [],
      clientEnded: false,
      serverClosed: new Promise<void>((resolve) => server.once('close', () => resolve())),
    };
    this.links.add(link);
    client.on('data', (chunk: Buffer) => {
      if (this.hangTrigger !== undefined && chunk.includes(this.hangTrigger)) this.hung = true;
      if (this.hung || link.held.length > 0) link.held.push(chunk);
      else server.write(chunk);
    });
    // A hung target sees neither the data nor the close; its answers never reach the client.
    server.on('data', (chunk: Buffer) => {
      if (!this.hung && !client.destroyed) client.write(chunk);
    });
    const clientGone = () => {
      link.clientEnded = true;
      if (!this.hung && link.held.length === 0) server.end();
    };
    client.on('end', clientGone);
    client.on('close', clientGone);
    client.on('error', () => undefined);
    server.on('error', () => client.destroy());
    server.on('close', () => {
      client.destroy();
      this.links.delete(link);
    });
  }
}

/** The bytes of a simple-protocol `COMMIT` query as pg sends it (`Q`, length, text, NUL). */
export function simpleQueryBytes(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`);
  const header = Buffer.alloc(5);
  header.write('Q', 0);
  header.writeInt32BE(text.length + 4, 1);
  return Buffer.concat([header, text]);
}
