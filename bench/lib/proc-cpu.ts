/** CPU time of a process from /proc (Linux), to show how busy a pooler was during a run. */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface CpuTimes {
  /** Seconds in user space (for Node: JS, V8, libuv, Node's C++). */
  user: number;
  /** Seconds in the kernel on the process's behalf (syscalls: TCP send/receive, epoll). */
  sys: number;
}

/** utime and stime of `pid` (all its threads), NaN when unavailable (not Linux, process gone). */
export function cpuTimes(pid: number | undefined): CpuTimes {
  if (pid === undefined) return { user: NaN, sys: NaN };
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(rest[11]) / TICKS_PER_SECOND, sys: Number(rest[12]) / TICKS_PER_SECOND };
  } catch {
    return { user: NaN, sys: NaN };
  }
}
