/**
 * When a replication stream reconnects instead of failing, and how long it waits.
 *
 * Only the loss of a connection is retried: the server went away (restart, crash,
 * pg_terminate_backend, network) or is not accepting connections yet. Anything else — a
 * constraint violation while applying, a missing table, a dropped slot — would fail the same way
 * again, so the task fails at once.
 */
import { PgError, asPgError } from '../../wire/pg-error.js';

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

/** Called before each retry: attempt `attempt` of `max` follows after `delayMs`. */
export type OnRetry = (attempt: number, max: number, err: PgError, delayMs: number) => void;

/**
 * Runs `once` until it succeeds. A connection loss (a server down, restarting, or not yet
 * accepting connections) is retried with the stream's policy — so a task that starts or resumes
 * while a server is down waits for it exactly as a running stream does; anything else, or the
 * attempts used up, rejects. `signal` (STOP_TASK) ends the wait at once with its reason.
 */
export async function retryConnectionLoss<T>(policy: ReconnectPolicy, signal: AbortSignal, what: { action: string; then: string }, onRetry: OnRetry, once: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let e: PgError;
    try {
      return await once();
    } catch (err) {
      e = asPgError(err);
    }
    if (signal.aborted || !isConnectionLoss(e) || policy.maxAttempts === 0) throw e;
    if (attempt > policy.maxAttempts) {
      throw new PgError(e.code, `${what.action} failed: a server stayed unreachable through ${policy.maxAttempts} attempts (${e.message})`, {
        hint: `check that the source and destination servers are up, then ${what.then}; resharding_replication_retry_max_attempts sets the number of attempts`,
      });
    }
    const delayMs = reconnectDelay(policy, attempt);
    onRetry(attempt, policy.maxAttempts, e, delayMs);
    await abortableSleep(delayMs, signal);
    if (signal.aborted) throw signal.reason instanceof PgError ? signal.reason : e;
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
