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
  /** Moves a client to the sharded query loop (its database became sharded, e.g. by a cutover). */
  moveToSharded(info: ClientInfo, socket: import('node:net').Socket, params: Map<string, string>, statements: Map<string, { query: string; paramTypes: number[] }>, leftover: Buffer): void;
  log: Logger;
  /** `[general] query_timeout` in ms (0 = none), read per query so RELOAD applies. */
  queryTimeout(): number;
  /** `[general] max_packet_size`: the largest client message accepted after login. */
  maxPacketSize(): number;
  /** `client_idle_timeout` and `client_idle_in_transaction_timeout` in ms (0 = off), read at login. */
  clientIdleTimeouts(): { idle: number; idleInTransaction: number };
}
