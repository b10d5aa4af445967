/**
 * The two-phase commit coordinator of one pgshift instance: names prepared transactions, keeps
 * the set of transactions it is committing right now, records commit decisions durably (see
 * two-phase-log.ts) and counts outcomes for SHOW TWO_PHASE and metrics.
 *
 * Gids are `pgshift_<instance>_<txid>_<shard>`. The instance id is random, created once and kept
 * in the state directory, so a proxy only ever resolves prepared transactions it created itself
 * (two proxies with their own state directories never touch each other's).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../config/durable-file.js';
import type { Logger } from '../observe/log.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { DecisionLog, type Decision } from './two-phase-log.js';

/**
 * Test-only fault hook: `PGSHIFT_TEST_2PC_HOLD=<step>` makes every two-phase commit stop forever
 * at that step (after logging it), so a test can kill -9 the process exactly there.
 */
export const HOLD_ENV = 'PGSHIFT_TEST_2PC_HOLD';
export const TWO_PHASE_STEPS = ['prepared', 'decided', 'partially_committed'] as const;
export type TwoPhaseStep = (typeof TWO_PHASE_STEPS)[number];

export interface TwoPhaseStats {
  instance: string;
  inFlight: number;
  /** Prepared transactions of this instance found by the last recovery pass and still unresolved. */
  inDoubt: number;
  /** Commit decisions not yet confirmed on every shard. */
  decisionsPending: number;
  committed: number;
  rolledBack: number;
  recoveredCommits: number;
  recoveredRollbacks: number;
  lastRecoveryAt: Date | null;
  lastRecoveryError: string | null;
}

export class TwoPhaseCoordinator {
  /** Per process start, so txids never repeat across restarts of one instance. */
  private readonly boot = randomBytes(3).toString('hex');
  private counter = 0;
  readonly inFlight = new Set<string>();
  readonly stats: Omit<TwoPhaseStats, 'instance' | 'inFlight' | 'decisionsPending'> = {
    inDoubt: 0,
    committed: 0,
    rolledBack: 0,
    recoveredCommits: 0,
    recoveredRollbacks: 0,
    lastRecoveryAt: null,
    lastRecoveryError: null,
  };
  /** Called when a commit left work for recovery (a COMMIT PREPARED that failed). */
  onInDoubt: (() => void) | null = null;

  private constructor(
    readonly instance: string,
    /** The instance file exists: this state directory may have prepared transactions somewhere. */
    public persisted: boolean,
    private readonly idFile: string,
    readonly log: DecisionLog,
    private readonly logger: Logger,
    private readonly hold: TwoPhaseStep | null,
  ) {}

  static async open(stateDir: string, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<TwoPhaseCoordinator> {
    const dir = join(stateDir, 'two-phase');
    const idFile = join(dir, 'instance');
    let instance: string;
    let persisted = true;
    try {
      instance = readFileSync(idFile, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      instance = randomBytes(4).toString('hex');
      persisted = false; // written before the first PREPARE (see begin)
    }
    if (!/^[0-9a-f]{8}$/.test(instance)) {
      throw new PgError(SQLSTATE.configFileError, `${idFile} does not hold a pgshift instance id (8 hex digits)`, { hint: 'restore the file from a backup; deleting it orphans this instance\'s prepared transactions' });
    }
    const hold = env[HOLD_ENV] ? (env[HOLD_ENV] as TwoPhaseStep) : null;
    if (hold && !TWO_PHASE_STEPS.includes(hold)) throw new PgError(SQLSTATE.invalidParameterValue, `${HOLD_ENV} must be one of ${TWO_PHASE_STEPS.join(', ')}`);
    return new TwoPhaseCoordinator(instance, persisted, idFile, await DecisionLog.open(dir), logger, hold);
  }

  get prefix(): string {
    return `pgshift_${this.instance}_`;
  }

  /** A new transaction id, registered as in flight (recovery leaves it alone) until finish(). */
  begin(): string {
    if (!this.persisted) {
      writeFileDurably(this.idFile, this.instance + '\n');
      this.persisted = true;
    }
    const txid = `${this.boot}-${++this.counter}`;
    this.inFlight.add(txid);
    return txid;
  }

  gid(txid: string, shard: number): string {
    return `${this.prefix}${txid}_${shard}`;
  }

  /** The txid of one of this instance's gids, or null for anyone else's. */
  txidOf(gid: string): string | null {
    if (!gid.startsWith(this.prefix)) return null;
    const rest = gid.slice(this.prefix.length);
    const cut = rest.lastIndexOf('_');
    return cut > 0 ? rest.slice(0, cut) : null;
  }

  /** Durably records that `txid` commits; must complete before the first COMMIT PREPARED. */
  decide(txid: string, database: string, shards: number[]): Promise<void> {
    const d: Decision = { txid, database, shards, at: Date.now() };
    return this.log.commit(d);
  }

  /** The coordinator is done with `txid`; 'in_doubt' leaves the rest to recovery. */
  finish(txid: string, outcome: 'committed' | 'rolled_back' | 'in_doubt'): void {
    this.inFlight.delete(txid);
    if (outcome === 'committed') {
      this.stats.committed++;
      this.log.done(txid).catch((err: Error) => this.logger.warn({ err: err.message, txid }, 'two-phase commit: could not append the done record; recovery will retire the decision'));
    } else if (outcome === 'rolled_back') this.stats.rolledBack++;
    else {
      this.stats.inDoubt++;
      this.onInDoubt?.();
    }
  }

  holdsAt(step: TwoPhaseStep): boolean {
    return this.hold === step;
  }

  /** The test fault hook (a no-op unless PGSHIFT_TEST_2PC_HOLD names this step). */
  async reached(step: TwoPhaseStep, txid: string): Promise<void> {
    if (this.hold !== step) return;
    this.logger.warn({ step, txid }, `two-phase commit held at ${step} (test fault hook ${HOLD_ENV})`);
    await new Promise<never>(() => undefined);
  }

  snapshot(): TwoPhaseStats {
    return { instance: this.instance, inFlight: this.inFlight.size, decisionsPending: this.log.pending().filter((d) => !this.inFlight.has(d.txid)).length, ...this.stats };
  }
}
