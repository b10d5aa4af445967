/**
 * Failed logins: a total for metrics, and per client address a count of failures in a row that
 * slows down password guessing (`auth_failure_delay`). Bounded: addresses idle for ten minutes
 * are forgotten, and at most MAX_ADDRESSES are remembered (the oldest go first).
 */
const FORGET_AFTER_MS = 10 * 60_000;
const MAX_ADDRESSES = 10_000;
/** Failures in a row from one address answered without delay (typos happen). */
const FREE_FAILURES = 3;
const MAX_DELAY_MS = 30_000;

export class LoginFailures {
  total = 0;
  private byAddr = new Map<string, { count: number; at: number }>();

  constructor(private readonly delayMs: () => number) {}

  /** Records a failure; returns how long to wait before answering it (0 = at once). */
  failed(addr: string): number {
    this.total++;
    const now = Date.now();
    let e = this.byAddr.get(addr);
    if (!e || now - e.at > FORGET_AFTER_MS) e = { count: 0, at: now };
    this.byAddr.delete(addr); // re-inserted last: Map order is then least recently failed first
    e.count++;
    e.at = now;
    this.byAddr.set(addr, e);
    if (this.byAddr.size > MAX_ADDRESSES) this.byAddr.delete(this.byAddr.keys().next().value!);
    const base = this.delayMs();
    if (base <= 0 || e.count <= FREE_FAILURES) return 0;
    return Math.min(base * 2 ** Math.min(e.count - FREE_FAILURES - 1, 16), MAX_DELAY_MS);
  }

  succeeded(addr: string): void {
    this.byAddr.delete(addr);
  }
}
