/** Executes parsed admin commands against the AdminContext. */
import { ADMIN_HELP, type AdminCommand } from './parser.js';
import type { AdminContext } from './context.js';
import { table, INT8, BOOL, TIMESTAMPTZ, type AdminResult } from './result.js';
import { redactedConfig } from '../config/index.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import type { Logger } from '../observe/log.js';
import type { Pool } from '../backend/pool.js';
import { runMigrationCommand } from './migration-commands.js';
import { runRoutingCommand } from './routing-commands.js';
import { cutoverTask, reshard } from '../migrate/cutover/cutover-task.js';

export async function runAdminCommand(cmd: AdminCommand, ctx: AdminContext, log: Logger): Promise<AdminResult> {
  switch (cmd.kind) {
    case 'empty':
      return { tag: 'EMPTY' };
    case 'show':
      if (cmd.what === 'tasks' || cmd.what === 'table_copies' || cmd.what === 'replication_slots') return runMigrationCommand(cmd, ctx);
      if (cmd.what === 'routing' || cmd.what === 'orphans') return runRoutingCommand(cmd, ctx);
      return show(cmd.what, ctx);
    case 'copy_data':
    case 'replicate':
    case 'schema_sync':
    case 'stop_task':
    case 'verify':
      return runMigrationCommand(cmd, ctx);
    case 'cutover': {
      const r = await cutoverTask(ctx, cmd.taskId);
      return table(
        ['cutover', ['task_id', INT8], ['pause_ms', INT8], ['reverse_task_id', INT8], 'barrier_lsn'],
        [['OK', r.taskId, r.pauseMs, r.reverseTaskId, r.barrier.join(', ')]],
        'CUTOVER',
      );
    }
    case 'reshard': {
      const t = await reshard(ctx, { source: cmd.source, destination: cmd.destination, publication: cmd.publication, slot: cmd.slot });
      return table(['task_id', 'replication_slot'], [[String(t.id), t.slots.join(', ')]], 'RESHARD');
    }
    case 'save_routing':
    case 'discard_routing':
    case 'drop_orphans':
      return runRoutingCommand(cmd, ctx);
    case 'pause': {
      const db = cmd.database;
      checkDatabase(ctx, db);
      ctx.gate.close(db, 'PAUSE');
      log.info({ database: db ?? '*' }, 'PAUSE: gate closed, waiting for open transactions');
      await ctx.gate.quiet(db);
      for (const p of poolsOf(ctx, db)) p.drainIdle();
      return { tag: 'PAUSE' };
    }
    case 'resume':
      checkDatabase(ctx, cmd.database);
      ctx.gate.open(cmd.database);
      return { tag: 'RESUME' };
    case 'maintenance':
      checkDatabase(ctx, cmd.database);
      if (cmd.on) ctx.gate.close(cmd.database, 'maintenance');
      else ctx.gate.open(cmd.database);
      return { tag: 'MAINTENANCE' };
    case 'reload':
      try {
        ctx.reload();
      } catch (err) {
        throw new PgError(SQLSTATE.configFileError, `RELOAD failed, the running configuration is unchanged: ${asPgError(err).message}`);
      }
      return { tag: 'RELOAD' };
    case 'shutdown':
      setImmediate(() => void ctx.shutdown());
      return { tag: 'SHUTDOWN' };
    case 'set':
      throw new PgError(SQLSTATE.featureNotSupported, `SET ${cmd.name} is not supported by the admin database; change pgshift.toml and RELOAD`);
    default: {
      const unknown: never = cmd;
      throw new PgError(SQLSTATE.featureNotSupported, `admin command ${JSON.stringify(unknown)} is not available in this build of pgshift`);
    }
  }
}

function checkDatabase(ctx: AdminContext, db: string | undefined): void {
  if (db !== undefined && !ctx.currentConfig.databases.some((d) => d.name === db)) {
    throw new PgError(SQLSTATE.invalidCatalogName, `database "${db}" is not in pgshift.toml`);
  }
}

function poolsOf(ctx: AdminContext, db: string | undefined): Pool[] {
  return ctx.pools().filter((p) => db === undefined || p.key.database === db);
}

