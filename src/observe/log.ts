/** Structured logs (pino) to stderr; level from PGSHIFT_LOG (default "info"). */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = process.env.PGSHIFT_LOG ?? 'info'): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** A logger that drops everything (tests, embedded use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
