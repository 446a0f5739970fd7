import { Duplex } from 'node:stream';

/**
 * One end of an in-memory connection: what one end writes, the other reads. It offers the few
 * `net.Socket` methods that `pg` (as its `stream`) and pglite-socket's handler call, so the two talk
 * the Postgres wire protocol without a listening socket another process could reach.
 */
export class InProcessSocket extends Duplex {
  private peer: InProcessSocket | undefined;
  readonly remoteAddress = 'in-process';
  readonly remotePort = 0;

  private constructor() {
    // Not half-open: when one end ends, the other ends too, so both close (pg waits for 'close').
    super({ allowHalfOpen: false });
  }

  /** Two connected ends. */
  static pair(): [InProcessSocket, InProcessSocket] {
    const a = new InProcessSocket();
    const b = new InProcessSocket();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  /** `pg` connects its stream itself; the pair is connected already, so this only says so. */
  connect(): this {
    process.nextTick(() => this.emit('connect'));
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // Copied: the writer may reuse its buffer, and a push hands it to the reader as it is.
    this.peer?.push(Buffer.from(chunk));
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.peer?.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    if (peer !== undefined && !peer.destroyed) peer.destroy();
    callback(error);
  }
}
