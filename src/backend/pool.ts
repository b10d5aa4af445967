/**
 * A pool of server connections for one (user, database, shard, role). Checkout hands out an idle
 * connection (health-checked when it sat idle long), opens a new one below the size limit, or
 * queues the caller until one is released or `checkout_timeout` passes.
 */
import { ServerConnection, type ServerAddress } from './server.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import type { PoolerMode, Role } from '../config/types.js';
import type { Host } from './host.js';

export interface PoolKey {
  user: string;
  database: string; // the name clients use
  shard: number;
  role: Role;
}

export interface PoolOptions {
  size: number;
  minSize: number;
  mode: PoolerMode;
  connectTimeout: number;
  checkoutTimeout: number;
  idleTimeout: number;
  healthcheckInterval: number;
  /** ms a health check may take; a server that does not answer in time is closed. */
  healthcheckTimeout: number;
  applicationName?: string;
  /** Ask each new connection pg_is_in_recovery() (role = "auto": a write needs a primary). */
  probeRecovery?: boolean;
}

interface Waiter {
  resolve: (c: ServerConnection) => void;
  reject: (e: PgError) => void;
  timer: NodeJS.Timeout | null;
  since: number;
}

let nextPoolId = 1;

export class Pool {
  readonly id = nextPoolId++;
  private idle: ServerConnection[] = [];
  readonly active = new Set<ServerConnection>();
  private connecting = 0;
  private waiters: Waiter[] = [];
  closed = false;
  /** Server parameters seen on the last login, replayed to clients at their startup. */
  serverParams = new Map<string, string>();
  stats = { errors: 0, connects: 0, checkouts: 0, waitTimeUs: 0, healthchecks: 0, forceClosed: 0 };
  healthy = true;
  lastError: PgError | null = null;
  /** Told when this pool's server fails (a connection attempt or a health check): the load balancer bans it. */
  onServerFailure: ((e: PgError) => void) | null = null;
  /** The server this pool connects to, as the load balancer sees it (bans, detected role). */
  host: Host | null = null;

  constructor(readonly key: PoolKey, readonly address: ServerAddress, readonly opts: PoolOptions) {}

  get idleCount(): number {
    return this.idle.length;
  }
  get activeCount(): number {
    return this.active.size;
  }
  get waitingCount(): number {
    return this.waiters.length;
  }
  get total(): number {
    return this.idle.length + this.active.size + this.connecting;
  }
  /** Longest current wait in microseconds. */
  get maxWaitUs(): number {
    if (!this.waiters.length) return 0;
    return (Date.now() - this.waiters[0].since) * 1000;
  }
  servers(): ServerConnection[] {
    return [...this.active, ...this.idle];
  }

  /**
   * An idle connection that needs no health check, or null: lets a client attach without an
   * await (the common case on a busy proxy).
   */
  takeIdle(): ServerConnection | null {
    if (this.closed) return null;
    const now = Date.now();
    while (this.idle.length) {
      const conn = this.idle[this.idle.length - 1];
      if (conn.closed) {
        this.idle.pop();
        continue;
      }
      if (now - conn.lastUsed > this.opts.healthcheckInterval) return null;
      this.idle.pop();
      this.stats.checkouts++;
      this.active.add(conn);
      return conn;
    }
    return null;
  }

  async checkout(): Promise<ServerConnection> {
    if (this.closed) throw new PgError(SQLSTATE.cannotConnectNow, `pool for database "${this.key.database}" is closed (configuration reloaded or shutting down)`);
    this.stats.checkouts++;
    while (this.idle.length) {
      const conn = this.idle.pop()!;
      if (conn.closed) continue;
      // Counted as active during the health check, so a concurrent checkout cannot open one
      // connection more than the pool size.
      this.active.add(conn);
      if (Date.now() - conn.lastUsed > this.opts.healthcheckInterval) {
        try {
          this.stats.healthchecks++;
          conn.stats.healthchecks++;
          await this.healthcheck(conn);
        } catch (err) {
          this.active.delete(conn);
          conn.destroy();
          this.onServerFailure?.(asPgError(err));
          continue;
        }
      }
      return conn;
    }
    if (this.total < this.opts.size) {
      const conn = await this.open();
      this.active.add(conn);
      return conn;
    }
    return this.enqueue();
  }

