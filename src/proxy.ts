/**
 * The composition root: ProxyServer builds every long-lived object of one proxy once — the
 * config, the cluster registry, the pause gate, the listener, the authentication state, the
 * migration task registry and the cutover history — and hands each part only the small
 * interface it needs (frontend/context.ts, frontend/login.ts, admin/context.ts, the cutover's
 * CutoverTraffic, observe's ProgressSource and MetricsSource). Nothing is reached through a
 * module-level singleton.
 */
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { loadModule } from 'libpg-query';
import type { Config, UserConfig } from './config/types.js';
import { reloadConfig, applyRecordedRouting } from './config/index.js';
import { CutoverJournalFile } from './migrate/cutover/cutover-journal.js';
import { recoverCutovers } from './migrate/cutover/cutover-recovery.js';
import { listOrphans } from './migrate/tasks/orphans.js';
import { autoCutover } from './migrate/cutover/cutover-task.js';
import type { TaskRegistry } from './migrate/tasks/task-registry.js';
import { dirname, join } from 'node:path';
import { MigrationTasks } from './migrate/tasks/tasks.js';
import { CutoverHistory } from './migrate/cutover/cutover-history.js';
import type { CutoverContext } from './migrate/cutover/cutover-task.js';
import type { CutoverTraffic } from './migrate/cutover/cutover.js';
import { ClusterRegistry } from './backend/cluster.js';
import type { Pool } from './backend/pool.js';
import type { ServerLease } from './backend/load-balancer.js';
import { PauseGate } from './frontend/pause-gate.js';
import { StatementRegistry } from './frontend/prepared-statements.js';
import { Listener } from './frontend/listener.js';
import { ClientAuth } from './frontend/client-auth.js';
import { LoginFailures } from './frontend/login-failures.js';
import { login, type LoginContext } from './frontend/login.js';
import type { TableColumnsCache } from './backend/table-columns.js';
import { initParser, ParseCache } from './router/index.js';
import type { ShardingSchema } from './sharding/index.js';
import type { ClientInfo, SessionContext } from './frontend/context.js';
import { PgError, SQLSTATE } from './wire/pg-error.js';
import { AdminSession } from './admin/session.js';
import type { AdminContext } from './admin/context.js';
import { createLogger, type Logger } from './observe/log.js';
import { RateLimitedLog } from './observe/rate-limited-log.js';
import { HttpEndpoint } from './observe/http-server.js';
import { createMetrics, type MetricsSource, type MigrationMetrics } from './observe/metrics.js';
import type { TwoPhaseCoordinator, TwoPhaseStats } from './frontend/two-phase.js';
import { TwoPhaseService } from './frontend/two-phase-service.js';
import { buildProgress } from './observe/progress.js';
import { UniqueIdGenerator, uniqueIdNode } from './router/unique-id.js';

export const VERSION = '0.1.0';

let parserReady: Promise<void> | null = null;
export function ensureParser(): Promise<void> {
  return (parserReady ??= loadModule().then(() => initParser()));
}

/** Where migration task state and the cutover journal live: PGSHIFT_STATE_DIR, else `.pgshift` next to the config file. */
export function stateDirFor(config: Config, override?: string): string {
  return override ?? process.env.PGSHIFT_STATE_DIR ?? join(config.paths.config ? dirname(config.paths.config) : process.cwd(), '.pgshift');
}

export interface ProxyOptions {
  log?: Logger;
  /** Where migration task state is kept; default PGSHIFT_STATE_DIR or `.pgshift` next to the config file. */
  stateDir?: string;
}

export class ProxyServer implements SessionContext, LoginContext, AdminContext, CutoverContext, CutoverTraffic, MetricsSource {
  readonly gate: PauseGate;
  readonly statements = new StatementRegistry(() => this.config_.general.prepared_statements_limit);
  readonly registry: ClusterRegistry;
  readonly log: Logger;
  /** Rate-limited warnings for limits clients hit (max_client_conn, failed logins). */
  readonly limits: RateLimitedLog;
  readonly version = VERSION;
  readonly startedAt = new Date();
  private listener: Listener;
  private clientsById = new Map<number, { info: ClientInfo; close: () => void }>();
  private byKey = new Map<string, ClientInfo>();
  /** BackendKeyData pids in use (random, so they must be checked for collisions). */
  private pids = new Set<number>();
  readonly loginFailures = new LoginFailures(() => this.config_.general.auth_failure_delay);
  readonly auth = new ClientAuth();
  readonly parseCache = new ParseCache();
  private nextClientId = 1;
  private tls: tls.SecureContext | null = null;
  private shuttingDown: Promise<void> | null = null;
  port = 0;
  readonly stateDir: string;
  /** The task registry of this proxy's state directory (opened by start()). */
  readonly tasks = new MigrationTasks(this);
  readonly cutovers = new CutoverHistory();
  private http: HttpEndpoint | null = null;
  httpPort = 0;
  httpHost = '';
  /** Failure injection for tests of the cutover's abort paths. */
  inject?: CutoverContext['inject'];
  /** Called after the proxy stopped (serve exits the process). */
  onShutdown: (() => void) | null = null;
  private journalFile: CutoverJournalFile | null = null;
  readonly twoPhase: TwoPhaseService;
  /** pgshift.unique_id(): one generator per process, its node id from NODE_ID. */
  private readonly uniqueIdGenerator = new UniqueIdGenerator(uniqueIdNode(process.env));

