/**
 * ReplicationStream: keeps a sharded destination in sync with one source shard.
 *
 *   walsender ──frames──▶ TransactionAssembler ──whole transactions──▶ ready queue
 *        ▲                                                                  │ groups
 *        └── standby status (flush = appliedLsn) ◀── ShardApplier (one txn per shard, origin LSN)
 *
 * `appliedLsn` only moves forward once a group has committed on every shard it touched (or, on
 * an idle keepalive, when nothing is received-but-unapplied), and it is the only position ever
 * confirmed to the slot. Restarting from the slot and skipping, per shard, what that shard's
 * replication origin says it has makes the stream exactly-once across crashes.
 *
 * The same restart, in place, survives a lost connection: when the walsender or an apply
 * connection dies (a server restart, pg_terminate_backend), everything received but not applied
 * is dropped and, after a backoff, the stream reconnects and restarts from the slot
 * (reconnect.ts says which errors qualify and how long to wait). Waiters and holds stay pending
 * meanwhile, so a cutover waiting on the barrier just waits, bounded by its own timeout.
 */
import type { Config } from '../../config/types.js';
import type { Logger } from '../../observe/log.js';
import { ShardingSchema } from '../../sharding/index.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { ShardApplier, type ApplyHooks } from './applier.js';
import { describeEndpoint, type Endpoint } from '../endpoints.js';
import { SourceProbe, lagBytes as lagBytesOf, lagSeconds as lagSecondsOf } from './lag.js';
import { formatLsn } from '../../wire/lsn.js';
import { RelationCache, decodePgOutput, pgTimestampToDate } from '../../wire/pgoutput.js';
import { ReplicationClient, protoVersionFor, type ReplicationFrame } from './replication-client.js';
import { TransactionAssembler, type SourceTransaction } from './transactions.js';
import { RECONNECT_STABLE_MS, isConnectionLoss, reconnectDelay, type ReconnectPolicy } from './reconnect.js';

export interface StreamOptions {
  source: Endpoint;
  destination: Endpoint[];
  destDatabase: string;
  config: Config;
  slot: string;
  publication: string;
  log: Logger;
  originName: string;
  /** pgoutput binary mode (source and destination column types must match exactly). Default false. */
  binary?: boolean;
  /** Standby status interval, ms (default 1000). */
  statusIntervalMs?: number;
  /** Test hooks (crash simulation). */
  hooks?: ApplyHooks;
  /** The source's logical database and shard count: with several source shards, tables not sharded there (copies on every shard) are applied from shard 0's stream only. */
  sourceDatabase?: string;
  sourceShards?: number;
  /** Skip transactions replayed by a replication stream (they carry an origin): loop prevention for reverse streams. */
  skipOriginated?: boolean;
}

export interface StreamStats {
  transactions: number;
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
  /** Source transactions replayed after a restart and skipped because every shard had them. */
  skipped: number;
}

/** VERIFY's consistent point: apply nothing that commits at or after `lsn` until released. */
interface Hold {
  lsn: bigint;
  reached: () => void;
}

interface Waiter {
  lsn: bigint;
  resolve: () => void;
  reject: (e: PgError) => void;
  timer: NodeJS.Timeout;
}

/** Changes per destination transaction group (several small source transactions share one). */
const GROUP_MAX_CHANGES = 20_000;
const GROUP_MAX_BYTES = 16 << 20;
/** Stop reading the walsender while this many bytes of whole transactions wait to be applied. */
const PAUSE_BYTES = 64 << 20;
const PING_MS = 50;
/** How long a transaction may wait for another source shard's stream to remove a row it collides with, and how often it retries. */
const CONFLICT_WAIT_MS = 30_000;
const CONFLICT_RETRY_MS = 100;
/** How long start() waits for a slot still held by a consumer that is going away. */
const SLOT_BUSY_WAIT_MS = 5000;

/**
 * new → starting → streaming ⇄ waiting (connection lost, backing off) → resuming (reconnecting)
 * → streaming …; stopping → stopped; failed from anywhere.
 */
type StreamState = 'new' | 'starting' | 'streaming' | 'waiting' | 'resuming' | 'stopping' | 'stopped' | 'failed';

