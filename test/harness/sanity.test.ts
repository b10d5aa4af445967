import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from './pg-cluster.js';

test('harness starts a real PostgreSQL with wal_level=logical and removes it afterwards', async () => {
  const pg = await PgCluster.start();
  try {
    const rows = await pg.query<{ wal_level: string }>('SHOW wal_level');
    assert.equal(rows[0].wal_level, 'logical');
  } finally {
    await pg.stop();
  }
});