  constructor(private config_: Config, opts: ProxyOptions = {}) {
    const config = config_;
    this.log = opts.log ?? createLogger();
    this.limits = new RateLimitedLog(this.log);
    this.gate = new PauseGate(config.general.pause_timeout);
    this.registry = new ClusterRegistry(config, {
      banned: (database, shard, h, reason) => this.log.warn({ database, shard, server: h.label, role: h.role, ban_timeout: this.config_.general.ban_timeout, reason }, 'server banned: out of the read rotation'),
      unbanned: (database, shard, h) => this.log.info({ database, shard, server: h.label, role: h.role }, 'server healthy again: back in the read rotation'),
    });
    this.stateDir = stateDirFor(config, opts.stateDir);
    this.twoPhase = new TwoPhaseService(this.stateDir, this.registry, () => this.config_, this.log);
    this.loadTls();
    this.listener = new Listener({
      tlsContext: () => this.tls,
      startupTimeoutMs: () => this.config_.general.client_login_timeout ?? this.config_.general.connect_timeout,
      maxClients: () => this.config_.general.max_client_conn,
      limits: this.limits,
      cancel: (pid, secret) => this.byKey.get(`${pid}:${secret}`)?.cancel?.(),
      login: (s) => login(this, s),
      log: this.log,
    });
  }

  get currentConfig(): Config {
    return this.config_;
  }

  async start(): Promise<number> {
    await ensureParser();
    // A cutover recorded in the state directory stays in force whatever the files say.
    this.applyRecordedRouting();
    // Databases of a cutover interrupted by a crash wait behind the gate until it is recovered.
    const recovering = [...new Set(this.journal.unsettled().flatMap((j) => [j.source, j.destination]))];
    for (const db of recovering) this.gate.close(db, 'cutover recovery');
    await this.twoPhase.open();
    this.port = await this.listener.listen(this.config_.general.host, this.config_.general.port);
    this.registry.startMaintenance();
    // Tasks interrupted by a restart resume now (streams continue from their slots), after the
    // interrupted cutovers are rolled back or forward.
    let reg: TaskRegistry;
    try {
      reg = await this.tasks.registry();
    } finally {
      for (const db of recovering) this.gate.open(db);
    }
    for (const t of reg.list()) if (t.kind === 'reshard' && !t.terminal) autoCutover(this, t);
    // In the background: a slow or unreachable cluster must not delay the start.
    void listOrphans(this.config_, reg.list(), this.journal.all()).then(
      (list) => {
        if (list.length > 0) this.log.warn({ orphans: list.map((o) => `${o.kind} ${o.name} on ${o.endpoint.host}:${o.endpoint.port}/${o.endpoint.database}`) }, 'replication slots or origins made by pgshift that no task owns (SHOW ORPHANS, DROP_ORPHANS)');
      },
      (err) => this.log.warn({ err: (err as Error).message }, 'could not list orphaned slots and origins'),
    );
    const g = this.config_.general;
    const httpPort = g.http_port ?? g.openmetrics_port;
    if (httpPort !== undefined) {
      this.http = new HttpEndpoint({ progress: () => this.progress(), metrics: createMetrics(this) }, this.log);
      // Not [general] host: the endpoint has no authentication, so it is local unless asked.
      this.httpHost = g.http_host ?? g.openmetrics_host ?? '127.0.0.1';
      this.httpPort = await this.http.listen(this.httpHost, httpPort);
      this.log.info({ host: this.httpHost, port: this.httpPort }, 'progress and metrics endpoint listening');
    }
    this.log.info({ host: this.config_.general.host, port: this.port }, 'pgshift listening');
    return this.port;
  }

  private loadTls(): void {
    const g = this.config_.general;
    this.tls = g.tls_certificate && g.tls_private_key ? tls.createSecureContext({ cert: readFileSync(g.tls_certificate), key: readFileSync(g.tls_private_key) }) : null;
  }

  /** The durable record of cutovers and the routing they put in force. */
  get journal(): CutoverJournalFile {
    return (this.journalFile ??= CutoverJournalFile.open(this.stateDir));
  }

  async beforeResume(reg: TaskRegistry): Promise<void> {
    await recoverCutovers(reg, this, this.journal);
  }

