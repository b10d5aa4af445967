/**
 * Parser for the admin database's commands (DESIGN.md §6; names follow PgDog so runbooks carry
 * over). Hand-written rather than libpg-query because most commands are not SQL.
 *
 * Forgiving on form: any case, any whitespace (including newlines), `--` and `/* *\/` comments,
 * optional trailing `;`. Names follow PostgreSQL identifier rules: unquoted names are folded to
 * lower case, double-quoted names keep their case (`""` inside stands for one `"`). Values of SET
 * may also be single-quoted strings.
 *
 * Strict on meaning: every error is a PgError 42601 that says what is wrong and shows the usage
 * of the command concerned (or the list of commands), never a bare "syntax error".
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';

export const SHOW_ITEMS = [
  'pools', 'clients', 'servers', 'stats', 'config', 'version', 'tasks', 'table_copies', 'replication_slots',
  'lists', 'databases', 'users', 'help', 'routing', 'orphans', 'two_phase',
] as const;
export type ShowItem = (typeof SHOW_ITEMS)[number];

export type AdminCommand =
  | { kind: 'show'; what: ShowItem }
  | { kind: 'pause' | 'resume'; database?: string; user?: string }
  | { kind: 'maintenance'; on: boolean; database?: string }
  | { kind: 'reload' }
  | { kind: 'shutdown' }
  | { kind: 'copy_data' | 'replicate' | 'reshard'; source: string; destination: string; publication: string; slot?: string }
  | { kind: 'schema_sync'; phase: 'pre' | 'post' | 'cutover'; source: string; destination: string; publication: string }
  | { kind: 'cutover'; taskId?: number }
  | { kind: 'stop_task'; taskId: number }
  | { kind: 'save_routing' | 'discard_routing' }
  | { kind: 'drop_orphans'; name?: string }
  | { kind: 'verify'; taskId?: number; args: string[] }
  | { kind: 'set'; name: string; value: string }
  | { kind: 'empty' };

export interface AdminHelpEntry {
  command: string;
  syntax: string;
  description: string;
}

/** Every command with its syntax; SHOW HELP returns these rows, and errors quote the syntax. */
export const ADMIN_HELP: readonly AdminHelpEntry[] = [
  { command: 'SHOW', syntax: `SHOW ${SHOW_ITEMS.map((s) => s.toUpperCase()).join(' | ')}`, description: 'list pools, clients, servers, statistics, configuration, tasks, copies, slots …' },
  { command: 'PAUSE', syntax: 'PAUSE [<database> | <user> <database>]', description: 'hold new transactions in the proxy (all databases, or the named ones) until RESUME' },
  { command: 'RESUME', syntax: 'RESUME [<database> | <user> <database>]', description: 'let held transactions run again' },
  { command: 'MAINTENANCE', syntax: 'MAINTENANCE ON | OFF [<database>]', description: 'turn maintenance mode (the pause gate) on or off, globally or for one database' },
  { command: 'RELOAD', syntax: 'RELOAD', description: 're-read the configuration files' },
  { command: 'SHUTDOWN', syntax: 'SHUTDOWN', description: 'stop accepting clients, let transactions finish, then exit' },
  { command: 'COPY_DATA', syntax: 'COPY_DATA <source> <destination> <publication> [<slot>]', description: 'sync schema, copy data, then replicate until CUTOVER or STOP_TASK' },
  { command: 'REPLICATE', syntax: 'REPLICATE <source> <destination> <publication> [<slot>]', description: 'stream changes only (no schema, no copy)' },
  { command: 'RESHARD', syntax: 'RESHARD <source> <destination> <publication> [<slot>]', description: 'schema sync, copy, replication and an automatic cutover' },
  { command: 'SCHEMA_SYNC', syntax: 'SCHEMA_SYNC PRE | POST | CUTOVER <source> <destination> <publication>', description: 'run one phase of the schema sync' },
  { command: 'CUTOVER', syntax: 'CUTOVER [<task_id>]', description: 'move traffic to the destination of a replication task (the first one without an id); on a reverse task, roll back' },
  { command: 'VERIFY', syntax: 'VERIFY [<task_id>] [<table> …] | VERIFY <source> <destination> [<table> …]', description: 'compare source and destination row by row (missing, extra, different, misplaced rows; sequence overlaps)' },
  { command: 'STOP_TASK', syntax: 'STOP_TASK <task_id>', description: 'stop a task and drop its replication slot' },
  { command: 'SAVE_ROUTING', syntax: 'SAVE_ROUTING', description: 'write the routing a cutover put in force (SHOW ROUTING) into the config files' },
  { command: 'DISCARD_ROUTING', syntax: 'DISCARD_ROUTING', description: 'serve the config files\' layout again, dropping a recorded cutover routing (refused while a reverse task exists)' },
  { command: 'DROP_ORPHANS', syntax: 'DROP_ORPHANS [<name>]', description: 'drop the replication slots and origins no task owns (SHOW ORPHANS)' },
  { command: 'SET', syntax: "SET <name> TO | = <value>", description: 'change a setting at run time' },
];