  /** `;` within healthcheck_timeout, or the connection is closed (a frozen server never answers). */
  private healthcheck(conn: ServerConnection): Promise<unknown> {
    const ms = this.opts.healthcheckTimeout;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new PgError(SQLSTATE.connectionFailure, `health check of ${this.key.database} got no answer within healthcheck_timeout (${ms} ms)`);
        conn.destroy(e);
        reject(e);
      }, ms);
    });
    return Promise.race([conn.query(';'), timeout]).finally(() => clearTimeout(timer));
  }

  private enqueue(): Promise<ServerConnection> {
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: null, since: Date.now() };
      if (this.opts.checkoutTimeout > 0) {
        w.timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new PgError(SQLSTATE.connectionFailure, `no server connection available for database "${this.key.database}" user "${this.key.user}" within checkout_timeout (${this.opts.checkoutTimeout} ms); pool size is ${this.opts.size}`));
        }, this.opts.checkoutTimeout);
      }
      this.waiters.push(w);
    });
  }

  private async open(): Promise<ServerConnection> {
    this.connecting++;
    try {
      const conn = await ServerConnection.connect({
        ...this.address,
        connectTimeout: this.opts.connectTimeout,
        params: this.opts.applicationName ? { application_name: this.opts.applicationName } : undefined,
      });
      if (this.opts.probeRecovery) {
        try {
          conn.inRecovery = (await conn.query('SELECT pg_catalog.pg_is_in_recovery()')).rows[0]?.[0] === 't';
        } catch (err) {
          conn.destroy();
          throw err;
        }
      }
      this.stats.connects++;
      this.healthy = true;
      this.lastError = null;
      this.serverParams = new Map(conn.params);
      conn.onClosed(() => this.forget(conn));
      return conn;
    } catch (err) {
      this.stats.errors++;
      this.healthy = false;
      this.lastError = asPgError(err);
      this.onServerFailure?.(this.lastError);
      throw this.lastError;
    } finally {
      this.connecting--;
    }
  }

  /** Counters of servers that closed, so totals survive reconnects. */
  private retired = { transactions: 0, queries: 0, bytesIn: 0, bytesOut: 0, errors: 0 };

  totals(): { transactions: number; queries: number; bytesIn: number; bytesOut: number; errors: number } {
    const t = { ...this.retired };
    for (const s of this.servers()) {
      t.transactions += s.stats.transactions;
      t.queries += s.stats.queries;
      t.bytesIn += s.stats.bytesIn;
      t.bytesOut += s.stats.bytesOut;
      t.errors += s.stats.errors;
    }
    return t;
  }

  private forget(conn: ServerConnection): void {
    const r = this.retired;
    r.transactions += conn.stats.transactions;
    r.queries += conn.stats.queries;
    r.bytesIn += conn.stats.bytesIn;
    r.bytesOut += conn.stats.bytesOut;
    r.errors += conn.stats.errors;
    this.active.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A slot freed up: let a waiter open a fresh connection.
    this.serveWaiter();
  }

  /** Returns a connection. `reusable=false` closes it (unknown state, broken, or reset failed). */
  release(conn: ServerConnection, reusable = true): void {
    this.active.delete(conn);
    conn.sink = null;
    conn.lastUsed = Date.now();
    if (!reusable || conn.closed || this.closed || conn.txStatus !== 'I') {
      if (!conn.closed) {
        this.stats.forceClosed++;
        conn.destroy();
      }
      this.serveWaiter();
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      this.stats.waitTimeUs += (Date.now() - w.since) * 1000;
      this.active.add(conn);
      w.resolve(conn);
      return;
    }
    this.idle.push(conn);
  }

  private serveWaiter(): void {
    if (!this.waiters.length || this.closed || this.total >= this.opts.size) return;
    const w = this.waiters.shift()!;
    if (w.timer) clearTimeout(w.timer);
    this.open().then(
      (conn) => {
        this.stats.waitTimeUs += (Date.now() - w.since) * 1000;
        this.active.add(conn);
        w.resolve(conn);
      },
      (err) => w.reject(asPgError(err)),
    );
  }

  /** Periodic upkeep: close connections idle past idle_timeout, keep min_pool_size open. */
  maintain(): void {
    if (this.closed) return;
    const now = Date.now();
    while (this.idle.length > this.opts.minSize && this.idle.length && now - this.idle[0].lastUsed > this.opts.idleTimeout) {
      this.idle.shift()!.destroy();
    }
    if (this.healthy && this.total < this.opts.minSize) {
      this.open().then(
        (conn) => this.release(conn),
        () => undefined, // recorded in stats / lastError; retried on the next tick
      );
    }
  }

  /** Identity of the server sessions this pool holds: idle ones may move to a new pool with the same identity (RELOAD, cutover). */
  get transferKey(): string {
    const a = this.address;
    return `${this.key.user}|${a.host}|${a.port}|${a.database}|${a.user}`;
  }

  /** Removes and returns the idle connections (to hand them to a replacement pool). */
  takeAllIdle(): ServerConnection[] {
    return this.idle.splice(0).filter((c) => !c.closed);
  }

  /** Takes over idle connections from a pool this one replaces. */
  adopt(conns: ServerConnection[]): void {
    for (const c of conns) {
      if (c.closed || this.total >= this.opts.size) {
        c.destroy();
        continue;
      }
      c.onClosed(() => this.forget(c));
      this.idle.push(c);
    }
    if (conns.length) this.serveWaiters();
  }

  /** Opens connections until `n` exist (at most the pool size), so a burst finds them ready. */
  async prewarm(n: number): Promise<void> {
    const want = Math.min(n, this.opts.size) - this.total;
    if (want <= 0) return;
    const opened = await Promise.allSettled(Array.from({ length: want }, () => this.open()));
    for (const r of opened) if (r.status === 'fulfilled') this.release(r.value, true);
  }

  private serveWaiters(): void {
    while (this.waiters.length && this.idle.length) {
      const conn = this.idle.pop()!;
      const w = this.waiters.shift()!;
      if (w.timer) clearTimeout(w.timer);
      this.active.add(conn);
      w.resolve(conn);
    }
  }

  /** Closes idle connections now; active ones close when released. */
  drainIdle(): void {
    for (const c of this.idle.splice(0)) c.destroy();
  }

  close(): void {
    this.closed = true;
    this.drainIdle();
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new PgError(SQLSTATE.cannotConnectNow, `pool for database "${this.key.database}" was closed`));
    }
  }
}
