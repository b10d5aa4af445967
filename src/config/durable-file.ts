/**
 * Crash-safe file replacement for everything pgshift must not lose (task state, the cutover
 * journal, routing decisions, 2PC decisions, saved configs): write a temp file in the same
 * directory, fsync it, rename it over the target, fsync the directory. After a crash the target
 * holds either the old or the new contents, never a torn mix, and a completed call survives a
 * power loss.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes `text` to `<file>.tmp-<pid>`, fsynced; returns the temp path. Keeps the target's mode. */
export function writeTempDurably(file: string, text: string, defaultMode = 0o600): string {
  const tmp = `${file}.tmp-${process.pid}`;
  // Keep the current file's permissions: config files hold passwords.
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : defaultMode;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `file` with `text` atomically and durably (creates the directory when missing). */
export function writeFileDurably(file: string, text: string, defaultMode = 0o600): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = writeTempDurably(file, text, defaultMode);
  try {
    renameSync(tmp, file);
  } catch (err) {
    removeQuietly(tmp);
    throw err;
  }
  fsyncDir(dirname(file));
}

/** Removes a leftover temp file; a failure is harmless (its name says what it is). */
export function removeQuietly(file: string): void {
  try {
    if (existsSync(file) && statSync(file).isFile()) unlinkSync(file);
  } catch {
    // Best effort by design: see above.
  }
}
