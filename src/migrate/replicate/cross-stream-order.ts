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
 *
 * Waiting is right when this stream's INSERT starts the row's next life here: the other stream's
 * DELETE ends the previous life and the retry then goes through. It is wrong when this stream's
 * INSERT starts an *earlier* life than the copy it collides with: a row moved A → B → A, where A's
 * stream already applied its DELETE and its INSERT of the move back, and B's INSERT, and the
 * DELETE ending that life, are still to come from B's own stream. Waiting for that DELETE behind
 * the INSERT that waits deadlocks (before: the task failed after 30 s). Every life but the last
 * ends with a DELETE in the stream that holds it, so while a unique conflict waits the stream
 * looks ahead in its own queue: an INSERT of the head transaction whose life here ends within
 * the queue (INSERT, UPDATEs, DELETE of the same replica identity) changes nothing in the end,
 * whenever it is applied, so it is dropped together with its UPDATEs and DELETE, and the head
 * through the transaction of that DELETE is applied as one group. Everything dropped commits
 * with that group's origin progress, atomically, so a crash replays either all of it or none,
 * and the slot is confirmed past the DELETE only once that group committed.
 */
import type { PgError } from '../../wire/pg-error.js';
import { COL_UNCHANGED_TOAST, type RelationInfo, type TupleData } from '../../wire/pgoutput.js';
import type { Change, SourceTransaction } from './transactions.js';

/** How long a transaction may wait for another source shard's stream to remove a row it collides with. */
export const CONFLICT_WAIT_MS = 30_000;
/** How often it retries meanwhile. */
export const CONFLICT_RETRY_MS = 100;

/** The wait of one stream's head transaction (since when, if waiting). */
export class ConflictWait {
  /** Since when the head transaction has been waiting, or null. */
  private since: number | null = null;
  /** SQLSTATE of the last failure retried. */
  private code = '';

  constructor(private readonly sourceShards: number) {}

  /** While waiting, groups are one source transaction each. */
  get waiting(): boolean {
    return this.since !== null;
  }

  /** The head applied: no longer waiting. */
  clear(): void {
    this.since = null;
    this.code = '';
  }

  /** Waiting on a unique conflict: a life of a row that ended in this stream may be dropped (see cancelEndedLives). */
  get onUniqueConflict(): boolean {
    return this.since !== null && this.code === '23505';
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
    this.code = e.code;
    return now - this.since <= CONFLICT_WAIT_MS;
  }

  /** Milliseconds waited so far. */
  waited(now: number): number {
    return this.since === null ? 0 : now - this.since;
  }
}

/** A group whose head's ended lives were dropped: apply `group` in place of the first `count` queued transactions. */
export interface CancelledLives {
  count: number;
  group: SourceTransaction[];
  /** Changes dropped (each life's INSERT, UPDATEs and DELETE). */
  dropped: number;
}

/**
 * Finds INSERTs of `ready[0]` whose life in this stream ends within the queue (before the hold
 * `limit`, if any) and returns the group from the head through the last such DELETE with those
 * lives' changes left out, or null when there is none. A life is followed by replica identity
 * through UPDATEs (which may change it); anything that makes the match uncertain (an unchanged
 * TOAST value in the identity, a TRUNCATE of the table, a second INSERT of the same identity, a
 * change claimed by two lives) leaves that INSERT in place.
 */
export function cancelEndedLives(ready: readonly SourceTransaction[], limit: bigint | null): CancelledLives | null {
  let end = 0;
  while (end < ready.length && (limit === null || ready[end].commitLsn < limit)) end++;
  if (end === 0) return null;
  const drop = new Set<Change>();
  let last = -1;
  const head = ready[0].changes;
  for (let i = 0; i < head.length; i++) {
    const c = head[i];
    if (c.kind !== 'insert') continue;
    const life = followLife(ready, end, c.rel, identity(c.rel, c.msg.newTuple, null), i);
    if (!life || life.changes.some((x) => drop.has(x))) continue;
    for (const x of life.changes) drop.add(x);
    drop.add(c);
    if (life.endsIn > last) last = life.endsIn;
  }
  if (last < 0) return null;
  const group = ready.slice(0, last + 1).map((t) => (t.changes.some((x) => drop.has(x)) ? { ...t, changes: t.changes.filter((x) => !drop.has(x)) } : t));
  return { count: last + 1, group, dropped: drop.size };
}

/** The UPDATEs and the DELETE of one life after the INSERT at ready[0].changes[from], and the queue index of that DELETE; null if it does not end in the queue (or is uncertain). */
function followLife(ready: readonly SourceTransaction[], end: number, rel: RelationInfo, start: Identity | null, from: number): { changes: Change[]; endsIn: number } | null {
  let id = start;
  if (id === null) return null;
  const changes: Change[] = [];
  for (let t = 0; t < end; t++) {
    const list = ready[t].changes;
    for (let i = t === 0 ? from + 1 : 0; i < list.length; i++) {
      const c = list[i];
      if (c.kind === 'truncate') {
        if (c.rels.some((r) => r.oid === rel.oid)) return null;
        continue;
      }
      if (c.rel.oid !== rel.oid) continue;
      if (c.kind === 'insert') {
        if (sameIdentity(identity(c.rel, c.msg.newTuple, null), id)) return null;
      } else if (c.kind === 'update') {
        const old = identity(c.rel, c.msg.oldTuple ?? c.msg.newTuple, null);
        if (old === null) return null;
        if (!sameIdentity(old, id)) continue;
        id = identity(c.rel, c.msg.newTuple, old);
        if (id === null) return null;
        changes.push(c);
      } else {
        const old = identity(c.rel, c.msg.oldTuple, null);
        if (old === null) return null;
        if (!sameIdentity(old, id)) continue;
        changes.push(c);
        return { changes, endsIn: t };
      }
    }
  }
  return null;
}

/** Replica-identity values of a row (every column for FULL). */
type Identity = readonly (Buffer | null)[];

/**
 * The identity of tuple `t` of `rel`; an unchanged TOAST value takes `before`'s (an UPDATE that
 * kept it), or makes the identity unknown (null). null also when the table has no identity.
 */
function identity(rel: RelationInfo, t: TupleData, before: Identity | null): Identity | null {
  const cols = identityColumns(rel);
  if (cols.length === 0) return null;
  const out: (Buffer | null)[] = [];
  for (let i = 0; i < cols.length; i++) {
    if (t.kinds[cols[i]] === COL_UNCHANGED_TOAST) {
      if (!before) return null;
      out.push(before[i]);
    } else out.push(t.values[cols[i]]);
  }
  return out;
}

function identityColumns(rel: RelationInfo): readonly number[] {
  if (rel.replicaIdentity !== 'f') return rel.keyColumns;
  return rel.columns.map((_, i) => i);
}

function sameIdentity(a: Identity | null, b: Identity): boolean {
  if (a === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === null || y === null ? x !== y : !x.equals(y)) return false;
  }
  return true;
}