const COMMAND_LIST = ADMIN_HELP.map((h) => h.command).join(', ');

function usage(command: string): string {
  return ADMIN_HELP.find((h) => h.command === command)!.syntax;
}

function syntaxError(message: string): PgError {
  return new PgError(SQLSTATE.syntaxError, message);
}

interface Token {
  /** Keyword/identifier text: folded to lower case unless quoted. */
  text: string;
  /** As written (for messages). */
  raw: string;
  quoted: boolean;
}

function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) throw syntaxError('unterminated /* comment in admin command');
      i = end + 2;
    } else if (c === ';') {
      // A ';' may only be followed by more ';', whitespace or comments: one command per query.
      const rest = tokenize(sql.slice(i + 1));
      if (rest.length > 0) {
        throw syntaxError(`the admin database runs one command per query; found "${rest[0].raw}" after ";"`);
      }
      return out;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let text = '';
      for (;;) {
        if (j >= n) throw syntaxError(`unterminated ${c === '"' ? 'quoted identifier' : 'string'} starting at ${sql.slice(i, i + 20)}`);
        if (sql[j] === c) {
          if (sql[j + 1] === c) {
            text += c;
            j += 2;
            continue;
          }
          break;
        }
        text += sql[j++];
      }
      if (c === '"' && text === '') throw syntaxError('zero-length quoted identifier ""');
      out.push({ text, raw: sql.slice(i, j + 1), quoted: true });
      i = j + 1;
    } else if (c === '=') {
      out.push({ text: '=', raw: '=', quoted: false });
      i++;
    } else {
      let j = i;
      while (j < n && !/[\s;"'=]/.test(sql[j])) j++;
      const raw = sql.slice(i, j);
      out.push({ text: raw.toLowerCase(), raw, quoted: false });
      i = j;
    }
  }
  return out;
}

/** The keyword at position i (undefined when missing or quoted). */
function keyword(tokens: Token[], i: number): string | undefined {
  const t = tokens[i];
  return t && !t.quoted ? t.text : undefined;
}

function taskId(tok: Token, command: string): number {
  if (tok.quoted || !/^[0-9]+$/.test(tok.text) || !Number.isSafeInteger(Number(tok.text))) {
    throw syntaxError(`task id must be a non-negative integer, got ${tok.raw}; usage: ${usage(command)}`);
  }
  return Number(tok.text);
}

function expectCount(tokens: Token[], min: number, max: number, command: string, what: string): void {
  const args = tokens.length - 1;
  if (args < min) throw syntaxError(`${command} needs ${what}; usage: ${usage(command)}`);
  if (args > max) {
    throw syntaxError(`${command} got too many arguments (unexpected ${tokens[max + 1].raw}); usage: ${usage(command)}`);
  }
}

