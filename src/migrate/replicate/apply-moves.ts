/**
 * Rows that change destination shards while a group is applied: the DELETE on the old shard
 * and INSERT on the new one, with the unchanged TOAST values the source does not resend read
 * from the old shard; for tables whose shard key is not in the replica identity, finding the
 * shard the row is on (the probing pass); and, replaying after a crash, removing a copy a shard
 * that did not commit still holds. ShardApplier decides when; this file does the moving.
 */
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { COL_UNCHANGED_TOAST, type TupleData } from '../../wire/pgoutput.js';
import type { Route } from './apply-route.js';
import { columnsKey, deleteStatement, selectStatement } from './apply-sql.js';
import type { ParamValue, ShardSession } from './shard-session.js';

/** What the moves share with their applier (its sessions, parameter array and group state). */
export interface MoveContext {
  readonly sessions: readonly ShardSession[];
  /** The shared parameter array (statements are pipelined with copies of it). */
  readonly params: ParamValue[];
  readonly format: 0 | 1;
  /** Shards rows with unchanged TOAST values were moved away from in the current group (they commit last). */
  readonly toastSources: Set<number>;
  /** Copies values of `cols` into `params` from position `at`; returns the new length. */
  fill(values: readonly (Buffer | null)[], cols: readonly number[], at: number): number;
  /** INSERT of `values` on `shard` (every shard for UNKNOWN), except skipped shards. */
  insert(r: Route, values: readonly (Buffer | null)[], shard: number, skip: boolean[]): void;
}

export class RowMoves {
  constructor(private readonly c: MoveContext) {}

  /**
   * Probing pass, 'probe' table: `update` (its `n` parameters filled) on the new tuple's shard,
   * waiting for the answer (a round trip; only groups in which a row changed shards pay it).
   * Not there: the row is on
   * another shard; DELETE … RETURNING it there (one round trip to each other shard, in
   * parallel) and INSERT it on the new shard with its unchanged TOAST values.
   */
  async probe(
    r: Route,
    nt: TupleData,
    old: TupleData,
    where: number[],
    target: number,
    toast: boolean,
    skip: boolean[],
    update: { name: string; sql: string },
    n: number,
  ): Promise<void> {
    const t = r.target;
    if (await this.c.sessions[target].fetchRow(update, this.c.params.slice(0, n), n, this.c.format)) return;
    const del = deleteStatement(t, where, '', true);
    n = this.c.fill(old.values, where, 0);
    const args = this.c.params.slice(0, n);
    const others = this.c.sessions.filter((s) => s.shard !== target && !skip[s.shard]);
    const rows = await Promise.all(others.map((s) => s.fetchRow(del, args, n, this.c.format)));
    const from = others.filter((_, i) => rows[i] !== null).map((s) => s.shard);
    const found = rows.find((x) => x !== null) ?? null;
    if (from.length > 1) {
      throw new PgError(SQLSTATE.objectNotInState, `cannot move a row of ${t.qname} to shard ${target}: its replica identity matches rows on shards ${from.join(', ')}`, {
        hint: 'the replica identity (primary key) of a sharded table must be unique across all shards',
      });
    }
    const row: (Buffer | null)[] = nt.values.slice();
    if (found) {
      if (toast) this.c.toastSources.add(from[0]);
      for (let i = 0; i < nt.kinds.length; i++) if (nt.kinds[i] === COL_UNCHANGED_TOAST) row[i] = found[i];
    } else if (toast || !skip.some((x) => x)) {
      // Replaying after a crash, a shard that committed this group may have taken the row away
      // already; the complete new tuple is then all we need. Otherwise the row is gone.
      throw new PgError(
        SQLSTATE.objectNotInState,
        `cannot apply an UPDATE of ${t.qname} on shard ${target}: the row is on no destination shard (destination out of sync with the source)`,
      );
    }
    this.c.insert(r, row, target, skip);
  }

  /**
   * Replay after a crash: the row's new shard already committed this group, so the row is
   * there in its final state; remove any copy a shard that did not commit still holds.
   */
  removeElsewhere(r: Route, old: TupleData, where: number[], target: number, skip: boolean[]): undefined {
    const del = deleteStatement(r.target, where, '');
    const n = this.c.fill(old.values, where, 0);
    for (const s of this.c.sessions) if (s.shard !== target && !skip[s.shard]) s.exec(del, this.c.params, n, this.c.format);
    return undefined;
  }

  /**
   * The shard key changed shards: DELETE on the old shard, INSERT on the new one. Unchanged
   * TOAST columns are not in the change, so they are read from the old shard first (inside its
   * open transaction, after the earlier changes of this group).
   */
  async move(
    r: Route,
    nt: TupleData,
    old: TupleData,
    where: number[],
    oldShard: number,
    newShard: number,
    toast: boolean,
    skip: boolean[],
  ): Promise<void> {
    const t = r.target;
    const row: (Buffer | null)[] = nt.values.slice();
    if (toast && !skip[newShard]) {
      this.c.toastSources.add(oldShard);
      const missing: number[] = [];
      for (let i = 0; i < nt.kinds.length; i++) if (nt.kinds[i] === COL_UNCHANGED_TOAST) missing.push(i);
      const sel = selectStatement(t, missing, where, columnsKey(missing) + '|' + columnsKey(where));
      const n = this.c.fill(old.values, where, 0);
      const got = await this.c.sessions[oldShard].fetchRow(sel, this.c.params.slice(0, n), n, this.c.format);
      if (!got) {
        throw new PgError(
          SQLSTATE.objectNotInState,
          `cannot move a row of ${t.qname} from shard ${oldShard} to shard ${newShard}: the row is not on shard ${oldShard} (destination out of sync with the source)`,
        );
      }
      for (let i = 0; i < missing.length; i++) row[missing[i]] = got[i];
    }
    if (!skip[oldShard]) {
      const del = deleteStatement(t, where, t.match === 'key' ? '' : columnsKey(where));
      const n = this.c.fill(old.values, where, 0);
      this.c.sessions[oldShard].exec(del, this.c.params, n, this.c.format);
    }
    this.c.insert(r, row, newShard, skip);
  }
}
