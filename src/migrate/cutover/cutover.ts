/**
 * The cutover: moves an application's traffic from the source to the destination of a running
 * replication task with a pause of well under a second, no client error and no lost write.
 *
 *  1. wait until lag ≤ cutover_traffic_stop_threshold (traffic still flowing);
 *  2. close the pause gate for the source database: new transactions wait in pgshift;
 *  3. let open transactions finish; past cutover_grace_period they are ended with a clear error,
 *     so no write reaches the source after the barrier;
 *  4. barrier: read pg_current_wal_lsn() on every source shard and wait until replication has
 *     applied it (pgshift's own applier knows exactly what it committed);
 *  5. bring every destination sequence past the source's value;
 *  6. (done before step 2) the reverse slot on the destination; its stream skips the forward
 *     stream's origin-tagged writes, so only the application's writes after the swap flow back;
 *  7. record the new routing durably (the journal's 'switched'), then swap source and
 *     destination in the configuration (point of no return);
 *  8. open the gate: waiting transactions run on the new cluster; then start the reverse
 *     replication task from the slot made in step 6.
 *
 * Any failure before step 7 reopens the gate with nothing changed and the forward task still
 * running. cutover_timeout bounds steps 2–6; with cutover_timeout_action = "cutover" the swap
 * happens anyway once the barrier is reached.
 */
import type { Config } from '../../config/types.js';
import type { PauseGate } from '../../frontend/pause-gate.js';
import type { Logger } from '../../observe/log.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { formatLsn } from '../../wire/lsn.js';
import { faultPoint } from '../fault.js';
import { isConnectionLoss } from '../replicate/reconnect.js';

/** The data path, as the cutover sees it. */
export interface CutoverTraffic {
  readonly gate: PauseGate;
  readonly currentConfig: Config;
  /** Installs the swapped config (pools for the moved database now point at the destination). */
  applyConfig(c: Config): void;
  /** Opens server connections to `destination` for the users of `source`, ahead of the swap. */
  prewarm?(source: string, destination: string): Promise<void>;
}

/** What the cutover needs from the replication task being cut over. */
export interface CutoverSubject {
  /** Logical database name clients use (the gate is closed for it). */
  source: string;
  destination: string;
  /** Bytes of lag, summed over source shards. */
  lagBytes(): Promise<number>;
  /** pg_current_wal_lsn() of every source shard (read while paused). */
  sourceLsns(): Promise<bigint[]>;
  /** Resolves when replication of source shard i has applied lsns[i]. */
  waitApplied(lsns: bigint[], timeoutMs: number): Promise<void>;
  syncSequences(): Promise<void>;
  /** Creates the reverse slot on the destination (before the pause); returns a handle for start/abort. */
  prepareReverse(timeoutMs: number): Promise<ReverseHandle>;
  /** Work that shortens the pause: open connections the pause will need, warm the destination's pools. */
  beforePause?(): Promise<void>;
  /** Returns the config with source and destination swapped. */
  swappedConfig(config: Config): Config;
  /** After the swap: persists the config when cutover_save_config is set. */
  saveConfig(config: Config): Promise<void>;
  /** After the gate reopened: stop the forward streams and drop their slots. */
  finishForward(): Promise<void>;
  /**
   * Durably records that the cutover reached `phase` (the journal, DESIGN.md §8). 'switched'
   * records the new routing in the state directory: it is written before the gate opens.
   */
  record(phase: 'barrier' | 'sequences' | 'switched' | 'rolled_back', barrier?: bigint[]): Promise<void>;
}

export interface ReverseHandle {
  start(): Promise<void>;
  abort(): Promise<void>;
  readonly taskId: number | null;
}

export interface CutoverSettings {
  trafficStopThreshold: number;
  replicationLagThreshold: number;
  lastTransactionDelay: number;
  timeout: number;
  timeoutAction: 'abort' | 'cutover';
  gracePeriod: number;
}

export function cutoverSettings(c: Config): CutoverSettings {
  const g = c.general;
  return {
    trafficStopThreshold: g.cutover_traffic_stop_threshold,
    replicationLagThreshold: g.cutover_replication_lag_threshold,
    lastTransactionDelay: g.cutover_last_transaction_delay,
    timeout: g.cutover_timeout,
    timeoutAction: g.cutover_timeout_action,
    gracePeriod: g.cutover_grace_period,
  };
}

