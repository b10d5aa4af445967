/**
 * Background checks of every server of a replicated database, over one connection per server
 * kept for the purpose: `SELECT pg_is_in_recovery()` must answer within its timeout. A server
 * that fails is banned (out of the read rotation for ban_timeout); one whose ban has run out
 * and that answers again is back. For role = "auto" the answer is also the server's role, so
 * pgshift learns which server is the primary and follows a promotion; it never promotes.
 *
 * Timings: auto servers are checked every lsn_check_interval (first after lsn_check_delay)
 * within lsn_check_timeout; other servers every healthcheck_interval within
 * healthcheck_timeout; a banned server again when its ban runs out.
 */
import { ServerConnection, type ServerAddress } from './server.js';
import type { Host } from './host.js';
import type { GeneralConfig } from '../config/types.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';

type Settings = Pick<GeneralConfig, 'healthcheck_interval' | 'healthcheck_timeout' | 'lsn_check_interval' | 'lsn_check_timeout' | 'lsn_check_delay' | 'ban_timeout' | 'connect_timeout'>;

export interface HealthEvents {
  banned(host: Host, reason: string): void;
  unbanned(host: Host): void;
}

interface Watch {
  host: Host;
  address: ServerAddress;
  conn: ServerConnection | null;
  timer: NodeJS.Timeout | null;
  running: boolean;
}

export class HealthMonitor {
  private watches: Watch[] = [];
  private stopped = false;

  constructor(
    hosts: { host: Host; address: ServerAddress }[],
    private readonly settings: Settings,
    private readonly events: HealthEvents,
  ) {
    this.watches = hosts.map(({ host, address }) => ({ host, address, conn: null, timer: null, running: false }));
  }

  start(): void {
    for (const w of this.watches) this.schedule(w, w.host.auto ? this.settings.lsn_check_delay : this.settings.healthcheck_interval);
  }

  /** Checks the auto servers now (a write found no primary, or the primary failed). */
  recheck(): void {
    for (const w of this.watches) if (w.host.auto && !w.running) this.schedule(w, 0);
  }

  private schedule(w: Watch, ms: number): void {
    if (this.stopped) return;
    if (w.timer) clearTimeout(w.timer);
    w.timer = setTimeout(() => {
      w.timer = null;
      void this.check(w);
    }, ms);
    w.timer.unref();
  }

  private async check(w: Watch): Promise<void> {
    if (this.stopped || w.running) return;
    w.running = true;
    const h = w.host;
    const s = this.settings;
    const timeout = h.auto ? s.lsn_check_timeout : s.healthcheck_timeout;
    try {
      const inRecovery = await this.ask(w, timeout);
      h.observedRecovery(inRecovery);
      if (h.healthy()) this.events.unbanned(h);
    } catch (err) {
      w.conn?.destroy();
      w.conn = null;
      const reason = `health check failed: ${asPgError(err).message}`;
      if (!this.stopped && h.ban(reason, s.ban_timeout)) this.events.banned(h, reason);
    } finally {
      w.running = false;
    }
    let next = h.auto ? s.lsn_check_interval : s.healthcheck_interval;
    if (h.state.kind === 'banned') next = Math.min(next, Math.max(50, h.state.until - Date.now()));
    this.schedule(w, next);
  }

  private async ask(w: Watch, timeout: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PgError(SQLSTATE.connectionFailure, `${w.host.label} did not answer within ${timeout} ms`)), timeout);
    });
    try {
      const work = (async () => {
        if (!w.conn || w.conn.closed) {
          w.conn = null;
          const conn = await ServerConnection.connect({ ...w.address, connectTimeout: Math.min(this.settings.connect_timeout, timeout), params: { application_name: 'pgshift health check' } });
          if (this.stopped) conn.destroy();
          w.conn = conn;
        }
        const r = await w.conn.query('SELECT pg_catalog.pg_is_in_recovery()');
        return r.rows[0]?.[0] === 't';
      })();
      work.catch(() => undefined); // settled by the race below; a late failure has nobody to tell
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watches) {
      if (w.timer) clearTimeout(w.timer);
      w.conn?.destroy();
      w.conn = null;
    }
  }
}
