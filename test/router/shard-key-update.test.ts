/**
 * Routing of UPDATE … SET <shard key>: a new key that provably stays on the row's shard is a
 * plain single-shard UPDATE; anything else is a row move whose text asks the shard for the row's
 * location, new key and new row before the client's own RETURNING list; the shapes that cannot
 * move correctly are 0A000 errors.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardingSchema, shardOfValue } from '../../src/sharding/index.js';
import { initParser, ParseCache, route, MOVE_COLUMNS } from '../../src/router/index.js';

const cache = new ParseCache();
const parseStatement = (sql: string) => cache.parse(sql);
import type { BoundParam, RouteContext } from '../../src/router/index.js';

const N = 3;
let ctx: RouteContext;
const onShard = (s: number, k = 0): number => {
  const found: number[] = [];
  for (let id = 1; found.length <= k; id++) if (shardOfValue('bigint', String(id), N) === s) found.push(id);
  return found[k];
};
const text = (...vs: string[]): BoundParam[] => vs.map((v) => ({ value: Buffer.from(v), format: 0 }));

before(async () => {
  await initParser();
  const schema = new ShardingSchema('db', [{ database: 'db', name: 'accounts', column: 'tenant_id', data_type: 'bigint' }], [], [], N);
  ctx = { schema, shards: N, roundRobin: 0 };
});

test('a shard-key UPDATE whose new key (constant or parameter) is on the shard the WHERE pins is a plain UPDATE on that shard', () => {
  const a = onShard(1, 0);
  const b = onShard(1, 1);
  const d = route(parseStatement(`update accounts set tenant_id = ${b}, note = 'x' where tenant_id = ${a} and id = 7`), ctx);
  assert.deepEqual(d, { kind: 'shards', shards: [1], merge: { kind: 'none' } });
  const p = route(parseStatement('update accounts set tenant_id = $1::bigint where tenant_id = $2'), ctx, text(String(b), String(a)));
  assert.deepEqual(p, { kind: 'shards', shards: [1], merge: { kind: 'none' } });
});

test('a shard-key UPDATE to another shard, to a computed key, or without a pinning WHERE is a row move on the source shards', () => {
  const a = onShard(0);
  const other = route(parseStatement(`update accounts set tenant_id = ${onShard(2)} where tenant_id = ${a}`), ctx);
  assert.ok(other.kind === 'move', JSON.stringify(other));
  assert.deepEqual(other.shards, [0]);
  assert.equal(other.move.returning, false);
  assert.match(other.move.sql, /\nRETURNING "accounts"\.tableoid, "accounts"\.ctid, "accounts"\."tenant_id", ROW\("accounts"\.\*\)$/);
  const computed = route(parseStatement(`update accounts a set tenant_id = tenant_id + 1 where id = $1 returning a.id, $2::text -- why`), ctx, text('5', 'x'));
  assert.ok(computed.kind === 'move');
  assert.equal(computed.shards, null, 'no key condition: every shard may hold the row');
  assert.equal(computed.move.returning, true);
  assert.equal(computed.move.sql, `update accounts a set tenant_id = tenant_id + 1 where id = $1 returning "a".tableoid, "a".ctid, "a"."tenant_id", ROW("a".*),  a.id, $2::text -- why`);
  assert.equal(MOVE_COLUMNS, 4);
  const multi = route(parseStatement(`update accounts set (note, tenant_id) = ('n', ${a}) where tenant_id = ${a}`), ctx);
  assert.ok(multi.kind === 'move', 'a multi-column assignment is evaluated by the server');
});

test('shard-key UPDATE shapes that cannot move rows correctly are 0A000 errors', () => {
  const cases: Array<[string, RegExp]> = [
    ['with x as (select 1) update accounts set tenant_id = 2', /with a WITH clause/],
    ['update accounts set tenant_id = 2 where current of c', /WHERE CURRENT OF/],
    [`update accounts set tenant_id = 2 where tenant_id = 1; select 1`, /multi-statement query whose statements need results merged/],
  ];
  for (const [sql, re] of cases) {
    const d = route(parseStatement(sql), ctx);
    assert.equal(d.kind, 'error', sql);
    if (d.kind === 'error') {
      assert.match(d.error.message, re, sql);
      assert.equal(d.error.code, '0A000', sql);
    }
  }
});
