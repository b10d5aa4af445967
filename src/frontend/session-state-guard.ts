/**
 * Session state that must not travel with a pooled server connection (transaction mode).
 *
 * Besides SET (session-params.ts), a client can leave state on the server connection it
 * happens to use: set_config(…, false), SET ROLE, SQL PREPARE, LISTEN, temporary tables,
 * session advisory locks, cursors WITH HOLD, LOAD. This module finds them in the client's SQL
 * (PostgreSQL's grammar via the parse cache) and decides per feature what happens:
 *
 * - a parameter set through set_config() with a constant name is handled like SET: its value is
 *   read back and follows the client (`params`);
 * - everything else pins the server connection to the client for the rest of its session
 *   (`pin`), as if it were in session mode; the connection is reset with DISCARD ALL when the
 *   client leaves, before another client can get it.
 *
 * The sharded query loop cannot pin (a client spans several pools), so it refuses instead
 * (`refusal`).
 */
import type { ParseCache } from '../router/parse-cache.js';
import type { Node } from '../router/ast.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { SERVER_NAME_PREFIX, RESERVED_NAME_SQL } from './prepared-statements.js';

/** What a query does to session state beyond SET/RESET. */
export interface SessionEffect {
  /** Parameters changed by set_config(name, …, false) with a constant name (lower case). */
  readonly params: readonly string[];
  /** Why the client now needs its server connection for the rest of its session; null if it does not. */
  readonly pin: string | null;
}

const NONE: SessionEffect = { params: [], pin: null };

/**
 * Words one of the detected features must contain (function names, keywords). A query without
 * any of them is not parsed, so ordinary queries cost one pass over their bytes.
 */
const NEEDLES = ['set_config', 'advisory_lock', 'temp', 'listen', 'prepare', 'hold', 'role', 'authorization', 'load'].map((w) => Buffer.from(w));
/** NEEDLE_FIRST[b]: the needles starting with byte b (lower case); null for none. */
const NEEDLE_FIRST: (Buffer[] | null)[] = new Array(256).fill(null);
for (const n of NEEDLES) (NEEDLE_FIRST[n[0]] ??= []).push(n);
const NEEDLE_RE = /set_config|advisory_lock|temp|listen|prepare|hold|role|authorization|load/i;

function fold(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

/**
 * Cheap test on a Query or Parse body before decoding it: whether the text (from `start` up to
 * its terminating zero) contains one of the needle words, in any case.
 */
export function mayLeaveSessionState(body: Buffer, start = 0): boolean {
  const end = body.indexOf(0, start);
  const stop = end < 0 ? body.length : end;
  for (let i = start; i < stop; i++) {
    const cands = NEEDLE_FIRST[fold(body[i])];
    if (cands === null) continue;
    for (const n of cands) {
      if (i + n.length > stop) continue;
      let j = 1;
      while (j < n.length && fold(body[i + j]) === n[j]) j++;
      if (j === n.length) return true;
    }
  }
  return false;
}

const ADVISORY_SESSION_LOCKS = new Set(['pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared']);
/** Parameters whose change hands the client another identity: never replayed on other connections. */
const IDENTITY_PARAMS = new Set(['role', 'session_authorization']);
/** CURSOR_OPT_HOLD in PostgreSQL's parsenodes.h. */
const CURSOR_OPT_HOLD = 0x0020;
const TRUE_TEXT = new Set(['t', 'true', 'on', 'y', 'yes', '1']);

/** The session effect of `sql` (memoised on the parse cache entry). */
export function sessionEffect(sql: string, cache: ParseCache): SessionEffect {
  // pgshift's own refusal of a pgshift_ name is a DO block that leaves nothing.
  if (!NEEDLE_RE.test(sql) || sql === RESERVED_NAME_SQL) return NONE;
  const q = cache.parse(sql);
  const memo = q.memo.sessionEffect as SessionEffect | undefined;
  if (memo) return memo;
  const found = { params: [] as string[], pin: null as string | null };
  if (q.ok) for (const s of q.statements) visit(s.node, found, false);
  const effect = found.params.length || found.pin ? found : NONE;
  q.memo.sessionEffect = effect;
  return effect;
}

type Found = { params: string[]; pin: string | null };

function visit(node: unknown, found: Found, dropsOnCommit: boolean): void {
  if (found.pin || node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) visit(n, found, dropsOnCommit);
    return;
  }
  const o = node as Record<string, unknown>;
  const pin = statementPin(o, dropsOnCommit);
  if (pin) {
    found.pin = pin;
    return;
  }
  const call = o.FuncCall as { funcname?: Node[]; args?: Node[] } | undefined;
  if (call) funcCall(call, found);
  // ON COMMIT DROP: the temporary table ends with the transaction, no state is left.
  const drops = dropsOnCommit || o.oncommit === 'ONCOMMIT_DROP' || o.onCommit === 'ONCOMMIT_DROP';
  for (const k in o) visit(o[k], found, drops);
}

