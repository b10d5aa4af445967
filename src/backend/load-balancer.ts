/**
 * Which server of a shard a transaction uses. Writes go to the primary: the configured one, or
 * for role = "auto" the one server whose last check said it is not in recovery (none known:
 * writes wait for one, up to checkout_timeout). Reads go to the replicas (and the primary with
 * read_write_split = "include_primary") picked by load_balancing_strategy, skipping banned
 * servers; a read whose connection attempt fails bans that server and tries the next one, so
 * the client never sees a replica that is down.
 */
import type { Host } from './host.js';
import type { Pool } from './pool.js';
import type { ServerConnection } from './server.js';
import type { GeneralConfig } from '../config/types.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';

/** A server connection checked out of `pool` (give it back with pool.release). */
export interface ServerLease {
  pool: Pool;
  srv: ServerConnection;
}

export type Intent = 'read' | 'write';

type Settings = Pick<GeneralConfig, 'load_balancing_strategy' | 'read_write_split' | 'ban_timeout' | 'checkout_timeout'>;

/** Errors that say the server itself is unreachable or going away (not the query, not the login). */
export function isServerFailure(e: PgError): boolean {
  return e.code.startsWith('08') || e.code === SQLSTATE.cannotConnectNow || e.code === SQLSTATE.adminShutdown || e.code === '57P02';
}

export interface BalancerEvents {
  banned(host: Host, reason: string): void;
  /** A write found no primary: check the auto servers now rather than at the next interval. */
  recheck(): void;
}

export class ShardBalancer {
  private rr = 0;
  private waiters = new Set<() => void>();

  constructor(
    readonly database: string,
    readonly shard: number,
    readonly hosts: Host[],
    private readonly settings: Settings,
    private readonly events: BalancerEvents,
  ) {
    for (const h of hosts) h.onRoleChange = () => this.wake();
  }

  get replicated(): boolean {
    return this.hosts.length > 1 || this.hosts.some((h) => h.auto);
  }

  /** The write target now: null when no primary is known; an error when two auto servers claim it. */
  primary(): Host | null {
    const fixed = this.hosts.find((h) => h.db.role === 'primary');
    if (fixed) return fixed;
    const found = this.hosts.filter((h) => h.auto && h.role === 'primary');
    if (found.length > 1) {
      throw new PgError(SQLSTATE.connectionFailure, `database "${this.database}" shard ${this.shard}: ${found.map((h) => h.label).join(' and ')} both report that they are not in recovery (two primaries); pgshift sends no write until only one is`, {
        hint: 'stop or demote the old primary (the orchestrator must fence it)',
      });
    }
    return found[0] ?? null;
  }

  /** Servers that may serve reads, in the order to try them (banned ones last, only if nothing else is left). */
  readOrder(): Host[] {
    const now = Date.now();
    const split = this.settings.read_write_split;
    const all = this.hosts.filter((h) => h.role === 'replica' || (h.role === 'primary' && split === 'include_primary'));
    // Every candidate banned: try them anyway (an attempt at a server still down fails fast).
    const up = all.some((h) => !h.isBanned(now)) ? all.filter((h) => !h.isBanned(now)) : all;
    if (up.length === 0) {
      // No server is known to be a replica (role = "auto" before the first check): the primary reads.
      const p = this.primary();
      return p ? [p] : [];
    }
    if (up.length === 1) return up;
    switch (this.settings.load_balancing_strategy) {
      case 'round_robin': {
        const start = this.rr++ % up.length;
        return [...up.slice(start), ...up.slice(0, start)];
      }
      case 'least_active_connections':
        return up
          .map((h, i) => ({ h, n: h.activeConnections(), i }))
          .sort((a, b) => a.n - b.n || a.i - b.i)
          .map((x) => x.h);
      default: {
        const start = Math.floor(Math.random() * up.length);
        return [...up.slice(start), ...up.slice(0, start)];
      }
    }
  }

  /** Checks out a connection for a read (trying the next server when one cannot be reached) or a write. */
  async checkout(poolOf: (h: Host) => Pool, intent: Intent): Promise<ServerLease> {
    return intent === 'read' ? this.checkoutRead(poolOf) : this.checkoutWrite(poolOf);
  }

  private async checkoutRead(poolOf: (h: Host) => Pool): Promise<ServerLease> {
    const order = this.readOrder();
    if (order.length === 0) return this.checkoutWrite(poolOf);
    let last: PgError | null = null;
    for (const h of order) {
      const pool = poolOf(h);
      try {
        return { pool, srv: await pool.checkout() };
      } catch (err) {
        const e = asPgError(err);
        if (!isServerFailure(e)) throw e;
        this.fail(h, e);
        last = e;
      }
    }
    throw last ?? new PgError(SQLSTATE.connectionFailure, `database "${this.database}" shard ${this.shard} has no server to read from`);
  }

  private async checkoutWrite(poolOf: (h: Host) => Pool): Promise<ServerLease> {
    const deadline = Date.now() + this.settings.checkout_timeout;
    for (;;) {
      const h = this.primary();
      if (h) {
        const pool = poolOf(h);
        let srv: ServerConnection;
        try {
          srv = await pool.checkout();
        } catch (err) {
          const e = asPgError(err);
          if (!h.auto || !isServerFailure(e)) throw e;
          // The primary went away: wait for the orchestrator to promote another server.
          this.fail(h, e);
          await this.waitForPrimary(deadline, e);
          continue;
        }
        // A connection opened to an auto server knows whether it was in recovery then; a
        // server only leaves recovery while running (promotion), never the other way, so a
        // connection that saw "not in recovery" is to a primary for its whole life.
        if (!h.auto || srv.inRecovery === false) return { pool, srv };
        pool.release(srv, false);
        // Opened after the last check, it is news: the server is a standby now (restarted as one).
        // An older one may just predate a promotion; it is only closed.
        if (srv.inRecovery === true && srv.connectedAt >= h.checkedAt) {
          h.observedRecovery(true);
          this.events.recheck();
        }
        continue;
      }
      await this.waitForPrimary(deadline, null);
    }
  }

  private fail(h: Host, e: PgError): void {
    const reason = e.message;
    if (h.ban(reason, this.settings.ban_timeout)) this.events.banned(h, reason);
    if (h.auto) this.events.recheck();
  }

  /** Waits until a role changes (or 100 ms pass); past the deadline, fails with a clear error. */
  private async waitForPrimary(deadline: number, cause: PgError | null): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new PgError(SQLSTATE.connectionFailure, `database "${this.database}" shard ${this.shard} has no primary: every role = "auto" server is a standby or unreachable (waited checkout_timeout, ${this.settings.checkout_timeout} ms)${cause ? `; last error: ${cause.message}` : ''}`, {
        hint: 'retry once the orchestrator has promoted a standby; pgshift never promotes one itself',
      });
    }
    this.events.recheck();
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.min(left, 100));
      this.waiters.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