export class ReplicationStream {
  onError: ((e: PgError) => void) | null = null;
  /** A connection was lost; attempt `attempt` of `max` to reconnect follows. */
  onReconnecting: ((attempt: number, max: number, err: PgError) => void) | null = null;
  /** Streaming again after a reconnect. */
  onReconnected: (() => void) | null = null;
  stats: StreamStats = { transactions: 0, inserts: 0, updates: 0, deletes: 0, truncates: 0, skipped: 0 };
  /** pgoutput protocol version in use (after start). */
  protoVersion = 0;

  private applied = 0n;
  private received = 0n;
  private idleMark = 0n;
  private caughtUp = false;
  private lastAppliedCommitMs: number | null = null;
  private readonly relations = new RelationCache();
  private readonly assembler: TransactionAssembler;
  private readonly ready: SourceTransaction[] = [];
  private readyBytes = 0;
  private loop: Promise<void> | null = null;
  private paused = false;
  private client: ReplicationClient | null = null;
  private applier: ShardApplier | null = null;
  private newApplier: (() => ShardApplier) | null = null;
  /** Since when the head transaction has been waiting for another source shard's stream (see retryConflict). */
  private conflictSince: number | null = null;
  private readonly probe: SourceProbe;
  private readonly waiters = new Set<Waiter>();
  private statusTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private state: StreamState = 'new';
  private readonly policy: ReconnectPolicy;
  /** Reconnect attempts since the stream last made progress (or stayed up RECONNECT_STABLE_MS). */
  private attempt = 0;
  private streamingSince = 0;
  private backoff: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  private failure: PgError | null = null;
  private hold: Hold | null = null;

  constructor(private readonly opts: StreamOptions) {
    opts.destination.forEach((e, i) => {
      if (e.shard !== i) throw new PgError(SQLSTATE.invalidParameterValue, `destination endpoints must be indexed by shard: entry ${i} is shard ${e.shard}`);
    });
    if (opts.destination.length === 0) throw new PgError(SQLSTATE.invalidParameterValue, 'replication stream needs at least one destination shard');
    this.assembler = new TransactionAssembler(this.relations, (t) => this.onTransaction(t), opts.skipOriginated ?? false);
    this.probe = new SourceProbe(opts.source);
    this.policy = {
      maxAttempts: opts.config.general.resharding_replication_retry_max_attempts,
      minDelayMs: opts.config.general.resharding_replication_retry_min_delay,
    };
  }

  /** Started and applying (holdAt and waitForLsn need it). */
  get streaming(): boolean {
    return this.state === 'streaming';
  }

  /** Source commit end LSN durably applied on every destination shard. */
  get appliedLsn(): bigint {
    return this.applied;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new PgError(SQLSTATE.objectNotInState, 'a ReplicationStream can be started once; create a new one to resume');
    this.state = 'starting';
    const o = this.opts;
    try {
      await this.open();
      if (this.protoVersion < 2) {
        o.log.warn({ server: this.client!.conn.params.get('server_version') }, 'source is older than PostgreSQL 14: pgoutput protocol 1, large transactions arrive only after they commit');
      }
      if (this.state !== 'starting') throw this.failure ?? new PgError(SQLSTATE.objectNotInState, 'replication stream stopped while starting');
      this.streamOn();
      this.statusTimer = setInterval(() => this.sendStatus(this.nothingPending()), o.statusIntervalMs ?? 1000);
      this.statusTimer.unref();
      o.log.info(
        { slot: o.slot, publication: o.publication, proto: this.protoVersion, from: formatLsn(this.applied), shards: o.destination.length, progress: this.applier!.sessions.map((s) => formatLsn(s.progress)) },
        'replication stream started',
      );
    } catch (err) {
      const e = asPgError(err);
      this.cleanup();
      this.state = 'failed';
      this.failure ??= e;
      throw e;
    }
  }

