/**
 * The stream's queue of whole source transactions waiting to be applied, and the loop that
 * applies them in groups.
 *
 * Several small source transactions share one destination transaction group (up to
 * GROUP_MAX_CHANGES changes or GROUP_MAX_BYTES), never past a hold point. Reading from the
 * walsender pauses while PAUSE_BYTES of whole transactions wait. A group that fails on a
 * cross-stream conflict goes back to the head of the queue and is retried (cross-stream-order.ts);
 * any other failure is handed to the stream (reconnect or fail).
 */
import type { Logger } from '../../observe/log.js';
import { PgError, asPgError } from '../../wire/pg-error.js';
import { pgTimestampToDate } from '../../wire/pgoutput.js';
import type { ShardApplier } from './applier.js';
import { CONFLICT_RETRY_MS, ConflictWait, cancelEndedLives } from './cross-stream-order.js';
import type { StreamProgress } from './stream-progress.js';
import type { SourceTransaction } from './transactions.js';

/** Changes per destination transaction group (several small source transactions share one). */
const GROUP_MAX_CHANGES = 20_000;
const GROUP_MAX_BYTES = 16 << 20;
/** Stop reading the walsender while this many bytes of whole transactions wait to be applied. */
const PAUSE_BYTES = 64 << 20;

export interface StreamStats {
  transactions: number;
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
  /** Source transactions replayed after a restart and skipped because every shard had them. */
  skipped: number;
}

/** What the queue needs from its stream. */
export interface ApplyQueueHost {
  /** The applier to use now (replaced after a failed group). */
  applier(): ShardApplier;
  /** Applying is allowed (streaming, or starting once the applier is open). */
  running(): boolean;
  /** Opens a fresh applier after a failed group; false if that failed (the stream then handled it). */
  reopenApplier(): Promise<boolean>;
  /** Applying failed for a reason the queue does not retry. */
  lost(e: PgError): void;
  /** A group applied something new (a later connection loss gets every reconnect attempt again). */
  progressed(): void;
  pauseReading(): void;
  resumeReading(): void;
}

export class ApplyQueue {
  private readonly ready: SourceTransaction[] = [];
  private readyBytes = 0;
  private paused = false;
  private loop: Promise<void> | null = null;
  private readonly conflict: ConflictWait;

  constructor(
    private readonly host: ApplyQueueHost,
    private readonly progress: StreamProgress,
    private readonly stats: StreamStats,
    private readonly log: Logger,
    private readonly sourceShard: number,
    sourceShards: number,
  ) {
    this.conflict = new ConflictWait(sourceShards);
  }

  /** Nothing waiting and no group being applied. */
  get idle(): boolean {
    return this.loop === null && this.ready.length === 0;
  }

  /** No group is being applied. */
  get applyIdle(): boolean {
    return this.loop === null;
  }

  headCommitLsn(): bigint | null {
    return this.ready.length > 0 ? this.ready[0].commitLsn : null;
  }

  /** Source commit time (ms) of the oldest transaction waiting, or null. */
  oldestCommitMs(): number | null {
    return this.ready.length > 0 ? pgTimestampToDate(this.ready[0].commitTime).getTime() : null;
  }

  push(t: SourceTransaction): void {
    this.ready.push(t);
    this.readyBytes += t.bytes;
    if (!this.paused && this.readyBytes > PAUSE_BYTES) {
      this.paused = true;
      this.host.pauseReading();
    }
    this.kick();
  }

  kick(): void {
    if (!this.loop && this.ready.length > 0) {
      this.loop = this.applyLoop().finally(() => {
        this.loop = null;
        this.progress.checkHold();
      });
    }
  }

  /** Waits for the group being applied (it ends with its connections when they are destroyed). */
  async settle(): Promise<void> {
    if (this.loop) await this.loop;
  }

  /** Forgets everything waiting (the stream restarts from the slot, which resends it). */
  reset(): void {
    this.ready.length = 0;
    this.readyBytes = 0;
    this.paused = false;
    this.conflict.clear();
  }

  private async applyLoop(): Promise<void> {
    while (this.ready.length > 0 && this.host.running()) {
      const applier = this.host.applier();
      const limit = this.progress.limit;
      if (limit !== null && this.ready[0].commitLsn >= limit) break;
      let changes = 0;
      let bytes = 0;
      let k = 0;
      // While waiting out a cross-stream conflict, one source transaction at a time, or the head
      // through the end of lives it starts that ended in this stream (those left out).
      const cancelled = this.conflict.onUniqueConflict ? cancelEndedLives(this.ready, limit) : null;
      while (k < this.ready.length && (limit === null || this.ready[k].commitLsn < limit) && (k < (cancelled?.count ?? 1) || (!this.conflict.waiting && changes + this.ready[k].changes.length <= GROUP_MAX_CHANGES && bytes + this.ready[k].bytes <= GROUP_MAX_BYTES))) {
        changes += this.ready[k].changes.length;
        bytes += this.ready[k].bytes;
        k++;
      }
      const group = this.ready.splice(0, k);
      if (cancelled) this.log.info({ shard: this.sourceShard, transactions: k, dropped: cancelled.dropped }, 'unique conflict: rows this stream inserted and deleted again are left out (their life here ended before the copy they collide with)');
      let counts;
      try {
        counts = await applier.apply(cancelled?.group ?? group);
      } catch (err) {
        const e = asPgError(err);
        if (await this.retryConflict(e, group)) continue;
        this.host.lost(e);
        return;
      }
      this.conflict.clear();
      if (counts.skipped < group.length) this.host.progressed();
      const last = group[group.length - 1];
      this.stats.transactions += group.length - counts.skipped;
      this.stats.skipped += counts.skipped;
      this.stats.inserts += counts.inserts;
      this.stats.updates += counts.updates;
      this.stats.deletes += counts.deletes;
      this.stats.truncates += counts.truncates;
      this.readyBytes -= bytes;
      if (this.paused && this.readyBytes < PAUSE_BYTES / 2) {
        this.paused = false;
        this.host.resumeReading();
      }
      this.progress.committed(last.endLsn, pgTimestampToDate(last.commitTime).getTime());
    }
    queueMicrotask(() => this.progress.advanceIfIdle());
  }

  /** Puts a group that failed on a cross-stream conflict back at the head and waits before retrying it. */
  private async retryConflict(e: PgError, group: SourceTransaction[]): Promise<boolean> {
    if (!this.host.running()) return false;
    const now = Date.now();
    if (!this.conflict.retry(e, now)) return false;
    this.ready.unshift(...group);
    this.log.info(
      { shard: this.sourceShard, waitedMs: this.conflict.waited(now), err: e.message },
      ConflictWait.transient(e) ? 'deadlock or serialization failure while applying: retrying the group' : 'unique conflict while applying from several source shards: waiting for the other streams (a row moved between shards)',
    );
    await new Promise((r) => setTimeout(r, CONFLICT_RETRY_MS));
    if (!this.host.running()) return true;
    await this.host.reopenApplier();
    return true;
  }
}
