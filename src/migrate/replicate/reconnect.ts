/**
 * When a replication stream reconnects instead of failing, and how long it waits.
 *
 * Only the loss of a connection is retried: the server went away (restart, crash,
 * pg_terminate_backend, network) or is not accepting connections yet. Anything else — a
 * constraint violation while applying, a missing table, a dropped slot — would fail the same way
 * again, so the task fails at once.
 */
import type { PgError } from '../../wire/pg-error.js';

/** The delay never grows past this. */
export const RECONNECT_MAX_DELAY_MS = 30_000;
/** A stream up this long without losing its connection starts counting attempts from 1 again. */
export const RECONNECT_STABLE_MS = 30_000;

export interface ReconnectPolicy {
  maxAttempts: number;
  minDelayMs: number;
}

/** Class 08 (connection exception), 57P01-57P05 (shutdown, crash, starting up, idle timeout), 53300 (too many connections). */
export function isConnectionLoss(e: PgError): boolean {
  return e.code.startsWith('08') || /^57P0[1-5]$/.test(e.code) || e.code === '53300';
}

/** Delay before attempt `attempt` (1-based): minDelay doubling, capped. */
export function reconnectDelay(policy: ReconnectPolicy, attempt: number): number {
  const d = policy.minDelayMs * 2 ** Math.min(attempt - 1, 30);
  return Math.min(d, Math.max(RECONNECT_MAX_DELAY_MS, policy.minDelayMs));
}