  /** Checks the slot, opens the applier (reading each shard's origin) and starts the walsender from the slot. */
  private async open(): Promise<void> {
    const o = this.opts;
    let slot = await this.probe.slot(o.slot);
    // After a crash the old walsender may need a moment to notice and release the slot.
    for (let waited = 0; slot.active && waited < SLOT_BUSY_WAIT_MS; waited += 100) {
      await new Promise((r) => setTimeout(r, 100));
      slot = await this.probe.slot(o.slot);
    }
    if (slot.plugin !== 'pgoutput') {
      throw new PgError(SQLSTATE.objectNotInState, `replication slot "${o.slot}" uses plugin ${slot.plugin ?? '(physical)'}; pgshift needs a pgoutput logical slot`);
    }
    if (slot.active) {
      throw new PgError('55006', `replication slot "${o.slot}" on ${describeEndpoint(o.source)} is in use by PID ${slot.activePid}`, {
        hint: 'another stream (or a subscription) is consuming it; stop that first',
      });
    }
    // After a reconnect what was applied may be ahead of what the slot had been told.
    if ((slot.confirmedFlush ?? 0n) > this.applied) this.applied = slot.confirmedFlush ?? 0n;
    if (!this.newApplier) {
      const n = o.destination.length;
      const sharding = n > 1 ? new ShardingSchema(o.destDatabase, o.config.sharded_tables, o.config.sharded_mappings, o.config.omnisharded_tables, n) : null;
      const sourceSharding =
        o.sourceDatabase && (o.sourceShards ?? 1) > 1 ? new ShardingSchema(o.sourceDatabase, o.config.sharded_tables, o.config.sharded_mappings, o.config.omnisharded_tables, o.sourceShards!) : null;
      this.newApplier = () => new ShardApplier({ destination: o.destination, sharding, originName: o.originName, log: o.log, binary: o.binary ?? false, hooks: o.hooks, sourceSharding, sourceShard: o.source.shard });
    }
    this.applier = this.newApplier();
    await this.applier.open();
    this.client = await ReplicationClient.connect(o.source);
    this.protoVersion = protoVersionFor(this.client.serverMajor);
    await this.client.startReplication(
      { slot: o.slot, publication: o.publication, startLsn: 0n, protoVersion: this.protoVersion, binary: o.binary ?? false },
      (f) => this.onFrame(f),
    );
  }

  /** Streaming from here: the walsender's end is watched (it may have ended already). */
  private streamOn(): void {
    this.state = 'streaming';
    this.streamingSince = Date.now();
    const client = this.client!;
    client.onEnd((err) => {
      if (client === this.client && this.state === 'streaming') this.lost(err ?? new PgError(SQLSTATE.connectionFailure, `replication stream from ${describeEndpoint(this.opts.source)} ended`));
    });
    this.kick();
  }

  /**
   * A connection broke or applying failed. Connection loss while streaming: reconnect (up to the
   * configured attempts); anything else fails the stream.
   */
  private lost(e: PgError): void {
    if (this.state !== 'streaming') {
      // waiting/resuming: already reconnecting (this is the old connections' end); stopped/failed: nothing to do.
      if (this.state === 'starting' || this.state === 'stopping') this.fail(e);
      return;
    }
    if (!isConnectionLoss(e) || this.policy.maxAttempts === 0) {
      this.fail(e);
      return;
    }
    if (Date.now() - this.streamingSince >= RECONNECT_STABLE_MS) this.attempt = 0;
    this.state = 'waiting';
    this.client?.destroy();
    this.applier?.destroy();
    void this.reconnect(e);
  }

