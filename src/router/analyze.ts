/**
 * Statement classification the proxy needs even for unsharded databases: what kind of statement,
 * whether it may run on a replica, transaction control, SET/RESET targets and the manual shard
 * overrides (`/* pgshift_shard: N *\/` comments and `SET pgshift.shard = N`).
 */
import type { Node } from './ast.js';
import { as, constValue, lastName, walk } from './ast.js';
import type { ParsedQuery, ParsedStatement } from './parse-cache.js';
import { queryTokens, statementText } from './parse-cache.js';

export type StatementKind =
  | 'select' | 'insert' | 'update' | 'delete' | 'merge' | 'copy_from' | 'copy_to'
  | 'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollback_to'
  | 'prepare_transaction' | 'commit_prepared' | 'rollback_prepared'
  | 'set' | 'reset' | 'show' | 'discard' | 'listen' | 'unlisten' | 'notify'
  | 'explain' | 'prepare' | 'execute' | 'deallocate' | 'ddl' | 'other';

export interface SetTarget {
  /** Lower-case parameter name ('search_path', 'timezone', 'transaction' for SET TRANSACTION, 'all' for RESET ALL). */
  name: string;
  /** Value as PostgreSQL would show it; null for DEFAULT / RESET. */
  value: string | null;
  /** SET LOCAL (lasts until the end of the transaction). */
  local: boolean;
}

export interface StatementInfo {
  kind: StatementKind;
  /** Safe for a replica: a SELECT without FOR UPDATE/SHARE, writable CTEs, SELECT INTO or nextval/setval; SHOW; plain EXPLAIN. */
  readOnly: boolean;
  /** BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE/ROLLBACK TO/PREPARE TRANSACTION/COMMIT|ROLLBACK PREPARED. */
  transactionControl: boolean;
  /** For BEGIN / START TRANSACTION: true for READ ONLY, false for READ WRITE, null when unspecified. */
  beginReadOnly?: boolean | null;
  /** Savepoint name or two-phase gid, when the statement has one. */
  name?: string;
  /** For SET / RESET (kind 'set' or 'reset'). */
  set?: SetTarget;
  /** `SET pgshift.shard = N` → { shard: N }; `RESET pgshift.shard`, `SET pgshift.shard TO DEFAULT`, `RESET ALL` → { shard: null }. */
  shardOverride?: { shard: number | null };
  /** Source text of this statement. */
  text: string;
}

export interface QueryAnalysis {
  /** False when the text did not parse (forward it to one shard and let PostgreSQL report the error). */
  parsed: boolean;
  statements: StatementInfo[];
  /** Every statement is read-only (and there is at least one). */
  readOnly: boolean;
  /** Shard from a `pgshift_shard: N` / `pgshift_shard=N` comment, or null. */
  shardHint: number | null;
}

const TX_KINDS: Record<string, StatementKind> = {
  TRANS_STMT_BEGIN: 'begin', TRANS_STMT_START: 'begin', TRANS_STMT_COMMIT: 'commit', TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint', TRANS_STMT_RELEASE: 'release', TRANS_STMT_ROLLBACK_TO: 'rollback_to',
  TRANS_STMT_PREPARE: 'prepare_transaction', TRANS_STMT_COMMIT_PREPARED: 'commit_prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback_prepared',
};

const SIMPLE_KINDS: Record<string, StatementKind> = {
  SelectStmt: 'select', InsertStmt: 'insert', UpdateStmt: 'update', DeleteStmt: 'delete', MergeStmt: 'merge',
  VariableShowStmt: 'show', DiscardStmt: 'discard', ListenStmt: 'listen', UnlistenStmt: 'unlisten', NotifyStmt: 'notify',
  ExplainStmt: 'explain', PrepareStmt: 'prepare', ExecuteStmt: 'execute', DeallocateStmt: 'deallocate',
};

// Statements that are neither DDL nor DML but must still reach every shard or be handled specially.
const OTHER_TYPES = new Set([
  'DoStmt', 'CallStmt', 'VacuumStmt', 'CheckPointStmt', 'LockStmt', 'LoadStmt', 'ClusterStmt', 'ReindexStmt',
  'DeclareCursorStmt', 'FetchStmt', 'ClosePortalStmt', 'ConstraintsSetStmt',
]);

/** Classifies every statement of a parsed query (memoised on the query). */
export function analyze(q: ParsedQuery): QueryAnalysis {
  const memo = q.memo.analysis as QueryAnalysis | undefined;
  if (memo) return memo;
  const statements = q.statements.map((s) => analyzeStatement(q, s));
  const a: QueryAnalysis = {
    parsed: q.ok,
    statements,
    readOnly: q.ok && statements.length > 0 && statements.every((s) => s.readOnly),
    shardHint: commentShardHint(q),
  };
  q.memo.analysis = a;
  return a;
}