/** Parses one admin command; throws PgError 42601 with the command's usage on any mistake. */
export function parseAdminCommand(sql: string): AdminCommand {
  const tokens = tokenize(sql);
  if (tokens.length === 0) return { kind: 'empty' };
  const head = tokens[0].quoted ? '' : tokens[0].text;
  const stray = tokens.findIndex((t, i) => !t.quoted && t.text === '=' && !(head === 'set' && i === 2));
  if (stray >= 0 && ADMIN_HELP.some((h) => h.command === head.toUpperCase())) {
    throw syntaxError(`unexpected "=" in ${head.toUpperCase()}; usage: ${usage(head.toUpperCase())}`);
  }
  switch (head) {
    case 'show': {
      const item = keyword(tokens, 1);
      const list = SHOW_ITEMS.map((s) => s.toUpperCase()).join(', ');
      if (tokens.length < 2) throw syntaxError(`SHOW needs what to show: ${list}; usage: ${usage('SHOW')}`);
      if (!item || !(SHOW_ITEMS as readonly string[]).includes(item)) {
        throw syntaxError(`unknown SHOW item ${tokens[1].raw}; valid items: ${list}`);
      }
      expectCount(tokens, 1, 1, 'SHOW', 'what to show');
      return { kind: 'show', what: item as ShowItem };
    }
    case 'help':
      if (tokens.length > 1) throw syntaxError(`HELP takes no arguments, got ${tokens[1].raw}; usage: SHOW HELP`);
      return { kind: 'show', what: 'help' };
    case 'pause':
    case 'resume': {
      const command = head.toUpperCase();
      expectCount(tokens, 0, 2, command, '');
      if (tokens.length === 1) return { kind: head };
      if (tokens.length === 2) return { kind: head, database: tokens[1].text };
      return { kind: head, user: tokens[1].text, database: tokens[2].text };
    }
    case 'maintenance': {
      const mode = keyword(tokens, 1);
      if (tokens.length < 2) throw syntaxError(`MAINTENANCE needs ON or OFF; usage: ${usage('MAINTENANCE')}`);
      if (mode !== 'on' && mode !== 'off') throw syntaxError(`MAINTENANCE takes ON or OFF, got ${tokens[1].raw}; usage: ${usage('MAINTENANCE')}`);
      expectCount(tokens, 1, 2, 'MAINTENANCE', '');
      return tokens.length === 3 ? { kind: 'maintenance', on: mode === 'on', database: tokens[2].text } : { kind: 'maintenance', on: mode === 'on' };
    }
    case 'reload':
    case 'shutdown':
      expectCount(tokens, 0, 0, head.toUpperCase(), '');
      return { kind: head };
    case 'copy_data':
    case 'replicate':
    case 'reshard': {
      const command = head.toUpperCase();
      expectCount(tokens, 3, 4, command, 'a source database, a destination database and a publication');
      const cmd: AdminCommand = { kind: head, source: tokens[1].text, destination: tokens[2].text, publication: tokens[3].text };
      if (tokens.length === 5) cmd.slot = tokens[4].text;
      return cmd;
    }
    case 'schema_sync': {
      const phase = keyword(tokens, 1);
      if (tokens.length < 2) throw syntaxError(`SCHEMA_SYNC needs a phase (PRE, POST or CUTOVER); usage: ${usage('SCHEMA_SYNC')}`);
      if (phase !== 'pre' && phase !== 'post' && phase !== 'cutover') {
        throw syntaxError(`SCHEMA_SYNC phase must be PRE, POST or CUTOVER, got ${tokens[1].raw}; usage: ${usage('SCHEMA_SYNC')}`);
      }
      expectCount(tokens, 4, 4, 'SCHEMA_SYNC', 'a phase, a source database, a destination database and a publication');
      return { kind: 'schema_sync', phase, source: tokens[2].text, destination: tokens[3].text, publication: tokens[4].text };
    }
    case 'cutover':
      expectCount(tokens, 0, 1, 'CUTOVER', '');
      return tokens.length === 2 ? { kind: 'cutover', taskId: taskId(tokens[1], 'CUTOVER') } : { kind: 'cutover' };
    case 'stop_task':
      expectCount(tokens, 1, 1, 'STOP_TASK', 'the id of the task to stop (see SHOW TASKS)');
      return { kind: 'stop_task', taskId: taskId(tokens[1], 'STOP_TASK') };
    case 'save_routing':
    case 'discard_routing':
      expectCount(tokens, 0, 0, head.toUpperCase(), '');
      return { kind: head };
    case 'drop_orphans':
      expectCount(tokens, 0, 1, 'DROP_ORPHANS', '');
      return tokens.length === 2 ? { kind: 'drop_orphans', name: tokens[1].text } : { kind: 'drop_orphans' };
    case 'verify': {
      const rest = tokens.slice(1);
      if (rest.length > 0 && !rest[0].quoted && /^[0-9]+$/.test(rest[0].text)) return { kind: 'verify', taskId: taskId(rest[0], 'VERIFY'), args: rest.slice(1).map((t) => t.text) };
      return { kind: 'verify', args: rest.map((t) => t.text) };
    }
    case 'set': {
      // SET name TO value | SET name = value | SET name value
      if (tokens.length < 2) throw syntaxError(`SET needs a setting name and a value; usage: ${usage('SET')}`);
      let i = 2;
      if (keyword(tokens, 2) === 'to' || keyword(tokens, 2) === '=') i = 3;
      if (tokens[1].text === '=' && !tokens[1].quoted) throw syntaxError(`SET needs a setting name before "="; usage: ${usage('SET')}`);
      if (i >= tokens.length) throw syntaxError(`SET ${tokens[1].raw} needs a value; usage: ${usage('SET')}`);
      if (tokens.length > i + 1) {
        throw syntaxError(`SET takes one value (quote values that contain spaces), unexpected ${tokens[i + 1].raw}; usage: ${usage('SET')}`);
      }
      return { kind: 'set', name: tokens[1].text, value: tokens[i].text };
    }
    default:
      throw syntaxError(`unknown admin command ${tokens[0].raw}; valid commands: ${COMMAND_LIST} (SHOW HELP shows their syntax)`);
  }
}

/** The CommandComplete tag for a command (PgDog uses the command's name). */
export function adminCommandTag(cmd: AdminCommand): string {
  return cmd.kind === 'empty' ? '' : cmd.kind.toUpperCase();
}
