/**
 * ReplicationStream: keeps a sharded destination in sync with one source shard.
 *
 *   walsender ──frames──▶ TransactionAssembler ──whole transactions──▶ ready queue
 *        ▲                                                                  │ groups
 *        └── standby status (flush = appliedLsn) ◀── ShardApplier (one txn per shard, origin LSN)
 *
 * This file owns the stream's life (its state machine: start, reconnect, stop, fail). What may be
 * confirmed is stream-progress.ts; the queue of transactions and the apply loop apply-queue.ts;
 * the ordering against other streams into the same destination cross-stream-order.ts.
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
import { RelationCache, decodePgOutput } from '../../wire/pgoutput.js';
import { ReplicationClient, protoVersionFor, type ReplicationFrame } from './replication-client.js';
import { TransactionAssembler } from './transactions.js';
import { ApplyQueue, type StreamStats } from './apply-queue.js';
import { StreamProgress } from './stream-progress.js';
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

  private readonly relations = new RelationCache();
  private readonly assembler: TransactionAssembler;
  private readonly progress: StreamProgress;
  private readonly queue: ApplyQueue;
  private client: ReplicationClient | null = null;
  private applier: ShardApplier | null = null;
  private newApplier: (() => ShardApplier) | null = null;
  private readonly probe: SourceProbe;
  private statusTimer: NodeJS.Timeout | null = null;
  private state: StreamState = 'new';
  private readonly policy: ReconnectPolicy;
  /** Reconnect attempts since the stream last made progress (or stayed up RECONNECT_STABLE_MS). */
  private attempt = 0;
  private streamingSince = 0;
  private backoff: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  private failure: PgError | null = null;

  constructor(private readonly opts: StreamOptions) {
    opts.destination.forEach((e, i) => {
      if (e.shard !== i) throw new PgError(SQLSTATE.invalidParameterValue, `destination endpoints must be indexed by shard: entry ${i} is shard ${e.shard}`);
    });
    if (opts.destination.length === 0) throw new PgError(SQLSTATE.invalidParameterValue, 'replication stream needs at least one destination shard');
    this.progress = new StreamProgress({
      nothingPending: () => this.nothingPending(),
      applyIdle: () => this.queue.applyIdle,
      headCommitLsn: () => this.queue.headCommitLsn(),
      sendStatus: (written, flushed, replyRequested) => {
        if (this.state === 'streaming' || this.state === 'stopping') this.client?.sendStatus(written, flushed, flushed, replyRequested);
      },
      kick: () => this.queue.kick(),
    });
    this.queue = new ApplyQueue(
      {
        applier: () => this.applier!,
        running: () => this.running,
        reopenApplier: () => this.reopenApplier(),
        lost: (e) => this.lost(e),
        progressed: () => {
          this.attempt = 0;
        },
        pauseReading: () => this.client?.pause(),
        resumeReading: () => this.client?.resume(),
      },
      this.progress,
      this.stats,
      opts.log,
      opts.source.shard,
      opts.sourceShards ?? 1,
    );
    this.assembler = new TransactionAssembler(this.relations, (t) => this.queue.push(t), opts.skipOriginated ?? false);
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
    return this.progress.applied;
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
      this.statusTimer = setInterval(() => this.progress.sendStatus(this.nothingPending()), o.statusIntervalMs ?? 1000);
      this.statusTimer.unref();
      o.log.info(
        { slot: o.slot, publication: o.publication, proto: this.protoVersion, from: formatLsn(this.progress.applied), shards: o.destination.length, progress: this.applier!.sessions.map((s) => formatLsn(s.progress)) },
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
    this.progress.confirmedAtLeast(slot.confirmedFlush ?? 0n);
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
    this.queue.kick();
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
    await this.queue.settle();
    this.queue.reset();
    this.assembler.reset();
    this.progress.restart();
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
      o.log.info({ slot: o.slot, attempt: this.attempt, from: formatLsn(this.progress.applied), progress: this.applier!.sessions.map((s) => formatLsn(s.progress)) }, 'replication stream reconnected');
      this.onReconnected?.();
    }
  }

  private onFrame(f: ReplicationFrame): void {
    if (!this.running && this.state !== 'resuming') return; // stopping: whatever arrives now is resent after a restart
    try {
      if (f.kind === 'xlog') {
        const msg = decodePgOutput(f.data, this.assembler.inStream, this.protoVersion);
        this.progress.onData(f.walStart, msg.type === 'begin' || msg.type === 'streamStart');
        this.assembler.push(msg, f.data.length);
      } else {
        this.progress.onKeepalive(f.walEnd, this.assembler.idle, f.replyRequested);
      }
    } catch (err) {
      this.fail(asPgError(err));
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
    return this.queue.idle && this.assembler.idle;
  }

  /** A fresh applier after a failed group (its connections were destroyed); false if that failed, which the stream handled. */
  private async reopenApplier(): Promise<boolean> {
    const applier = this.newApplier!();
    try {
      await applier.open();
    } catch (err) {
      this.lost(asPgError(err));
      return false;
    }
    this.applier = applier;
    return true;
  }

  /** Resolves once appliedLsn >= lsn (StreamProgress.waitFor). */
  waitForLsn(lsn: bigint, timeoutMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.progress.applied >= lsn) return Promise.resolve();
    if (!this.alive) return Promise.reject(new PgError(SQLSTATE.objectNotInState, `replication stream is ${this.state}`));
    return this.progress.waitFor(lsn, timeoutMs);
  }

  /** Applies nothing committed at or after `lsn`, resolving once everything before it is applied: the destination then holds the source as of `lsn` (StreamProgress.holdAt). */
  holdAt(lsn: bigint, timeoutMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.alive) return Promise.reject(new PgError(SQLSTATE.objectNotInState, `replication stream is ${this.state}`));
    return this.progress.holdAt(lsn, timeoutMs);
  }

  /** Ends a hold: the stream applies what waited. */
  release(): void {
    this.progress.release();
  }

  /** Bytes of source WAL not yet applied (0 when caught up and idle). */
  async lagBytes(): Promise<number> {
    return lagBytesOf(await this.probe.currentWalLsn(), this.progress.applied);
  }

  lagSeconds(): number {
    const { idle, lastAppliedCommitMs } = this.progress.lagInputs();
    return lagSecondsOf(Date.now(), idle, lastAppliedCommitMs, this.queue.oldestCommitMs());
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
    await this.queue.settle();
    this.progress.sendStatus(false);
    try {
      await this.client?.stop();
    } finally {
      this.cleanup(true);
      this.state = 'stopped';
      this.progress.rejectWaiters(new PgError(SQLSTATE.objectNotInState, 'replication stream stopped'));
      this.opts.log.info({ slot: this.opts.slot, applied: formatLsn(this.progress.applied) }, 'replication stream stopped');
    }
  }

  private fail(e: PgError): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.failure = e;
    const wasStarting = this.state === 'starting';
    this.state = 'failed';
    this.cleanup();
    this.progress.rejectWaiters(e);
    if (wasStarting) return; // start() rejects with it
    this.opts.log.error({ slot: this.opts.slot, code: e.code, err: e.message }, 'replication stream failed');
    this.onError?.(e);
  }

  private cleanup(graceful = false): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    this.progress.stopPinging();
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