  /** Backs off, then restarts from the slot; fails the stream once the attempts are used up. */
  private async reconnect(first: PgError): Promise<void> {
    const o = this.opts;
    let err = first;
    // The group being applied ends with its connections; whatever was received is resent.
    if (this.loop) await this.loop;
    this.ready.length = 0;
    this.readyBytes = 0;
    this.paused = false;
    this.assembler.reset();
    this.received = this.idleMark = this.applied;
    this.conflictSince = null;
    while (this.state === 'waiting') {
      this.attempt++;
      const max = this.policy.maxAttempts;
      if (this.attempt > max) {
        this.fail(
          new PgError(err.code, `replication stream from ${describeEndpoint(o.source)} lost its connection and ${max} reconnect attempts failed: ${err.message}`, {
            hint: 'check that the source and destination servers are up; resharding_replication_retry_max_attempts sets the number of attempts',
          }),
        );
        return;
      }
      const delayMs = reconnectDelay(this.policy, this.attempt);
      o.log.warn({ slot: o.slot, attempt: this.attempt, max, delayMs, code: err.code, err: err.message }, 'replication connection lost; reconnecting');
      this.onReconnecting?.(this.attempt, max, err);
      await new Promise<void>((wake) => {
        this.backoff = { timer: setTimeout(wake, delayMs), wake };
      });
      this.backoff = null;
      if (this.state !== 'waiting') return;
      this.state = 'resuming';
      try {
        await this.open();
      } catch (e) {
        err = asPgError(e);
        if (this.state !== 'resuming') return; // stopped or failed meanwhile; that cleaned up
        this.client?.destroy();
        this.applier?.destroy();
        // 55006: the old walsender or apply backend has not let go of the slot or origin yet.
        if (!isConnectionLoss(err) && err.code !== '55006') {
          this.fail(err);
          return;
        }
        this.state = 'waiting';
        continue;
      }
      if (this.state !== 'resuming') {
        this.client?.destroy();
        this.applier?.destroy();
        return;
      }
      this.streamOn();
      o.log.info({ slot: o.slot, attempt: this.attempt, from: formatLsn(this.applied), progress: this.applier!.sessions.map((s) => formatLsn(s.progress)) }, 'replication stream reconnected');
      this.onReconnected?.();
    }
  }

  private onFrame(f: ReplicationFrame): void {
    if (!this.running && this.state !== 'resuming') return; // stopping: whatever arrives now is resent after a restart
    try {
      if (f.kind === 'xlog') {
        if (f.walStart > this.received) this.received = f.walStart;
        const msg = decodePgOutput(f.data, this.assembler.inStream, this.protoVersion);
        if (msg.type === 'begin' || msg.type === 'streamStart') this.caughtUp = false;
        this.assembler.push(msg, f.data.length);
      } else {
        if (f.walEnd > this.received) this.received = f.walEnd;
        // Everything relevant before walEnd has been received: once applied, walEnd is ours.
        if (this.assembler.idle && f.walEnd > this.idleMark) this.idleMark = f.walEnd;
        if (f.replyRequested) this.sendStatus(false);
        this.advanceIfIdle();
      }
    } catch (err) {
      this.fail(asPgError(err));
    }
  }

  private onTransaction(t: SourceTransaction): void {
    this.ready.push(t);
    this.readyBytes += t.bytes;
    if (!this.paused && this.readyBytes > PAUSE_BYTES) {
      this.paused = true;
      this.client?.pause();
    }
    this.kick();
  }

  private kick(): void {
    if (!this.loop && this.ready.length > 0) {
      this.loop = this.applyLoop().finally(() => {
        this.loop = null;
        this.checkHold();
      });
    }
  }

  /** Streaming, or reconnecting after a lost connection (waiters and holds stay pending). */
  private get alive(): boolean {
    return this.state === 'streaming' || this.state === 'waiting' || this.state === 'resuming';
  }

  /** Applying is allowed once the applier is open (frames may arrive before start() returns). */
  private get running(): boolean {
    return this.state === 'streaming' || this.state === 'starting';
  }

  private nothingPending(): boolean {
    return this.loop === null && this.ready.length === 0 && this.assembler.idle;
  }

  private advanceIfIdle(): void {
    if (!this.nothingPending() || this.idleMark < this.applied) return;
    this.applied = this.idleMark;
    this.caughtUp = true;
    this.settleWaiters();
  }

