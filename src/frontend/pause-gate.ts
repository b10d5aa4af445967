/**
 * The pause gate: per logical database, a door every new transaction passes through. Closed, it
 * holds new transactions in arrival order (no error) while transactions already running finish;
 * it counts open transactions so a caller can wait until a database is quiet. PAUSE,
 * MAINTENANCE and the cutover all use it.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';

interface Waiter {
  db: string;
  resolve: () => void;
  reject: (e: PgError) => void;
  timer: NodeJS.Timeout | null;
  since: number;
}

const ALL = '*';

/** Something holding an open transaction that the cutover may need to end. */
export interface GateHolder {
  /** Ends the holder's transaction with `err` (its server connection is closed). */
  abortTransaction(err: PgError): void;
}

export class PauseGate {
  private closedDbs = new Map<string, string>(); // db (or '*') → reason
  private openTx = new Map<string, number>();
  private holders = new Map<string, Set<GateHolder>>();
  private waiters: Waiter[] = [];
  private quietWatchers: { db: string; resolve: () => void }[] = [];
  /** Longest time a client waited at the gate (ms), for metrics. */
  maxWaitMs = 0;

  /** Time a client may wait before getting an error; 0 = forever. */
  constructor(public timeoutMs: number) {}

  isClosed(db: string): boolean {
    return this.closedDbs.has(db) || this.closedDbs.has(ALL);
  }

  closedDatabases(): string[] {
    return [...this.closedDbs.keys()];
  }

  /** Number of transactions currently holding a server connection for `db`. */
  openTransactions(db: string): number {
    if (db === ALL) {
      let n = 0;
      for (const v of this.openTx.values()) n += v;
      return n;
    }
    return this.openTx.get(db) ?? 0;
  }

  waiting(db?: string): number {
    return db ? this.waiters.filter((w) => w.db === db).length : this.waiters.length;
  }

  /** Resolves when `db` may start a transaction (immediately when the gate is open). */
  enter(db: string): Promise<void> | null {
    if (!this.isClosed(db)) return null;
    return new Promise((resolve, reject) => {
      const w: Waiter = { db, resolve, reject, timer: null, since: Date.now() };
      if (this.timeoutMs > 0) {
        w.timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          const reason = this.closedDbs.get(db) ?? this.closedDbs.get(ALL) ?? 'paused';
          reject(new PgError(SQLSTATE.queryCanceled, `database "${db}" stayed paused (${reason}) longer than pause_timeout (${this.timeoutMs} ms); the query was not run`, { hint: 'retry later, or raise pause_timeout in [general]' }));
        }, this.timeoutMs);
      }
      this.waiters.push(w);
    });
  }

  /** A client attached a server connection: a transaction is open. */
  begin(db: string, holder?: GateHolder): void {
    this.openTx.set(db, (this.openTx.get(db) ?? 0) + 1);
    if (holder) {
      let s = this.holders.get(db);
      if (!s) this.holders.set(db, (s = new Set()));
      s.add(holder);
    }
  }

  /** Holders of open transactions on `db`. */
  holdersOf(db: string): GateHolder[] {
    return [...(this.holders.get(db) ?? [])];
  }

  /** The transaction ended and the server connection was released. */
  end(db: string, holder?: GateHolder): void {
    if (holder) this.holders.get(db)?.delete(holder);
    const n = (this.openTx.get(db) ?? 1) - 1;
    this.openTx.set(db, n);
    if (n <= 0) this.notifyQuiet();
  }

  private notifyQuiet(): void {
    if (this.quietWatchers.length === 0) return; // the common case: nobody is waiting
    this.quietWatchers = this.quietWatchers.filter((w) => {
      if (this.openTransactions(w.db) > 0) return true;
      w.resolve();
      return false;
    });
  }

  /** Closes the gate for `db` (or every database when omitted). New transactions wait. */
  close(db: string = ALL, reason = 'paused'): void {
    this.closedDbs.set(db, reason);
  }

  /** Resolves once no transaction is open on `db`. */
  quiet(db: string = ALL): Promise<void> {
    if (this.openTransactions(db) === 0) return Promise.resolve();
    return new Promise((resolve) => this.quietWatchers.push({ db, resolve }));
  }

  /** Opens the gate; waiting transactions proceed in arrival order. */
  open(db: string = ALL): void {
    this.closedDbs.delete(db);
    const now = Date.now();
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.isClosed(w.db)) {
        still.push(w);
        continue;
      }
      if (w.timer) clearTimeout(w.timer);
      this.maxWaitMs = Math.max(this.maxWaitMs, now - w.since);
      w.resolve();
    }
    this.waiters = still;
  }

  /** Fails every waiter (shutdown). */
  failAll(err: PgError): void {
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
