/**
 * What a ReplicationStream may confirm, and who waits for it.
 *
 * `applied` only moves forward once a group has committed on every shard it touched, or, on an
 * idle keepalive, when nothing is received-but-unapplied; it is the only position ever sent as
 * flushed to the slot, so the slot never passes a change that is not applied. Cutover waits on
 * it (waitForLsn), VERIFY stops the apply at a point (holdAt), and standby status reports it.
 */
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { formatLsn } from '../../wire/lsn.js';

/** What the progress needs from its stream. */
export interface ProgressHost {
  /** Nothing received-but-unapplied: no group applying or waiting, no half-received transaction. */
  nothingPending(): boolean;
  /** No group is being applied. */
  applyIdle(): boolean;
  /** Commit LSN of the first transaction waiting to be applied, or null. */
  headCommitLsn(): bigint | null;
  /** Sends a standby status update when connected (flushed = applied = `flushed`). */
  sendStatus(written: bigint, flushed: bigint, replyRequested: boolean): void;
  /** Starts applying what waits (after a hold moved or ended). */
  kick(): void;
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

const PING_MS = 50;

export class StreamProgress {
  /** Source commit end LSN durably applied on every destination shard. */
  applied = 0n;
  /** Highest WAL position received (reported as written). */
  private received = 0n;
  /** A keepalive position that becomes ours once everything received before it is applied. */
  private idleMark = 0n;
  /** Confirmed caught up and idle by a keepalive, nothing received since. */
  private caughtUp = false;
  private lastAppliedCommitMs: number | null = null;
  private readonly waiters = new Set<Waiter>();
  private pingTimer: NodeJS.Timeout | null = null;
  private hold: Hold | null = null;

  constructor(private readonly host: ProgressHost) {}

  /** Commit LSN from which nothing may be applied (a hold), or null. */
  get limit(): bigint | null {
    return this.hold?.lsn ?? null;
  }

  /** XLogData starting at `walStart`; `begins`: it opens a (possibly streamed) transaction. */
  onData(walStart: bigint, begins: boolean): void {
    if (walStart > this.received) this.received = walStart;
    if (begins) this.caughtUp = false;
  }

  /** A keepalive: everything relevant before `walEnd` was received; once applied, walEnd is ours. */
  onKeepalive(walEnd: bigint, assemblerIdle: boolean, replyRequested: boolean): void {
    if (walEnd > this.received) this.received = walEnd;
    if (assemblerIdle && walEnd > this.idleMark) this.idleMark = walEnd;
    if (replyRequested) this.sendStatus(false);
    this.advanceIfIdle();
  }

  /** The slot was already confirmed to `lsn` (after a reconnect, what was applied may be ahead of what we knew). */
  confirmedAtLeast(lsn: bigint): void {
    if (lsn > this.applied) this.applied = lsn;
  }

  /** Restarting from the slot: whatever was received but not applied is resent. */
  restart(): void {
    this.received = this.idleMark = this.applied;
  }

  /** A group ending at `endLsn` committed on every shard it touched. */
  committed(endLsn: bigint, commitMs: number): void {
    if (endLsn > this.applied) this.applied = endLsn;
    this.lastAppliedCommitMs = commitMs;
    this.sendStatus(false);
    this.settleWaiters();
  }

  advanceIfIdle(): void {
    if (!this.host.nothingPending() || this.idleMark < this.applied) return;
    this.applied = this.idleMark;
    this.caughtUp = true;
    this.settleWaiters();
  }

  sendStatus(replyRequested: boolean): void {
    const written = this.received > this.applied ? this.received : this.applied;
    this.host.sendStatus(written, this.applied, replyRequested);
  }

  /** Seconds-lag inputs: caught up and idle, and when the last applied transaction committed. */
  lagInputs(): { idle: boolean; lastAppliedCommitMs: number | null } {
    return { idle: this.caughtUp && this.host.nothingPending(), lastAppliedCommitMs: this.lastAppliedCommitMs };
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
    if (this.waiters.size === 0 && this.hold === null) this.stopPinging();
  }

  /**
   * Resolves once applied >= lsn. While waiting and idle, the walsender is pinged so an idle
   * keepalive confirms positions past the last relevant commit quickly.
   */
  waitFor(lsn: bigint, timeoutMs: number): Promise<void> {
    if (this.applied >= lsn) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        lsn,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new PgError(SQLSTATE.queryCanceled, `replication did not reach ${formatLsn(lsn)} within ${timeoutMs} ms (applied up to ${formatLsn(this.applied)})`));
        }, timeoutMs),
      };
      this.waiters.add(w);
      this.startPinging();
    });
  }

  private startPinging(): void {
    if (!this.pingTimer) {
      this.pingTimer = setInterval(() => {
        if (this.host.nothingPending()) this.sendStatus(true);
      }, PING_MS);
    }
    if (this.host.nothingPending()) this.sendStatus(true);
  }

  stopPinging(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /**
   * Stops applying before the first transaction whose commit record is at or after `lsn` (0 =
   * apply nothing more) and resolves once every transaction committed before `lsn` is applied
   * on every destination shard. `holdAt` again moves the point; `release` lets the stream go on.
   */
  holdAt(lsn: bigint, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new PgError(SQLSTATE.queryCanceled, `replication did not reach ${formatLsn(lsn)} within ${timeoutMs} ms (applied up to ${formatLsn(this.applied)})`));
      }, timeoutMs);
      this.hold = {
        lsn,
        reached: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      if (lsn > 0n) this.startPinging();
      this.host.kick();
      this.checkHold();
    });
  }

  release(): void {
    this.hold = null;
    if (this.waiters.size === 0) this.stopPinging();
    this.host.kick();
  }

  /** Reached: applied past the point, or the next transaction waiting is at or after it. */
  checkHold(): void {
    const h = this.hold;
    if (!h) return;
    const idle = this.host.applyIdle();
    const head = this.host.headCommitLsn();
    if (this.applied >= h.lsn || (h.lsn === 0n && idle) || (idle && head !== null && head >= h.lsn)) h.reached();
  }

  rejectWaiters(e: PgError): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiters.clear();
  }
}