  private async applyLoop(): Promise<void> {
    while (this.ready.length > 0 && this.running) {
      const applier = this.applier!;
      const limit = this.hold?.lsn ?? null;
      if (limit !== null && this.ready[0].commitLsn >= limit) break;
      let changes = 0;
      let bytes = 0;
      let k = 0;
      // While waiting out a cross-stream conflict, one source transaction at a time.
      while (k < this.ready.length && (limit === null || this.ready[k].commitLsn < limit) && (k === 0 || (this.conflictSince === null && changes + this.ready[k].changes.length <= GROUP_MAX_CHANGES && bytes + this.ready[k].bytes <= GROUP_MAX_BYTES))) {
        changes += this.ready[k].changes.length;
        bytes += this.ready[k].bytes;
        k++;
      }
      const group = this.ready.splice(0, k);
      let counts;
      try {
        counts = await applier.apply(group);
      } catch (err) {
        const e = asPgError(err);
        if (await this.retryConflict(e, group)) continue;
        this.lost(e);
        return;
      }
      this.conflictSince = null;
      if (counts.skipped < group.length) this.attempt = 0; // progress: a later loss gets every attempt again
      const last = group[group.length - 1];
      this.stats.transactions += group.length - counts.skipped;
      this.stats.skipped += counts.skipped;
      this.stats.inserts += counts.inserts;
      this.stats.updates += counts.updates;
      this.stats.deletes += counts.deletes;
      this.stats.truncates += counts.truncates;
      if (last.endLsn > this.applied) this.applied = last.endLsn;
      this.lastAppliedCommitMs = pgTimestampToDate(last.commitTime).getTime();
      this.readyBytes -= bytes;
      if (this.paused && this.readyBytes < PAUSE_BYTES / 2) {
        this.paused = false;
        this.client?.resume();
      }
      this.sendStatus(false);
      this.settleWaiters();
    }
    queueMicrotask(() => this.advanceIfIdle());
  }

  /**
   * With several source shards, a row the application moved from shard A to shard B (one
   * transaction: DELETE on A, INSERT on B) reaches this destination through two independent
   * streams, in no fixed order. When B's INSERT comes first it collides with the copy A's stream
   * has not deleted yet (23505). Nothing of the failed group committed (or, if a shard did, its
   * origin skips it on replay), so the group goes back to the head of the queue and is retried
   * one transaction at a time on a fresh applier until the other stream has caught up, for at
   * most CONFLICT_WAIT_MS; a conflict that outlasts that is real and fails the stream. A deadlock
   * (40P01) or serialization failure (40001) is retried the same way, for any stream.
   */
  private async retryConflict(e: PgError, group: SourceTransaction[]): Promise<boolean> {
    // A deadlock or serialization failure is transient whatever the sources (several streams,
    // or the application, write the same destination rows); a unique conflict only with
    // several source shards, as explained above.
    const transient = e.code === '40P01' || e.code === '40001';
    if (!(transient || (e.code === '23505' && (this.opts.sourceShards ?? 1) >= 2)) || !this.newApplier || !this.running) return false;
    const now = Date.now();
    this.conflictSince ??= now;
    if (now - this.conflictSince > CONFLICT_WAIT_MS) return false;
    this.ready.unshift(...group);
    this.opts.log.info({ shard: this.opts.source.shard, waitedMs: now - this.conflictSince, err: e.message }, transient ? 'deadlock or serialization failure while applying: retrying the group' : 'unique conflict while applying from several source shards: waiting for the other streams (a row moved between shards)');
    await new Promise((r) => setTimeout(r, CONFLICT_RETRY_MS));
    if (!this.running) return true;
    const applier = this.newApplier();
    try {
      await applier.open();
    } catch (err) {
      this.lost(asPgError(err));
      return true;
    }
    this.applier = applier;
    return true;
  }

  private sendStatus(replyRequested: boolean): void {
    if (this.state !== 'streaming' && this.state !== 'stopping') return;
    const written = this.received > this.applied ? this.received : this.applied;
    this.client?.sendStatus(written, this.applied, this.applied, replyRequested);
  }

