/**
 * The proxy's two-phase commit service: the decision log of its state directory, and the
 * recovery of prepared transactions an earlier run (or a failed commit) left behind — at start
 * (in the background, so an unreachable shard does not hold up the start), soon after a commit
 * leaves one in doubt, and periodically.
 */
import type { Config } from '../config/types.js';
import type { ClusterRegistry } from '../backend/cluster.js';
import type { Logger } from '../observe/log.js';
import { TwoPhaseCoordinator, type TwoPhaseStats } from './two-phase.js';
import { recoverPrepared, type RecoveryTarget } from './two-phase-recovery.js';

/** How often prepared transactions left behind are looked for, and how old one without a decision must be to be rolled back. */
const RECOVERY_INTERVAL_MS = 10_000;
const MIN_AGE_SECONDS = 10;

export class TwoPhaseService {
  coordinator: TwoPhaseCoordinator | null = null;
  /** The first recovery pass after open() (tests wait for it). */
  recovered: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly registry: ClusterRegistry,
    private readonly config: () => Config,
    private readonly log: Logger,
  ) {}

  stats(): TwoPhaseStats | null {
    return this.coordinator?.snapshot() ?? null;
  }

  /** Opens the decision log and starts recovery; without the log, commits across shards with two_phase_commit are refused. */
  async open(): Promise<void> {
    try {
      this.coordinator = await TwoPhaseCoordinator.open(this.stateDir, this.log);
    } catch (err) {
      this.log.error({ err: (err as Error).message, stateDir: this.stateDir }, 'two-phase commit decision log unavailable: commits across shards with two_phase_commit are refused');
      return;
    }
    const coord = this.coordinator;
    let soon: NodeJS.Timeout | null = null;
    coord.onInDoubt = () => {
      soon ??= setTimeout(() => {
        soon = null;
        void this.recover(false);
      }, 1000).unref();
    };
    this.recovered = this.recover(true);
    // Periodic passes only while there can be something to resolve: 2PC on, or leftovers seen.
    this.timer = setInterval(() => {
      const s = coord.snapshot();
      if (coord.persisted && (this.config().general.two_phase_commit || s.inDoubt > 0 || s.decisionsPending > 0)) void this.recover(false);
    }, RECOVERY_INTERVAL_MS).unref();
  }

  /** One recovery pass over every shard of every sharded database (passes never overlap). */
  private recover(atStart: boolean): Promise<void> {
    const coord = this.coordinator;
    // Without its instance file this state directory never prepared anything: nothing to resolve.
    if (!coord?.persisted) return Promise.resolve();
    this.pass = this.pass.then(async () => {
      const config = this.config();
      const targets: RecoveryTarget[] = [];
      for (const cluster of this.registry.all()) {
        if (cluster.shardCount < 2) continue;
        for (const user of config.users.filter((u) => u.database === cluster.name)) {
          for (let shard = 0; shard < cluster.shardCount; shard++) {
            const address = cluster.primaryAddress(user, shard);
            if (address) targets.push({ database: cluster.name, shard, address, connectTimeout: config.general.connect_timeout });
            else this.log.warn({ database: cluster.name, shard }, 'two-phase recovery: the shard has no primary configured');
          }
        }
      }
      if (targets.length === 0 && coord.log.pending().length === 0) return;
      try {
        await recoverPrepared(coord, targets, { atStart, minAgeSeconds: MIN_AGE_SECONDS }, this.log);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'two-phase recovery pass failed');
      }
    });
    return this.pass;
  }

  /** Stops the periodic passes, waits for the running one, closes the log. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.pass;
    await this.coordinator?.log.close();
  }
}