function show(what: string, ctx: AdminContext): AdminResult {
  switch (what) {
    case 'version':
      return table(['version'], [[`pgshift ${ctx.version}`]]);
    case 'help':
      // The parser's errors point users here ("SHOW HELP shows their syntax").
      return table(['command', 'syntax', 'description'], ADMIN_HELP.map((h) => [h.command, h.syntax, h.description]));
    case 'config':
      return table(['name', 'value'], redactedConfig(ctx.currentConfig));
    case 'pools':
      return table(
        [['id', INT8], 'database', 'user', 'addr', ['port', INT8], ['shard', INT8], 'role', ['cl_waiting', INT8], ['sv_idle', INT8], ['sv_active', INT8], ['sv_idle_xact', INT8], ['sv_total', INT8], ['maxwait', INT8], ['maxwait_us', INT8], 'pool_mode', ['paused', BOOL], ['banned', BOOL], ['healthy', BOOL], ['errors', INT8], ['re_synced', INT8], ['out_of_sync', INT8], ['force_closed', INT8], ['online', BOOL], ['schema_admin', BOOL], ['bans', INT8], 'ban_reason'],
        ctx.pools().map((p) => {
          const idleXact = [...p.active].filter((s) => s.txStatus !== 'I').length;
          const banned = p.host?.isBanned() ?? false;
          return [p.id, p.key.database, p.key.user, p.address.host, p.address.port, p.key.shard, p.host?.role ?? p.key.role, p.waitingCount, p.idleCount, p.activeCount, idleXact, p.total, Math.floor(p.maxWaitUs / 1e6), p.maxWaitUs % 1e6, p.opts.mode, ctx.gate.isClosed(p.key.database), banned, p.healthy && !banned, p.stats.errors, 0, 0, p.stats.forceClosed, !p.closed, false, p.host?.bans ?? 0, p.host?.state.kind === 'banned' ? p.host.state.reason : null];
        }),
      );
    case 'clients': {
      const now = Date.now();
      return table(
        [['id', INT8], 'user', 'database', 'addr', ['port', INT8], 'state', ['replication', BOOL], ['connect_time', TIMESTAMPTZ], ['queries', INT8], ['transactions', INT8], ['bytes_received', INT8], ['bytes_sent', INT8], ['errors', INT8], 'application_name', ['server_id', INT8], ['age_ms', INT8]],
        ctx.clients().map((c) => [c.id, c.user, c.database, c.addr, c.port, c.state, false, c.connectTime, c.stats.queries, c.stats.transactions, c.stats.bytesReceived, c.stats.bytesSent, c.stats.errors, c.applicationName, c.serverId, now - c.connectTime.getTime()]),
      );
    }
    case 'servers': {
      const now = Date.now();
      const rows = ctx.pools().flatMap((p) =>
        p.servers().map((s) => [p.id, p.key.database, p.address.user, p.address.host, p.address.port, s.sink ? 'active' : 'idle', new Date(s.connectedAt), s.pid, s.stats.transactions, s.stats.queries, s.prepared.size, s.stats.healthchecks, s.stats.errors, s.stats.bytesIn, s.stats.bytesOut, now - s.connectedAt, s.params.get('application_name') ?? '']),
      );
      return table([['pool_id', INT8], 'database', 'user', 'addr', ['port', INT8], 'state', ['connect_time', TIMESTAMPTZ], ['remote_pid', INT8], ['transactions', INT8], ['queries', INT8], ['prepared_statements', INT8], ['healthchecks', INT8], ['errors', INT8], ['bytes_received', INT8], ['bytes_sent', INT8], ['age', INT8], 'application_name'], rows);
    }
    case 'stats':
      return table(
        ['database', 'user', 'addr', ['port', INT8], ['shard', INT8], 'role', ['total_xact_count', INT8], ['total_query_count', INT8], ['total_server_assignment_count', INT8], ['total_received', INT8], ['total_sent', INT8], ['total_wait_time', INT8], ['total_errors', INT8], ['total_connect_count', INT8], ['total_healthchecks', INT8]],
        ctx.pools().map((p) => {
          const t = p.totals();
          return [p.key.database, p.key.user, p.address.host, p.address.port, p.key.shard, p.key.role, t.transactions, t.queries, p.stats.checkouts, t.bytesIn, t.bytesOut, p.stats.waitTimeUs, p.stats.errors + t.errors, p.stats.connects, p.stats.healthchecks];
        }),
      );
    case 'lists': {
      const c = ctx.currentConfig;
      const pools = ctx.pools();
      const servers = pools.reduce((a, p) => a + p.total, 0);
      return table(['list', ['items', INT8]], [
        ['databases', new Set(c.databases.map((d) => d.name)).size],
        ['users', c.users.length],
        ['pools', pools.length],
        ['used_clients', ctx.clients().filter((x) => x.state !== 'idle').length],
        ['free_clients', ctx.clients().filter((x) => x.state === 'idle').length],
        ['used_servers', pools.reduce((a, p) => a + p.activeCount, 0)],
        ['free_servers', pools.reduce((a, p) => a + p.idleCount, 0)],
        ['servers', servers],
      ]);
    }
    case 'databases': {
      const c = ctx.currentConfig;
      return table(['name', 'host', ['port', INT8], 'database_name', ['shard', INT8], 'role', ['paused', BOOL]], c.databases.map((d) => [d.name, d.host, d.port, d.database_name ?? d.name, d.shard, d.role, ctx.gate.isClosed(d.name)]));
    }
    case 'users': {
      const c = ctx.currentConfig;
      return table(['name', 'database', 'pooler_mode', ['pool_size', INT8]], c.users.map((u) => [u.name, u.database, u.pooler_mode ?? c.general.pooler_mode, u.pool_size ?? c.general.default_pool_size]));
    }
    case 'two_phase': {
      const s = ctx.twoPhaseStats();
      if (!s) throw new PgError(SQLSTATE.objectNotInState, 'two-phase commit is unavailable: its decision log in the state directory could not be opened (see the log)');
      return table(
        ['instance', ['in_flight', INT8], ['in_doubt', INT8], ['decisions_pending', INT8], ['committed', INT8], ['rolled_back', INT8], ['recovered_commits', INT8], ['recovered_rollbacks', INT8], ['last_recovery', TIMESTAMPTZ], 'last_recovery_error'],
        [[s.instance, s.inFlight, s.inDoubt, s.decisionsPending, s.committed, s.rolledBack, s.recoveredCommits, s.recoveredRollbacks, s.lastRecoveryAt, s.lastRecoveryError]],
      );
    }
    default:
      throw new PgError(SQLSTATE.featureNotSupported, `SHOW ${what.toUpperCase()} is not available in this build of pgshift`);
  }
}