  private settleWaiters(): void {
    this.checkHold();
    for (const w of this.waiters) {
      if (this.applied >= w.lsn) {
        clearTimeout(w.timer);
        this.waiters.delete(w);
        w.resolve();
      }
    }
    if (this.waiters.size === 0 && this.hold === null && this.pingTimer) {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
  }

  /**
   * Resolves once appliedLsn >= lsn. While waiting and idle, the walsender is pinged so an idle
   * keepalive confirms positions past the last relevant commit quickly.
   */
  waitForLsn(lsn: bigint, timeoutMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.applied >= lsn) return Promise.resolve();
    if (!this.alive) return Promise.reject(new PgError(SQLSTATE.objectNotInState, `replication stream is ${this.state}`));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        lsn,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(
            new PgError(SQLSTATE.queryCanceled, `replication did not reach ${formatLsn(lsn)} within ${timeoutMs} ms (applied up to ${formatLsn(this.applied)})`),
          );
        }, timeoutMs),
      };
      this.waiters.add(w);
      this.startPinging();
    });
  }

  private startPinging(): void {
    if (!this.pingTimer) {
      this.pingTimer = setInterval(() => {
        if (this.nothingPending()) this.sendStatus(true);
      }, PING_MS);
    }
    if (this.nothingPending()) this.sendStatus(true);
  }

  /**
   * Stops applying before the first transaction whose commit record is at or after `lsn` (0 =
   * apply nothing more) and resolves once every transaction committed before `lsn` is applied
   * on every destination shard: the destination then holds exactly the source as of `lsn`.
   * `holdAt` again moves the point; `release` lets the stream go on.
   */
  holdAt(lsn: bigint, timeoutMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.alive) return Promise.reject(new PgError(SQLSTATE.objectNotInState, `replication stream is ${this.state}`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new PgError(SQLSTATE.queryCanceled, `replication did not reach ${formatLsn(lsn)} within ${timeoutMs} ms (applied up to ${formatLsn(this.applied)})`));
      }, timeoutMs);
      const hold: Hold = {
        lsn,
        reached: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.hold = hold;
      if (lsn > 0n) this.startPinging();
      this.kick();
      this.checkHold();
    });
  }

  /** Ends a hold: the stream applies what waited. */
  release(): void {
    this.hold = null;
    if (this.waiters.size === 0 && this.pingTimer) {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
    this.kick();
  }

  /** Reached: applied past the point, or the next transaction waiting is at or after it. */
  private checkHold(): void {
    const h = this.hold;
    if (!h) return;
    if (this.applied >= h.lsn || (h.lsn === 0n && this.loop === null) || (this.loop === null && this.ready.length > 0 && this.ready[0].commitLsn >= h.lsn)) h.reached();
  }

  /** Bytes of source WAL not yet applied (0 when caught up and idle). */
  async lagBytes(): Promise<number> {
    return lagBytesOf(await this.probe.currentWalLsn(), this.applied);
  }

  lagSeconds(): number {
    const oldest = this.ready.length > 0 ? pgTimestampToDate(this.ready[0].commitTime).getTime() : null;
    return lagSecondsOf(Date.now(), this.caughtUp && this.nothingPending(), this.lastAppliedCommitMs, oldest);
  }

  /** Finishes the group being applied, confirms appliedLsn to the slot and closes everything. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'failed' || this.state === 'new') {
      this.cleanup();
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    if (this.loop) await this.loop;
    this.sendStatus(false);
    try {
      await this.client?.stop();
    } finally {
      this.cleanup(true);
      this.state = 'stopped';
      this.rejectWaiters(new PgError(SQLSTATE.objectNotInState, 'replication stream stopped'));
      this.opts.log.info({ slot: this.opts.slot, applied: formatLsn(this.applied) }, 'replication stream stopped');
    }
  }

  private fail(e: PgError): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.failure = e;
    const wasStarting = this.state === 'starting';
    this.state = 'failed';
    this.cleanup();
    this.rejectWaiters(e);
    if (wasStarting) return; // start() rejects with it
    this.opts.log.error({ slot: this.opts.slot, code: e.code, err: e.message }, 'replication stream failed');
    this.onError?.(e);
  }

  private rejectWaiters(e: PgError): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiters.clear();
  }

  private cleanup(graceful = false): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.statusTimer = this.pingTimer = null;
    if (this.backoff) {
      clearTimeout(this.backoff.timer);
      this.backoff.wake();
    }
    this.client?.destroy();
    if (graceful) this.applier?.close();
    else this.applier?.destroy();
    this.probe.close();
  }
}
