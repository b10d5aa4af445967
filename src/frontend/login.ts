/**
 * Logging a client in once its startup message is read: the password exchange (the same one,
 * and the same 28P01, for a user or database that does not exist), the delay after repeated
 * failures, the welcome (ParameterStatus from a real server of the database, BackendKeyData),
 * and the start of its session: the admin session, or a client session (frontend/session.ts).
 */
import type { Socket } from 'node:net';
import type { Config, UserConfig } from '../config/types.js';
import { describeMissingUser } from '../config/index.js';
import type { ClusterRegistry } from '../backend/cluster.js';
import type { Pool } from '../backend/pool.js';
import * as be from '../wire/backend-messages.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { RateLimitedLog } from '../observe/rate-limited-log.js';
import type { ClientAuth } from './client-auth.js';
import type { LoginFailures } from './login-failures.js';
import { newBackendKey, type StartupInfo } from './listener.js';
import { startupSessionParams } from './session-params.js';
import type { ClientInfo, SessionContext } from './context.js';
import { ClientSession } from './session.js';

/** What a login needs from the proxy; the composition root implements it. */
export interface LoginContext {
  readonly version: string;
  readonly registry: ClusterRegistry;
  readonly limits: RateLimitedLog;
  readonly loginFailures: LoginFailures;
  readonly auth: ClientAuth;
  /** What the client loops are given. */
  readonly sessions: SessionContext;
  currentConfig: Config;
  isShuttingDown(): boolean;
  findUser(name: string, database: string): UserConfig | undefined;
  /** The admin database's session (the frontend does not know the admin commands). */
  startAdminSession(socket: Socket, leftover: Buffer): void;
  /** The id SHOW CLIENTS shows for the next client. */
  newClientId(): number;
  /** A BackendKeyData pid already given to a connected client. */
  pidInUse(pid: number): boolean;
  /** Registers a started client (SHOW CLIENTS, cancel, shutdown). */
  clientStarted(info: ClientInfo, session: { cancel(): void; close(): void }): void;
}

/** Logs a client in; a failed password is logged (rate-limited) and answered after the failure delay. */
export async function login(ctx: LoginContext, s: StartupInfo): Promise<void> {
  const addr = s.socket.remoteAddress ?? '';
  const why: { reason?: string } = {};
  try {
    await loginOrThrow(ctx, s, why);
  } catch (err) {
    if (!(err instanceof PgError) || err.code !== SQLSTATE.invalidPassword) throw err;
    const { user, database } = s.params;
    ctx.limits.warn('login_failed', { user, database, addr, reason: why.reason ?? 'wrong password' }, 'client login failed');
    const delay = ctx.loginFailures.failed(addr);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    throw err;
  }
  ctx.loginFailures.succeeded(addr);
}

/** Authenticates and starts the session; `why.reason` says what an unknown login lacked (for the log only). */
async function loginOrThrow(ctx: LoginContext, s: StartupInfo, why: { reason?: string }): Promise<void> {
  const { params, io } = s;
  const user = params.user;
  const database = params.database;
  if (ctx.isShuttingDown()) throw new PgError(SQLSTATE.cannotConnectNow, 'pgshift is shutting down');
  const config = ctx.currentConfig;
  const g = config.general;
  const method = g.auth_type === 'trust' ? 'scram' : g.auth_type;
  if (database === config.admin.name) {
    if (user !== config.admin.user) {
      why.reason = `user "${user}" may not connect to the admin database; use the [admin] user`;
      await ctx.auth.mock(io, method, user);
    }
    await ctx.auth.authenticate(io, method, user, config.admin.password);
    const leftover = io.detach();
    s.socket.write(Buffer.concat([be.authOk(), be.parameterStatus('server_version', `15.0 (pgshift ${ctx.version})`), be.parameterStatus('client_encoding', 'UTF8'), be.parameterStatus('server_encoding', 'UTF8'), be.parameterStatus('DateStyle', 'ISO, MDY'), be.parameterStatus('standard_conforming_strings', 'on'), be.parameterStatus('integer_datetimes', 'on'), be.backendKeyData(0, 0), be.readyForQuery('I')]));
    ctx.startAdminSession(s.socket, leftover);
    return;
  }
  const cluster = ctx.registry.get(database);
  const userCfg = cluster ? ctx.findUser(user, database) : undefined;
  if (!cluster || !userCfg) {
    why.reason = cluster ? describeMissingUser(config, user, database) : `database "${database}" does not exist in pgshift.toml`;
    // As PostgreSQL: the same password exchange as for a real user, then 28P01, so names cannot be probed.
    if (g.auth_type === 'trust') throw new PgError(SQLSTATE.invalidPassword, `password authentication failed for user "${user}"`);
    return ctx.auth.mock(io, method, user);
  }
  await ctx.auth.authenticate(io, g.auth_type, user, userCfg.password);
  const info: ClientInfo = {
    id: ctx.newClientId(),
    user,
    database,
    addr: s.socket.remoteAddress ?? '',
    port: s.socket.remotePort ?? 0,
    applicationName: params.application_name ?? '',
    connectTime: new Date(),
    state: 'idle',
    serverId: null,
    poolerMode: userCfg.pooler_mode ?? g.pooler_mode,
    ...newBackendKey((pid) => ctx.pidInUse(pid)),
    stats: { queries: 0, transactions: 0, errors: 0, bytesReceived: 0, bytesSent: 0 },
  };
  // Server parameters for the client come from a real server of this database.
  let pool = cluster.allPools().find((p) => p.key.user === user && p.serverParams.size > 0);
  if (!pool) {
    // Any server of the database will do (a replica too): role = "auto" may not know its primary yet.
    const lease = await ctx.sessions.checkout(info, true);
    lease.pool.release(lease.srv);
    pool = lease.pool;
  }
  const sessionParams = startupSessionParams(params);
  const reported = new Map(pool.serverParams);
  for (const [k] of reported) {
    const mine = sessionParams.get(k.toLowerCase());
    if (mine !== undefined) reported.set(k, mine);
  }
  if (!reported.has('application_name')) reported.set('application_name', info.applicationName);
  const leftover = io.detach();
  const out: Buffer[] = [be.authOk()];
  for (const [k, v] of reported) out.push(be.parameterStatus(k, v));
  out.push(be.backendKeyData(info.pid, info.secret), be.readyForQuery('I'));
  s.socket.write(Buffer.concat(out));
  const client = new ClientSession(s.socket, ctx.sessions, info, sessionParams);
  ctx.clientStarted(info, client);
  client.start(leftover);
}
