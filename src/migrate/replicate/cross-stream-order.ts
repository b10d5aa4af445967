/**
 * Ordering between several streams that apply into the same destination.
 *
 * With several source shards, each has its own stream and nothing orders one stream's
 * transactions against another's. A row the application moved from shard A to shard B (one
 * transaction: DELETE on A, INSERT on B) reaches the destination through two streams, in no
 * fixed order; when B's INSERT comes first it collides with the copy A's stream has not deleted
 * yet (23505). Several streams (and the application) writing the same destination rows can also
 * deadlock (40P01) or fail to serialize (40001). Such a failed group rolled back entirely (or,
 * if a shard committed, its origin skips it on replay), so it can be retried: one source
 * transaction at a time, every CONFLICT_RETRY_MS, for at most CONFLICT_WAIT_MS; a conflict that
 * outlasts that is real and fails the stream.
 */
import type { PgError } from '../../wire/pg-error.js';

/** How long a transaction may wait for another source shard's stream to remove a row it collides with. */
export const CONFLICT_WAIT_MS = 30_000;
/** How often it retries meanwhile. */
export const CONFLICT_RETRY_MS = 100;

/** The wait of one stream's head transaction (since when, if waiting). */
export class ConflictWait {
  /** Since when the head transaction has been waiting, or null. */
  private since: number | null = null;

  constructor(private readonly sourceShards: number) {}

  /** While waiting, groups are one source transaction each. */
  get waiting(): boolean {
    return this.since !== null;
  }

  /** The head applied: no longer waiting. */
  clear(): void {
    this.since = null;
  }

  /** Transient failure: a deadlock or serialization failure (any sources). */
  static transient(e: PgError): boolean {
    return e.code === '40P01' || e.code === '40001';
  }

  /**
   * Should the failed group be retried? A deadlock or serialization failure always (it is
   * transient whatever the sources); a unique conflict only with several source shards (a row
   * moved between them); neither once the wait has lasted CONFLICT_WAIT_MS.
   */
  retry(e: PgError, now: number): boolean {
    if (!(ConflictWait.transient(e) || (e.code === '23505' && this.sourceShards >= 2))) return false;
    this.since ??= now;
    return now - this.since <= CONFLICT_WAIT_MS;
  }

  /** Milliseconds waited so far. */
  waited(now: number): number {
    return this.since === null ? 0 : now - this.since;
  }
}
