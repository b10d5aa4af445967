/**
 * Test-only fault hook: `PGSHIFT_FAULT=<point>` (read once at start) makes the process kill
 * itself with SIGKILL when it reaches that named point — right after the journal records the
 * phase of the same name, or at one of the extra points below. Deterministic: no timers, so a
 * crash test lands exactly where it says. Unset in production, where it costs one comparison.
 *
 * With `PGSHIFT_FAULT_PAUSE=<file>` the process instead stops at the point (the whole process:
 * nothing else runs meanwhile) after writing the point's name to `<file>`, and goes on once a
 * test has deleted that file (or after a minute), once per process: a test makes PostgreSQL fail
 * exactly there.
 */
import { existsSync, writeFileSync } from 'node:fs';

const FAULT = process.env.PGSHIFT_FAULT ?? '';
const PAUSE = process.env.PGSHIFT_FAULT_PAUSE ?? '';
const PAUSE_MAX_MS = 60_000;
/** A pause happens once per process: the steps after it run as usual. */
let paused = false;

/** Points that are not journal phases: the gate reopened on the new cluster (clients writing there); the copy's slots and snapshots made. */
export type ExtraFaultPoint = 'resumed' | 'copy_started';

export function faultPoint(point: string): void {
  if (FAULT === '' || FAULT !== point) return;
  if (PAUSE !== '') {
    if (!paused) pauseAt(point);
    paused = true;
    return;
  }
  process.stderr.write(`PGSHIFT_FAULT: killing pgshift at ${point}\n`);
  process.kill(process.pid, 'SIGKILL');
}

function pauseAt(point: string): void {
  process.stderr.write(`PGSHIFT_FAULT: pausing pgshift at ${point} until ${PAUSE} is deleted\n`);
  writeFileSync(PAUSE, point);
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + PAUSE_MAX_MS;
  while (existsSync(PAUSE) && Date.now() < end) Atomics.wait(tick, 0, 0, 20);
  process.stderr.write(`PGSHIFT_FAULT: going on from ${point}\n`);
}
