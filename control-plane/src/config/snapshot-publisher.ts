import type { DataSource } from 'typeorm';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { Snapshot, SnapshotDelta } from '../../../proto/gen/portcullis/v1/config.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { ConfigChangeBus, KnownChange } from './change-bus.ts';
import { currentRevision } from './revision.ts';
import { SnapshotBuilder, type SnapshotBuild } from './snapshot-builder.ts';

export interface SnapshotPublisherOptions {
  dataSource: DataSource;
  changes: ConfigChangeBus;
  /** Opens the stored upstream credentials that go into the snapshot. */
  box: SecretBox;
  logger: Logger;
  /** Safety net: how often the revision is re-read in case an announcement was lost. 0 = never. */
  pollIntervalMs?: number;
  /** Told of each published snapshot: its version and how long it took to build (ms; none for a revocation). */
  onPublished?: (version: string, buildMs: number | undefined) => void;
}

/** A published revision: the whole snapshot, and the changes from the one published before it. */
export interface Publication {
  snapshot: Snapshot;
  /** From the previously published snapshot (`delta.baseVersion`) to this one; absent for the first. */
  delta: SnapshotDelta | undefined;
}

/**
 * Holds the newest snapshot and hands it to every subscribed node stream. One snapshot (and one
 * delta) is built per revision, never one per node, reading only what changed since the last;
 * announcements arriving while a build runs coalesce into one rebuild. A revocation this process
 * committed on top of the newest snapshot is published without a read, in the turn it commits.
 */
export class SnapshotPublisher {
  private latest: Snapshot | undefined;
  private readonly builder: SnapshotBuilder;
  private readonly subscribers = new Set<(publication: Publication) => void>();
  private building: Promise<void> | undefined;
  private rebuildRequested = false;
  /** The newest revision announced, and the newest the running build is sure to see (announced before it started). */
  private announced = 0n;
  private coveredByBuild = 0n;
  private buildCount = 0;
  private unsubscribeChanges: (() => void) | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: SnapshotPublisherOptions) {
    this.builder = new SnapshotBuilder(options.dataSource, options.box);
  }

  /** Builds the first snapshot and starts following changes. */
  async start(): Promise<void> {
    this.unsubscribeChanges = this.options.changes.onChange((version, change) => this.announcement(version, change));
    this.refresh();
    await this.settled();
    if (!this.latest) throw new Error('the first configuration snapshot could not be built');
    const interval = this.options.pollIntervalMs ?? 5000;
    if (interval > 0) {
      this.pollTimer = setInterval(() => this.poll(), interval);
      this.pollTimer.unref();
    }
  }

  /** How many builds ran: each read the database once, but those of a known change, which read nothing. */
  get builds(): number {
    return this.buildCount;
  }

  /**
   * A revision was committed (undefined: changes may have been missed). The same commit is often
   * announced twice (in process, then by NOTIFY): a build that started after the first already
   * sees it, so the second asks for nothing. A change known exactly (a revocation committed by this
   * process) on top of the newest snapshot is published at once, without a read.
   */
  private announcement(version: string | undefined, change?: KnownChange): void {
    if (version === undefined) return this.refresh();
    const announced = BigInt(version);
    if (announced > this.announced) this.announced = announced;
    if (this.latest !== undefined && announced <= BigInt(this.latest.version)) return;
    if (this.building && announced <= this.coveredByBuild) return;
    if (change !== undefined && this.publishKnown(version, change)) return;
    this.refresh();
  }

  /**
   * Publishes a known change in this turn: the revocation reaches the nodes before the mutation's
   * answer is even written, with no read in between. Only when nothing is being built (a running
   * build moves the builder on under it) and the change is the next revision after the newest
   * snapshot (then nothing else can be in it: every change moves the revision by one, under the
   * revision row's lock); otherwise false, and it is read like any other.
   */
  private publishKnown(version: string, change: KnownChange): boolean {
    if (this.closed || this.building || this.latest === undefined) return false;
    try {
      const built = this.builder.withKeysRemoved(version, change.removedKeyIds);
      if (built === undefined) return false;
      this.buildCount++;
      this.publish(built);
      return true;
    } catch (error) {
      // Runs in the committing mutation's turn: a failure here must not fail the committed mutation.
      this.options.logger.error(
        { err: errorMessage(error), version },
        'publishing a revocation failed; reading the revision instead',
      );
      this.builder.reset();
      return false;
    }
  }

  /** The newest snapshot. */
  current(): Snapshot {
    if (!this.latest) throw new Error('SnapshotPublisher.start() has not completed');
    return this.latest;
  }

  /** Calls `listener` with every snapshot newer than the current one. Returns an unsubscribe function. */
  subscribe(listener: (publication: Publication) => void): () => void {
    this.subscribers.add(listener);
    return () => this.subscribers.delete(listener);
  }

  /** Resolves when no build is running or queued. */
  async settled(): Promise<void> {
    while (this.building) await this.building;
  }

  /** Requests a rebuild; coalesces with one already running. */
  refresh(): void {
    if (this.closed) return;
    if (this.building) {
      this.rebuildRequested = true;
      return;
    }
    this.building = this.buildLoop().finally(() => {
      this.building = undefined;
    });
  }

  private async buildLoop(): Promise<void> {
    do {
      this.rebuildRequested = false;
      this.coveredByBuild = this.announced;
      this.buildCount++;
      try {
        const built = await this.builder.build();
        if (this.closed) return;
        this.publish(built);
      } catch (error) {
        if (this.closed) return;
        this.options.logger.error(
          { err: errorMessage(error) },
          'config snapshot build failed; keeping the previous snapshot',
        );
        // Read everything again next time rather than trust state a failed build may have seen half of.
        this.builder.reset();
      }
    } while (this.rebuildRequested && !this.closed);
  }

  /** Hands a build newer than the newest snapshot to every subscriber. */
  private publish({ snapshot, delta, timings }: SnapshotBuild): void {
    if (this.latest !== undefined && BigInt(snapshot.version) <= BigInt(this.latest.version)) return;
    // A delta is only good against the snapshot published just before; anything else goes whole.
    const publication: Publication = {
      snapshot,
      delta: delta && delta.baseVersion === this.latest?.version ? delta : undefined,
    };
    this.latest = snapshot;
    this.options.onPublished?.(snapshot.version, timings.totalMs);
    const publishing = performance.now();
    for (const subscriber of this.subscribers) subscriber(publication);
    this.options.logger.debug(
      {
        version: snapshot.version,
        upstreams: snapshot.upstreams.length,
        keys: snapshot.virtualKeys.length,
        incremental: timings.incremental,
        keysRead: timings.keysRead,
        upstreamsOpened: timings.upstreamsOpened,
        readMs: round(timings.readMs),
        assembleMs: round(timings.assembleMs),
        sendMs: round(performance.now() - publishing),
        streams: this.subscribers.size,
      },
      'config snapshot built',
    );
  }

  private poll(): void {
    currentRevision(this.options.dataSource)
      .then((version) => {
        if (this.latest && BigInt(version) > BigInt(this.latest.version)) this.refresh();
      })
      .catch((error: unknown) => {
        if (!this.closed) this.options.logger.warn({ err: errorMessage(error) }, 'config revision poll failed');
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pollTimer);
    this.unsubscribeChanges?.();
    this.subscribers.clear();
    await this.building?.catch(() => undefined);
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
