/**
 * Test harness: throwaway PostgreSQL servers (see src/cli/local-postgres.ts) plus node-postgres
 * helpers for tests.
 */
import pg from 'pg';
import { LocalPostgres, SUPERUSER, SUPERUSER_PASSWORD } from '../../src/cli/local-postgres.js';

export { freePort, pgBinDir, SUPERUSER, SUPERUSER_PASSWORD } from '../../src/cli/local-postgres.js';
export type { ClusterOptions } from '../../src/cli/local-postgres.js';

export class PgCluster extends LocalPostgres {
  /** Connection settings for node-postgres. */
  config(database = 'postgres', user = SUPERUSER, password = SUPERUSER_PASSWORD): pg.ClientConfig {
    return { host: this.host, port: this.port, database, user, password };
  }

  url(database = 'postgres', user = SUPERUSER, password = SUPERUSER_PASSWORD): string {
    return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${this.host}:${this.port}/${database}`;
  }

  async client(database = 'postgres', user = SUPERUSER, password = SUPERUSER_PASSWORD): Promise<pg.Client> {
    const c = new pg.Client(this.config(database, user, password));
    await c.connect();
    return c;
  }

  /** Runs SQL as the superuser and returns the rows. */
  async query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> {
    const c = await this.client(database);
    try {
      const r = await c.query(sql, params);
      return r.rows as T[];
    } finally {
      await c.end();
    }
  }

  async createDatabase(name: string): Promise<void> {
    await this.query(`CREATE DATABASE "${name}"`);
  }

  /** Creates a login role whose password is stored as SCRAM or md5. */
  async createUser(name: string, password: string, method: 'scram-sha-256' | 'md5' = 'scram-sha-256', superuser = false): Promise<void> {
    const c = await this.client();
    try {
      await c.query(`SET password_encryption = '${method}'`);
      await c.query(`CREATE ROLE "${name}" LOGIN ${superuser ? 'SUPERUSER' : ''} PASSWORD '${password.replace(/'/g, "''")}'`);
    } finally {
      await c.end();
    }
  }
}