  private applyRecordedRouting(): void {
    const j = this.journal;
    const r = applyRecordedRouting(this.config_, j.routing, j.file);
    if (r.state === 'in_files') j.clearRouting();
    if (r.state !== 'applied') return;
    this.applyConfig(r.config);
    this.log.warn(
      { swaps: j.routing.map((s) => `${s.source} <-> ${s.destination} (task ${s.taskId})`), stateFile: j.file },
      'SERVING A CUTOVER LAYOUT THAT DIFFERS FROM THE CONFIG FILES: the state directory records a cutover the files do not show; it stays in force (SHOW ROUTING; SAVE_ROUTING writes it to the files)',
    );
  }

  // ---- LoginContext -------------------------------------------------------------------------

  get sessions(): SessionContext {
    return this;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown !== null;
  }

  startAdminSession(socket: Socket, leftover: Buffer): void {
    new AdminSession(socket, this, this.log).start(leftover);
  }

  newClientId(): number {
    return this.nextClientId++;
  }

  pidInUse(pid: number): boolean {
    return this.pids.has(pid);
  }

  clientStarted(info: ClientInfo, session: { cancel(): void; close(): void }): void {
    info.cancel = () => session.cancel();
    this.clientsById.set(info.id, { info, close: () => session.close() });
    this.byKey.set(`${info.pid}:${info.secret}`, info);
    this.pids.add(info.pid);
  }

  findUser(name: string, database: string): UserConfig | undefined {
    return this.config_.users.find((u) => u.name === name && u.database === database);
  }

  // ---- ProxyContext ------------------------------------------------------------------------

  hasReplicas(info: ClientInfo): boolean {
    return this.registry.get(info.database)?.hasReplicas ?? false;
  }

  poolFor(info: ClientInfo, readOnly = false): Pool {
    const cluster = this.registry.get(info.database);
    if (!cluster) throw new PgError(SQLSTATE.invalidCatalogName, `database "${info.database}" is no longer configured`);
    const user = this.findUser(info.user, info.database);
    if (!user) throw new PgError(SQLSTATE.invalidAuthorization, `user "${info.user}" is no longer configured for database "${info.database}"`);
    return cluster.pool(user, 0, readOnly ? 'replica' : 'primary');
  }

  checkout(info: ClientInfo, readOnly = false): Promise<ServerLease> {
    return this.shardCheckout(info, 0, readOnly);
  }

  async shardCheckout(info: ClientInfo, shard: number, readOnly = false): Promise<ServerLease> {
    const cluster = this.registry.get(info.database);
    if (!cluster) throw new PgError(SQLSTATE.invalidCatalogName, `database "${info.database}" is no longer configured`);
    const user = this.findUser(info.user, info.database);
    if (!user) throw new PgError(SQLSTATE.invalidAuthorization, `user "${info.user}" is no longer configured for database "${info.database}"`);
    return cluster.checkout(user, shard, readOnly ? 'read' : 'write');
  }

  sharding(info: ClientInfo): { schema: ShardingSchema; shards: number } {
    const cluster = this.registry.get(info.database);
    if (!cluster) throw new PgError(SQLSTATE.invalidCatalogName, `database "${info.database}" is no longer configured`);
    return { schema: cluster.sharding, shards: cluster.shardCount };
  }

  tableColumns(info: ClientInfo): TableColumnsCache {
    const cluster = this.registry.get(info.database);
    if (!cluster) throw new PgError(SQLSTATE.invalidCatalogName, `database "${info.database}" is no longer configured`);
    return cluster.tableColumns;
  }

  twoPhaseCommit(implicit: boolean): boolean {
    const g = this.config_.general;
    return g.two_phase_commit && (!implicit || g.two_phase_commit_auto);
  }

  twoPhaseCoordinator(): TwoPhaseCoordinator | null {
    return this.twoPhase.coordinator;
  }

  uniqueId(): Promise<string> {
    return this.uniqueIdGenerator.next(this.config_.general.unique_id_min);
  }

  twoPhaseStats(): TwoPhaseStats | null {
    return this.twoPhase.stats();
  }

  clientIdleTimeouts(): { idle: number; idleInTransaction: number } {
    const g = this.config_.general;
    return { idle: g.client_idle_timeout, idleInTransaction: g.client_idle_in_transaction_timeout };
  }

  maxPacketSize(): number {
    return this.config_.general.max_packet_size;
  }

  queryTimeout(): number {
    return this.config_.general.query_timeout;
  }

  isSharded(info: ClientInfo): boolean {
    return (this.registry.get(info.database)?.shardCount ?? 1) > 1;
  }

  clientGone(info: ClientInfo): void {
    this.clientsById.delete(info.id);
    this.byKey.delete(`${info.pid}:${info.secret}`);
    this.pids.delete(info.pid);
  }