function analyzeStatement(q: ParsedQuery, s: ParsedStatement): StatementInfo {
  const body = s.node[s.type] as Node;
  const info: StatementInfo = { kind: 'other', readOnly: false, transactionControl: false, text: statementText(q, s) };
  if (s.type === 'TransactionStmt') {
    info.kind = TX_KINDS[body.kind as string] ?? 'other';
    info.transactionControl = true;
    if (info.kind === 'begin') info.beginReadOnly = readOnlyOption(body.options);
    const name = body.savepoint_name ?? body.gid;
    if (name !== undefined) info.name = String(name);
    return info;
  }
  if (s.type === 'VariableSetStmt') return setInfo(info, body);
  if (s.type === 'CopyStmt') {
    info.kind = body.is_from ? 'copy_from' : 'copy_to';
    info.readOnly = !body.is_from && (!body.query || isReadOnlyTree(body.query));
    return info;
  }
  const simple = SIMPLE_KINDS[s.type];
  if (simple) {
    info.kind = simple;
    if (simple === 'select') info.readOnly = isReadOnlyTree(s.node);
    else if (simple === 'show') info.readOnly = true;
    else if (simple === 'explain') info.readOnly = !explainAnalyze(body) || isReadOnlyTree(body.query);
    return info;
  }
  if (OTHER_TYPES.has(s.type)) return info;
  // Everything else that parses is a utility statement changing the schema or privileges.
  info.kind = 'ddl';
  return info;
}

function explainAnalyze(body: Node): boolean {
  return (body.options ?? []).some((o: Node) => {
    const d = as(o, 'DefElem');
    if (!d || d.defname !== 'analyze') return false;
    const arg = d.arg ? constText(d.arg) : 'true';
    return !/^(false|off|0|no)$/i.test(arg);
  });
}

/** A query tree is read-only when nothing in it writes rows, locks rows or creates objects. */
export function isReadOnlyTree(tree: Node): boolean {
  let ro = true;
  walk(tree, (n) => {
    if (!ro) return false;
    if (n.InsertStmt !== undefined || n.UpdateStmt !== undefined || n.DeleteStmt !== undefined || n.MergeStmt !== undefined) {
      ro = false; // writable CTE
    } else if (n.SelectStmt !== undefined) {
      const sel = n.SelectStmt as Node;
      if (sel.intoClause || (sel.lockingClause && sel.lockingClause.length > 0)) ro = false;
    } else if (n.FuncCall !== undefined) {
      const name = lastName(n.FuncCall.funcname).toLowerCase();
      if (name === 'nextval' || name === 'setval') ro = false;
    }
    return undefined;
  });
  return ro;
}

function readOnlyOption(options: Node[] | undefined): boolean | null {
  for (const o of options ?? []) {
    const d = as(o, 'DefElem');
    if (d && d.defname === 'transaction_read_only') return constText(d.arg) === '1' || /^(true|on)$/i.test(constText(d.arg));
  }
  return null;
}

function constText(n: Node | undefined): string {
  if (!n) return '';
  const c = as(n, 'A_Const');
  if (c) return constValue(c).text;
  const s = as(n, 'String');
  if (s) return String(s.sval ?? '');
  return '';
}

function setInfo(info: StatementInfo, body: Node): StatementInfo {
  const name = String(body.name ?? '').toLowerCase();
  const local = !!body.is_local;
  switch (body.kind as string) {
    case 'VAR_SET_VALUE':
      info.kind = 'set';
      info.set = { name, value: renderSetValue(body.args ?? []), local };
      break;
    case 'VAR_SET_DEFAULT':
      info.kind = 'set';
      info.set = { name, value: null, local };
      break;
    case 'VAR_RESET':
      info.kind = 'reset';
      info.set = { name, value: null, local: false };
      break;
    case 'VAR_RESET_ALL':
      info.kind = 'reset';
      info.set = { name: 'all', value: null, local: false };
      info.shardOverride = { shard: null };
      return info;
    default:
      // SET TRANSACTION …, SET SESSION CHARACTERISTICS …, SET x FROM CURRENT
      info.kind = 'set';
      info.set = { name, value: null, local };
      if (name === 'transaction' || name === 'session characteristics') info.beginReadOnly = readOnlyOption(body.args);
      return info;
  }
  if (name === 'pgshift.shard') {
    if (info.set.value === null) info.shardOverride = { shard: null };
    else {
      const n = Number(info.set.value);
      if (Number.isInteger(n) && n >= 0) info.shardOverride = { shard: n };
    }
  }
  return info;
}

/** Renders SET arguments as SHOW would print them (list values comma separated, identifiers quoted when needed). */
function renderSetValue(args: Node[]): string {
  const parts = args.map((a) => {
    const c = as(a, 'A_Const');
    if (c) return constValue(c).text;
    return '';
  });
  if (parts.length <= 1) return parts[0] ?? '';
  return parts.map((p) => (/^[a-z_][a-z0-9_$]*$/.test(p) || p === '$user' ? p : `"${p.replace(/"/g, '""')}"`)).join(', ');
}

const HINT_RE = /pgshift_shard\s*[:=]\s*(\d+)/i;

/** Finds `pgshift_shard: N` (or `=N`) inside a SQL comment; string literals do not count. */
function commentShardHint(q: ParsedQuery): number | null {
  if (!/pgshift_shard/i.test(q.sql)) return null;
  let tokens;
  try {
    tokens = queryTokens(q);
  } catch {
    // An unterminated literal/comment makes the lexer fail: fall back to a plain text match.
    const m = HINT_RE.exec(q.sql);
    return m ? Number(m[1]) : null;
  }
  for (const t of tokens) {
    if (t.tokenName !== 'C_COMMENT' && t.tokenName !== 'SQL_COMMENT') continue;
    const m = HINT_RE.exec(t.text);
    if (m) return Number(m[1]);
  }
  return null;
}
