// The randomized test's client wrappers: a session whose connection died between two statements
// of a transaction must fail the next statement as a lost connection, so the ledger counts the
// transaction as uncertain instead of acknowledged (postgres.js alone reconnects silently and
// runs the rest outside the transaction: the seed 1 "acknowledged row missing on both sides").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster, SUPERUSER, SUPERUSER_PASSWORD } from '../../harness/pg-cluster.js';
import { connect, connectionLost, type Conn } from './clients.js';

let pgc: PgCluster;

before(async () => {
  pgc = await PgCluster.start();
  await pgc.query(`CREATE TABLE audit_log (tag text, note text)`);
});

after(async () => {
  await pgc?.stop();
});

for (const driver of ['postgres.js', 'node-postgres'] as const) {
  test(`${driver}: a connection terminated between two statements of a transaction fails the next statement as a lost connection, and the transaction's earlier write is not there`, async () => {
    const c: Conn = await connect(driver, { port: pgc.port, database: 'postgres', user: SUPERUSER, password: SUPERUSER_PASSWORD });
    try {
      await c.query('BEGIN');
      const [{ pid }] = await c.query('SELECT pg_backend_pid() AS pid');
      await c.query(`INSERT INTO audit_log VALUES ($1, 'before the kill')`, [`${driver}-1`]);
      await pgc.query('SELECT pg_terminate_backend($1)', [pid]);
      // Let the client see the connection close before it sends the next statement.
      await new Promise((r) => setTimeout(r, 300));
      const err = await c.query(`INSERT INTO audit_log VALUES ($1, 'after the kill')`, [`${driver}-2`]).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err, 'the statement after the kill must fail, not run on a new connection outside the transaction');
      assert.ok(connectionLost(err), `classified as a lost connection: ${(err as Error).message}`);
      const rows = await pgc.query<{ tag: string }>(`SELECT tag FROM audit_log WHERE tag LIKE $1`, [`${driver}-%`]);
      assert.deepEqual(rows, [], 'nothing of the cut transaction is committed');
    } finally {
      await c.close();
    }
  });
}
