// The two real drivers the workload uses through pgshift, behind one small interface:
// node-postgres (extended protocol, untyped text parameters) and postgres.js (one connection,
// `unsafe` with parameters, explicit casts since it types its parameters itself).
import pg from 'pg';
import postgres from 'postgres';

export type Row = Record<string, unknown>;

export interface Conn {
  readonly driver: 'node-postgres' | 'postgres.js';
  /** postgres.js serializes parameters by the server's inferred type: cast text explicitly. */
  readonly castParams: boolean;
  query(sql: string, params?: (string | null)[]): Promise<Row[]>;
  close(): Promise<void>;
}

export interface Endpoint {
  port: number;
  database: string;
  user: string;
  password: string;
}

export async function connect(driver: Conn['driver'], e: Endpoint): Promise<Conn> {
  if (driver === 'node-postgres') {
    const c = new pg.Client({ host: '127.0.0.1', port: e.port, user: e.user, password: e.password, database: e.database, connectionTimeoutMillis: 5000 });
    c.on('error', () => undefined); // a lost connection surfaces as the failed query's error
    await c.connect();
    return {
      driver,
      castParams: false,
      async query(sql, params = []) {
        return (await c.query(sql, params)).rows as Row[];
      },
      async close() {
        await c.end().catch(() => undefined);
      },
    };
  }
  // postgres.js reconnects by itself: after its connection died between two statements of a
  // transaction (pgshift killed), the next statement would run on a new connection, outside the
  // transaction, and the final COMMIT would "succeed" with no transaction in progress, so the
  // ledger would count rolled-back writes as acknowledged. A Conn is one session: once its
  // connection closed, every query fails as a lost connection, like node-postgres.
  let lost = false;
  const s = postgres({
    host: '127.0.0.1', port: e.port, user: e.user, password: e.password, database: e.database,
    max: 1, prepare: false, onnotice: () => undefined, connect_timeout: 5, idle_timeout: 0, max_lifetime: null,
    onclose: () => {
      lost = true;
    },
  });
  await s.unsafe('SELECT 1');
  return {
    driver,
    castParams: true,
    async query(sql, params = []) {
      if (lost) throw sessionEnded();
      const rows = [...(await s.unsafe(sql, params as string[]))] as Row[];
      // Closed while this ran: postgres.js may have run it on a new connection (queued, then
      // resent); its effect is unknown, as for any statement cut by a lost connection.
      if (lost) throw sessionEnded();
      return rows;
    },
    async close() {
      await s.end({ timeout: 1 }).catch(() => undefined);
    },
  };
}

function sessionEnded(): Error {
  return Object.assign(new Error('write CONNECTION_CLOSED: the session ended (postgres.js would go on outside the transaction on a new connection)'), { code: 'CONNECTION_CLOSED' });
}

const LOST = /terminat|ECONNRESET|ECONNREFUSED|EPIPE|socket|CONNECTION_(CLOSED|ENDED|DESTROYED)|Connection terminated|not queryable|write after end|closed|timeout expired|CONNECT_TIMEOUT/i;

/** The connection died (the answer to the last statement is unknown), as opposed to a SQL error. */
export function connectionLost(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string' && /^(08|57P0)/.test(e.code)) return true;
  return LOST.test(e?.message ?? '') || (typeof e?.code === 'string' && LOST.test(e.code));
}

export function sqlState(err: unknown): string | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c) ? c : undefined;
}
