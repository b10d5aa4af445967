/** What the admin database may see and do: a narrow view of the proxy, never its connections. */
import type { Config } from '../config/types.js';
import type { Pool } from '../backend/pool.js';
import type { PauseGate } from '../frontend/pause-gate.js';
import type { ClientInfo } from '../frontend/context.js';
import type { TwoPhaseStats } from '../frontend/two-phase.js';
import type { CutoverContext } from '../migrate/cutover/cutover-task.js';

export interface AdminContext extends CutoverContext {
  readonly version: string;
  readonly gate: PauseGate;
  readonly currentConfig: Config;
  clients(): ClientInfo[];
  pools(): Pool[];
  reload(): void;
  /** Two-phase commit coordinator counters; null when its decision log could not be opened. */
  twoPhaseStats(): TwoPhaseStats | null;
  shutdown(): Promise<void>;
}