export type CutoverStep = 'wait_lag' | 'prepare' | 'pause' | 'drain' | 'barrier' | 'sequences' | 'reverse_slot' | 'swap' | 'resume';

export interface CutoverReport {
  /** Milliseconds the gate was closed: the longest any new transaction could have waited. */
  pauseMs: number;
  steps: Partial<Record<CutoverStep, number>>;
  /** Transactions ended because they outlived the grace period. */
  abortedTransactions: number;
  barrier: string[];
  reverseTaskId: number | null;
  /** Why the reverse task did not start (the cutover itself succeeded), or null. */
  reverseError: string | null;
  finishedAt: Date;
}

/** For tests of the abort paths: throw at the start of a step. */
export type FailureInjector = (step: CutoverStep) => void | Promise<void>;

export async function runCutover(subject: CutoverSubject, traffic: CutoverTraffic, s: CutoverSettings, log: Logger, inject?: FailureInjector, onStep?: (step: CutoverStep) => void): Promise<CutoverReport> {
  const steps: CutoverReport['steps'] = {};
  let mark = Date.now();
  const step = (name: CutoverStep) => {
    const now = Date.now();
    steps[name] = now - mark;
    mark = now;
  };
  const enter = async (name: CutoverStep) => {
    onStep?.(name);
    await inject?.(name);
  };
  const db = subject.source;

  let pausedAt: number | null = null;
  let reverse: ReverseHandle | null = null;
  let aborted = 0;
  let barrier: bigint[] = [];
  let swapped: Config;
  try {
    // 1. Wait (with traffic flowing) until the destination is nearly caught up.
    await enter('wait_lag');
    const lagDeadline = Date.now() + s.timeout;
    for (;;) {
      // A server down (the lag cannot be read, or replication is reconnecting) is waited out
      // like a lag above the threshold: traffic still flows to the source meanwhile.
      const lag = await subject.lagBytes().catch((err) => {
        const e = asPgError(err);
        if (!isConnectionLoss(e)) throw e;
        return e;
      });
      if (typeof lag === 'number' && lag <= s.trafficStopThreshold) break;
      if (Date.now() > lagDeadline) {
        if (typeof lag === 'number') throw new PgError(SQLSTATE.objectNotInState, `replication lag is ${lag} bytes, above cutover_traffic_stop_threshold (${s.trafficStopThreshold}) for cutover_timeout (${s.timeout} ms); traffic was never paused`);
        throw new PgError(lag.code, `replication was not reachable for cutover_timeout (${s.timeout} ms): ${lag.message}; traffic was never paused`, { hint: 'run CUTOVER again once the servers are back and SHOW TASKS shows the task replicating' });
      }
      await sleep(typeof lag === 'number' ? 50 : 200);
    }
    step('wait_lag');

    // The reverse slot is made before the pause: on the destination, until the swap, only the
    // forward stream writes, and the reverse stream skips those (they carry its origin).
    await enter('reverse_slot');
    reverse = await subject.prepareReverse(Math.max(1, lagDeadline - Date.now()));
    step('reverse_slot');
    if (subject.beforePause) await subject.beforePause();
    step('prepare');

    // 2. Pause.
    await enter('pause');
    pausedAt = Date.now();
    traffic.gate.close(db, 'cutover');
    log.info({ database: db }, 'cutover: traffic paused');
    const deadline = pausedAt + s.timeout;

    // 3. Open transactions finish; after the grace period they are ended.
    await enter('drain');
    const quiet = traffic.gate.quiet(db);
    const graceOver = await Promise.race([quiet.then(() => false), sleep(Math.min(s.gracePeriod, Math.max(0, deadline - Date.now()))).then(() => true)]);
    if (graceOver) {
      const holders = traffic.gate.holdersOf(db);
      aborted = holders.length;
      const err = new PgError(SQLSTATE.adminShutdown, `transaction ended by pgshift: database "${db}" is being moved and this transaction stayed open longer than cutover_grace_period (${s.gracePeriod} ms)`, { hint: 'retry the transaction; it will run on the new cluster' });
      for (const h of holders) h.abortTransaction(err);
      log.warn({ database: db, aborted }, 'cutover: ended transactions that outlived the grace period');
      await withTimeout(traffic.gate.quiet(db), 2000, 'open transactions did not end after being cancelled');
    }
    step('drain');

    // 4. Barrier: everything written on the source is applied on the destination.
    await enter('barrier');
    barrier = await subject.sourceLsns();
    await subject.waitApplied(barrier, Math.max(1, deadline - Date.now()));
    if (s.lastTransactionDelay > 0 && s.replicationLagThreshold > 0) {
      // PgDog's extra condition, kept for compatibility: lag under the threshold.
      const lag = await subject.lagBytes();
      if (lag > s.replicationLagThreshold) throw new PgError(SQLSTATE.objectNotInState, `replication lag ${lag} bytes is above cutover_replication_lag_threshold after the barrier`);
    }
    await subject.record('barrier', barrier);
    step('barrier');

    await enter('sequences');
    await subject.syncSequences();
    await subject.record('sequences');
    step('sequences');

    if (Date.now() > deadline && s.timeoutAction === 'abort') {
      throw new PgError(SQLSTATE.queryCanceled, `cutover took longer than cutover_timeout (${s.timeout} ms) before the swap`);
    }

    // The swapped config is built before the point of no return, so a failure here (or one
    // injected at 'swap') still resumes on the source.
    await enter('swap');
    swapped = subject.swappedConfig(traffic.currentConfig);
    // The routing decision is durable before anything routes by it: a restart from here on
    // serves the destination (and finishes the cutover) whatever the config files say.
    await subject.record('switched');
  } catch (err) {
    // Before the point of no return: resume on the source, nothing changed.
    const e = asPgError(err);
    // The gate opens first: dropping the reverse slot needs the destination, which may be the
    // reason for the abort (unreachable, frozen). A slot left behind stays in the journal and is
    // listed by SHOW ORPHANS.
    if (pausedAt !== null) traffic.gate.open(db);
    if (reverse) await reverse.abort().catch((x) => log.error({ err: asPgError(x).message }, 'cutover abort: could not drop the reverse slot; SHOW ORPHANS lists it, DROP_ORPHANS drops it'));
    await subject.record('rolled_back').catch((x) => log.error({ err: asPgError(x).message }, 'cutover abort: could not record the rollback; the next start undoes the cutover again'));
    log.warn({ database: db, err: e.message, pausedMs: pausedAt === null ? 0 : Date.now() - pausedAt }, 'cutover aborted: traffic resumed on the source');
    throw new PgError(e.code, `cutover aborted, traffic resumed on the source with nothing changed: ${e.message}`, { hint: e.hint });
  }

  // 7. Swap (point of no return).
  traffic.applyConfig(swapped);
  step('swap');

  // 8. Resume. The reverse slot already records every write made from here on, so its stream
  // can start after the gate opens without keeping clients waiting.
  traffic.gate.open(db);
  const pauseMs = Date.now() - pausedAt!;
  faultPoint('resumed');
  step('resume');
  let reverseError: PgError | null = null;
  try {
    await reverse!.start();
  } catch (err) {
    reverseError = asPgError(err);
  }
  log.info({ database: db, pauseMs, steps, barrier: barrier.map(formatLsn) }, 'cutover complete: traffic resumed on the destination');
  if (reverseError) log.error({ err: reverseError.message }, 'cutover: the reverse replication stream did not start; rollback is not available until it is restarted with REPLICATE');
  await subject.saveConfig(swapped).catch((e) => log.error({ err: asPgError(e).message }, 'cutover: saving the swapped configuration failed; the running configuration is swapped'));
  await subject.finishForward().catch((e) => log.error({ err: asPgError(e).message }, 'cutover: stopping the forward replication failed'));
  return { pauseMs, steps, abortedTransactions: aborted, barrier: barrier.map(formatLsn), reverseTaskId: reverse!.taskId, reverseError: reverseError?.message ?? null, finishedAt: new Date() };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, sleep(ms).then(() => Promise.reject(new PgError(SQLSTATE.queryCanceled, `${what} within ${ms} ms`)))]);
}
