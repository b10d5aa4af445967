/**
 * Test-only fault hook: `PGSHIFT_FAULT=<point>` (read once at start) makes the process kill
 * itself with SIGKILL when it reaches that named point — right after the journal records the
 * phase of the same name, or at one of the extra points below. Deterministic: no timers, so a
 * crash test lands exactly where it says. Unset in production, where it costs one comparison.
 */
const FAULT = process.env.PGSHIFT_FAULT ?? '';

/** Points that are not journal phases: the gate reopened on the new cluster (clients writing there). */
export type ExtraFaultPoint = 'resumed';

export function faultPoint(point: string): void {
  if (FAULT !== '' && FAULT === point) {
    process.stderr.write(`PGSHIFT_FAULT: killing pgshift at ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
