/**
 * Warnings that a hostile client could trigger at will (a limit hit, a failed login): logged
 * at most once per interval per kind, with how many were suppressed since, so an attack is
 * visible without flooding the log or costing a write per event.
 */
import type { Logger } from './log.js';

export class RateLimitedLog {
  private last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly log: Pick<Logger, 'warn'>, private readonly intervalMs = 10_000) {}

  warn(kind: string, fields: object, msg: string): void {
    const now = Date.now();
    const s = this.last.get(kind);
    if (s && now - s.at < this.intervalMs) {
      s.suppressed++;
      return;
    }
    const suppressed = s?.suppressed ?? 0;
    this.last.set(kind, { at: now, suppressed: 0 });
    this.log.warn(suppressed ? { ...fields, suppressed } : fields, msg);
  }
}
