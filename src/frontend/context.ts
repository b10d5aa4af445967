/**
 * The small interface the client query loop uses to reach the rest of the proxy: the gate, the
 * statement registry, pool lookup and bookkeeping. Clients never see the config or registry.
 */
import type { PauseGate } from './pause-gate.js';
import type { ParseCache } from '../router/index.js';
import type { StatementRegistry } from './prepared-statements.js';
import type { Pool } from '../backend/pool.js';
import type { ServerLease } from '../backend/load-balancer.js';
import type { Logger } from '../observe/log.js';
import type { PoolerMode } from '../config/types.js';
import type { ShardingSchema } from '../sharding/index.js';
import type { TableColumns } from '../router/index.js';
import type { TwoPhaseCoordinator } from './two-phase.js';

export interface ClientStats {
  queries: number;
  transactions: number;
  errors: number;
  bytesReceived: number;
  bytesSent: number;
}

/** What SHOW CLIENTS shows and cancel needs. */
export interface ClientInfo {
  id: number;
  user: string;
  database: string;
  addr: string;
  port: number;
  applicationName: string;
  connectTime: Date;
  state: 'idle' | 'active' | 'waiting';
  serverId: number | null;
  poolerMode: PoolerMode;
  /** Key given to the client in BackendKeyData, for CancelRequest. */
  pid: number;
  secret: number;
  stats: ClientStats;
  cancel?: () => void;
}

export interface ProxyContext {
  gate: PauseGate;
  statements: StatementRegistry;
  /** The proxy's parse cache (one per proxy; the metrics read its counters). */
  readonly parseCache: ParseCache;
  /** The pool a transaction of this client should use now (looked up per transaction, so a cutover takes effect). */
  poolFor(info: ClientInfo, readOnly?: boolean): Pool;
  /** A server for the client's next transaction: a replica for a read (another one if a server is down), else the primary. */
  checkout(info: ClientInfo, readOnly?: boolean): Promise<ServerLease>;
  /** True when the client's database has replicas, so read-only statements are worth detecting. */
  hasReplicas(info: ClientInfo): boolean;
  clientGone(info: ClientInfo): void;
  /** True when the client's database has several shards now (it may change at a cutover). */
  isSharded(info: ClientInfo): boolean;
  log: Logger;
  /** `[general] query_timeout` in ms (0 = none), read per query so RELOAD applies. */
  queryTimeout(): number;
  /** `[general] max_packet_size`: the largest client message accepted after login. */
  maxPacketSize(): number;
  /** `client_idle_timeout` and `client_idle_in_transaction_timeout` in ms (0 = off), read at login. */
  clientIdleTimeouts(): { idle: number; idleInTransaction: number };
}

/** Column order of the database's tables (see backend/table-columns.ts), loaded on demand. */
export interface TableColumnSource extends TableColumns {
  load(run: (sql: string) => Promise<{ rows: (string | null)[][] }>, table: string, schema?: string): Promise<void>;
  invalidate(): void;
}

/** What a client session reaches: the above, and for several shards their pools, layout and 2PC. */
export interface SessionContext extends ProxyContext {
  shardCheckout(info: ClientInfo, shard: number, readOnly?: boolean): Promise<ServerLease>;
  tableColumns(info: ClientInfo): TableColumnSource;
  sharding(info: ClientInfo): { schema: ShardingSchema; shards: number };
  /** Whether a commit across shards uses 2PC: explicit transactions need two_phase_commit, pgshift's implicit ones also two_phase_commit_auto. */
  twoPhaseCommit(implicit: boolean): boolean;
  /** Null until the decision log is open (or when it could not be opened). */
  twoPhaseCoordinator(): TwoPhaseCoordinator | null;
  /** The next id of the process's pgshift.unique_id() generator (above unique_id_min). */
  uniqueId(): Promise<string>;
}