/** Statements and relation references that need the session (null when this node is none of them). */
function statementPin(o: Record<string, unknown>, dropsOnCommit: boolean): string | null {
  if (o.ListenStmt) return 'LISTEN';
  const prep = o.PrepareStmt as { name?: string } | undefined;
  // PREPARE of a pgshift_ name is replaced by an error (prepared-statements.ts): nothing stays.
  if (prep) return prep.name?.toLowerCase().startsWith(SERVER_NAME_PREFIX) ? null : 'SQL PREPARE';
  if (o.LoadStmt) return 'LOAD';
  const cursor = o.DeclareCursorStmt as { options?: number } | undefined;
  if (cursor && ((cursor.options ?? 0) & CURSOR_OPT_HOLD) !== 0) return 'a cursor WITH HOLD';
  const set = o.VariableSetStmt as { name?: string; is_local?: boolean; kind?: string } | undefined;
  if (set && !set.is_local && set.kind !== 'VAR_RESET' && set.name && IDENTITY_PARAMS.has(set.name)) return `SET ${set.name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'}`;
  const d = o.DoStmt as { args?: { DefElem?: { defname?: string; arg?: { String?: { sval?: string } } } }[] } | undefined;
  if (d) {
    // A DO block's body is PL/pgSQL, which this parser does not read: any needle word in it pins.
    const body = d.args?.find((a) => a.DefElem?.defname === 'as')?.DefElem?.arg?.String?.sval ?? '';
    if (NEEDLE_RE.test(body)) return 'a DO block that may change session state';
  }
  if (!dropsOnCommit && (o.relpersistence === 't' || (typeof o.schemaname === 'string' && o.schemaname.startsWith('pg_temp')))) {
    return 'a temporary table';
  }
  return null;
}

function funcCall(call: { funcname?: Node[]; args?: Node[] }, found: Found): void {
  const names = call.funcname ?? [];
  const last = (names[names.length - 1] as { String?: { sval?: string } } | undefined)?.String?.sval?.toLowerCase();
  if (!last) return;
  if (ADVISORY_SESSION_LOCKS.has(last)) {
    found.pin = `a session advisory lock (${last})`;
    return;
  }
  if (last !== 'set_config') return;
  const args = call.args ?? [];
  const local = constText(args[2]);
  if (local !== undefined && TRUE_TEXT.has(local.toLowerCase())) return; // is_local = true: ends with the transaction
  const name = constText(args[0])?.toLowerCase();
  if (name === undefined) found.pin = 'set_config() with a parameter name that is not a constant';
  else if (IDENTITY_PARAMS.has(name)) found.pin = `set_config('${name}', …)`;
  else if (!found.params.includes(name)) found.params.push(name);
}

/** The text of a constant argument ('x', true, 1), or undefined when it is not a constant. */
function constText(n: Node | undefined): string | undefined {
  const c = (n as { A_Const?: { sval?: { sval?: string }; boolval?: { boolval?: boolean }; ival?: { ival?: number }; isnull?: boolean } } | undefined)?.A_Const;
  if (!c || c.isnull) return undefined;
  if (c.sval) return c.sval.sval ?? '';
  if (c.boolval) return c.boolval.boolval ? 'true' : 'false';
  if (c.ival) return String(c.ival.ival ?? 0);
  const cast = (n as { TypeCast?: { arg?: Node } }).TypeCast;
  return cast ? constText(cast.arg) : undefined;
}

const statementNeedles = new WeakMap<object, boolean>();

/** Reported parameters a server cannot change on its own; the rest are read back when reported. */
const NOT_TRACKED = new Set(['server_version', 'server_encoding', 'integer_datetimes', 'in_hot_standby']);

/**
 * A client's session state in transaction mode: whether it may still share server connections
 * or is pinned to the one it has, and parameters it changed that SET tracking did not see.
 */
export class SessionStateGuard {
  /** Null while the client shares connections; the reason once it is pinned. */
  pinned: string | null = null;

  constructor(private readonly cache: ParseCache) {}

  /**
   * Accounts for `sql` about to run; returns the parameters to read back after the transaction
   * (set_config with a constant name), or null.
   */
  noteSql(sql: string): readonly string[] | null {
    const e = sessionEffect(sql, this.cache);
    if (e.pin) this.pinned ??= e.pin;
    return e.params.length ? e.params : null;
  }

  /**
   * Whether a named statement's text contains a needle word (cached per statement, so a Bind
   * of an ordinary statement costs one WeakMap lookup).
   */
  statementMayLeaveState(stmt: { readonly query: string }): boolean {
    let v = statementNeedles.get(stmt);
    if (v === undefined) statementNeedles.set(stmt, (v = NEEDLE_RE.test(stmt.query)));
    return v;
  }

  /**
   * A ParameterStatus from the server: something (a function, a trigger, set_config anywhere)
   * changed a reported parameter. Returns the parameter to read back (lower case), or null.
   */
  noteParameterStatus(name: string): string | null {
    const k = name.toLowerCase();
    if (NOT_TRACKED.has(k)) return null;
    if (k === 'session_authorization' || k === 'is_superuser') {
      this.pinned ??= 'a change of session authorization';
      return null;
    }
    return k;
  }
}

/**
 * For the sharded query loop, which cannot keep a client on one connection per shard: the
 * error for SQL that would leave session state behind, or null.
 */
export function shardedSessionRefusal(sql: string, cache: ParseCache): PgError | null {
  const e = sessionEffect(sql, cache);
  const what = e.pin ?? (e.params.length ? `set_config('${e.params[0]}', …, false)` : null);
  if (!what) return null;
  return new PgError(SQLSTATE.featureNotSupported, `${what} is not supported on a sharded database: it would stay on a pooled server connection`, {
    hint: e.pin ? 'use session-free SQL (e.g. pg_advisory_xact_lock, ON COMMIT DROP)' : 'use SET, which pgshift applies on every shard',
  });
}