  // ---- AdminContext ------------------------------------------------------------------------

  clients(): ClientInfo[] {
    return [...this.clientsById.values()].map((c) => c.info);
  }

  pools(): Pool[] {
    return this.registry.allPools();
  }

  /**
   * Re-reads the config files (or installs `next`) and rebuilds pools. A cutover that was not
   * saved to the files is re-applied, so RELOAD never silently moves traffic back.
   */
  reload(next?: Config): void {
    let config = next;
    if (!config) {
      const routing = this.journal.routing;
      const r = reloadConfig(this.config_, routing);
      config = r.config;
      if (!r.reapplied) this.journal.clearRouting();
      else this.log.warn({ swaps: routing }, 'RELOAD: re-applied the recorded cutover routing to the files\' layout (SHOW ROUTING)');
    }
    this.applyConfig(config);
    this.log.info({ databases: this.registry.names() }, 'configuration reloaded');
  }

  /**
   * Stops running tasks' work without changing their persisted state: streams finish their
   * transaction and confirm, copies stop; the next start resumes them from their slots.
   */
  private async suspendTasks(): Promise<void> {
    const reg = await this.tasks.registry().catch(() => null);
    if (!reg) return;
    await Promise.all(
      reg
        .list()
        .filter((t) => !t.terminal)
        .map(async (t) => {
          t.controller.abort(new PgError(SQLSTATE.adminShutdown, 'pgshift is shutting down; the task resumes at the next start'));
          await Promise.allSettled(t.streams.map((s) => s.stop()));
          await t.done.catch(() => undefined);
        }),
    );
  }

  // ---- progress and metrics -----------------------------------------------------------------

  databaseNames(): string[] {
    return this.registry.names();
  }

  async progress(): Promise<unknown> {
    return buildProgress(this, await this.tasks.registry());
  }

  async migrationMetrics(): Promise<MigrationMetrics> {
    const p = (await this.progress()) as { tasks: { id: number; lag: { shard: number; bytes: number; seconds: number }[]; tables: { table: string; rows: number; bytes: number }[] }[]; lastCutover: { pauseMs: number } | null; cutovers: number };
    return {
      lag: p.tasks.flatMap((t) => t.lag.map((l) => ({ task: t.id, ...l }))),
      tables: p.tasks.flatMap((t) => t.tables.map((x) => ({ task: t.id, table: x.table, rows: x.rows, bytes: x.bytes }))),
      lastCutoverPauseMs: p.lastCutover?.pauseMs ?? null,
      cutovers: p.cutovers,
    };
  }

  // ---- CutoverContext ----------------------------------------------------------------------

  config(): Config {
    return this.config_;
  }

  get traffic(): CutoverTraffic {
    return this;
  }

  async prewarm(source: string, destination: string): Promise<void> {
    const src = this.registry.get(source);
    const dst = this.registry.get(destination);
    if (!src || !dst) return;
    const jobs: Promise<void>[] = [];
    for (const user of this.config_.users.filter((u) => u.database === destination)) {
      // As many connections per destination shard as the source's pools of this user hold now.
      const inUse = src.allPools().filter((p) => p.key.user === user.name).reduce((a, p) => a + p.total, 0);
      if (inUse === 0) continue;
      for (let shard = 0; shard < dst.shardCount; shard++) jobs.push(dst.pool(user, shard).prewarm(inUse));
    }
    await Promise.all(jobs);
  }

  swapped(source: string, destination: string, saved: boolean): void {
    if (!saved) this.log.warn({ source, destination, stateFile: this.journal.file }, 'cutover routing recorded in the state directory only; the config files still show the old layout (SHOW ROUTING, SAVE_ROUTING)');
  }

  /** Installs a config in memory (RELOAD, cutover swap). */
  applyConfig(config: Config): void {
    this.config_ = config;
    this.gate.timeoutMs = config.general.pause_timeout;
    this.loadTls();
    this.registry.replace(config);
  }

  /** Stops accepting, lets open transactions finish (up to shutdown_timeout), then closes everything. */
  shutdown(): Promise<void> {
    if (this.shuttingDown) return this.shuttingDown;
    this.shuttingDown = (async () => {
      this.log.info('shutting down: waiting for open transactions');
      await this.listener.stopAccepting();
      const timeout = this.config_.general.shutdown_timeout;
      await Promise.race([this.gate.quiet(), new Promise((r) => setTimeout(r, timeout).unref())]);
      this.gate.failAll(new PgError(SQLSTATE.adminShutdown, 'pgshift is shutting down'));
      await this.suspendTasks();
      for (const c of [...this.clientsById.values()]) c.close();
      this.listener.destroyAll();
      await this.twoPhase.close();
      this.registry.close();
      await this.http?.close();
      this.log.info('pgshift stopped');
      this.onShutdown?.();
    })();
    return this.shuttingDown;
  }
}
