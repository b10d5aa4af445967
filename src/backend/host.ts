/**
 * One server of a shard as the load balancer sees it: in the rotation or banned (until when,
 * why), and its role — configured, or learned from pg_is_in_recovery() for role = "auto".
 * Shared by every user's pool on that server, so a ban found by one user's connection moves
 * everybody's reads away from it.
 */
import type { DatabaseConfig } from '../config/types.js';
import type { Pool } from './pool.js';

/** `unknown`: an auto server not checked yet, or unreachable at its last check (never a write target). */
export type HostRole = 'primary' | 'replica' | 'unknown';

export type HostState = { kind: 'up' } | { kind: 'banned'; until: number; reason: string };

const UP: HostState = { kind: 'up' };

export class Host {
  state: HostState = UP;
  role: HostRole;
  /** When pg_is_in_recovery() was last learned (ms epoch; 0 = never). */
  checkedAt = 0;
  /** Times this server was banned (SHOW POOLS, metrics). */
  bans = 0;
  /** The pools (one per user) that connect to this server. */
  readonly pools = new Set<Pool>();
  /** Called when the role changes (writes waiting for a primary look again). */
  onRoleChange: (() => void) | null = null;

  constructor(readonly db: DatabaseConfig) {
    this.role = db.role === 'auto' ? 'unknown' : db.role;
  }

  get auto(): boolean {
    return this.db.role === 'auto';
  }

  get label(): string {
    return `${this.db.host}:${this.db.port}`;
  }

  isBanned(now = Date.now()): boolean {
    return this.state.kind === 'banned' && now < this.state.until;
  }

  /** Out of the read rotation for `ms`; its idle connections are closed (they are likely dead). */
  ban(reason: string, ms: number): boolean {
    const fresh = !this.isBanned();
    if (fresh) this.bans++;
    this.state = { kind: 'banned', until: Date.now() + ms, reason };
    for (const p of this.pools) p.drainIdle();
    // An unreachable auto server is no write target until a check finds it again.
    if (this.auto) this.setRole('unknown');
    return fresh;
  }

  /** A health check succeeded: back in the rotation once its ban has run out. */
  healthy(now = Date.now()): boolean {
    if (this.state.kind !== 'banned' || now < this.state.until) return false;
    this.state = UP;
    return true;
  }

  /** What a check learned: `inRecovery` decides the role of an auto server. */
  observedRecovery(inRecovery: boolean): void {
    this.checkedAt = Date.now();
    if (this.auto) this.setRole(inRecovery ? 'replica' : 'primary');
  }

  private setRole(role: HostRole): void {
    if (role === this.role) return;
    this.role = role;
    this.onRoleChange?.();
  }

  /** Server connections of this server handed out right now, over all users. */
  activeConnections(): number {
    let n = 0;
    for (const p of this.pools) n += p.activeCount + p.waitingCount;
    return n;
  }
}
