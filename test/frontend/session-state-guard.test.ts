/**
 * Which SQL leaves session state on a pooled server connection, as the guard classifies it
 * from PostgreSQL's grammar: parameters that follow the client, features that pin it, and
 * look-alikes that leave nothing.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, ParseCache } from '../../src/router/index.js';
import { sessionEffect, mayLeaveSessionState, shardedSessionRefusal, SessionStateGuard } from '../../src/frontend/session-state-guard.js';
import * as fe from '../../src/wire/frontend-messages.js';

before(() => initParser());

const cache = new ParseCache();

test('set_config with a constant name and is_local false (or not a constant) is a parameter to read back', () => {
  assert.deepEqual(sessionEffect("SELECT set_config('Search_Path', 'pg_catalog', false)", cache), { params: ['search_path'], pin: null });
  assert.deepEqual(sessionEffect("SELECT 1; SELECT pg_catalog.SET_CONFIG('statement_timeout', '5s', $1)", cache).params, ['statement_timeout']);
  assert.deepEqual(sessionEffect("WITH x AS (SELECT set_config('work_mem', '64MB', 'off')) SELECT * FROM x", cache).params, ['work_mem']);
  assert.deepEqual(sessionEffect("SELECT set_config('work_mem', '64MB', true)", cache), { params: [], pin: null });
});

test('SQL that leaves state beyond parameters pins the client; session-free look-alikes do not', () => {
  const pins: [string, RegExp][] = [
    ['PREPARE p AS SELECT 1', /PREPARE/],
    ['listen "Order Events"', /LISTEN/],
    ['CREATE TEMP TABLE t (id bigint)', /temporary/],
    ['CREATE TABLE pg_temp.t (id bigint)', /temporary/],
    ['SELECT 1 AS id INTO TEMPORARY t', /temporary/],
    ['CREATE TEMP VIEW v AS SELECT 1', /temporary/],
    ['SELECT pg_try_advisory_lock_shared(1, 2)', /advisory/],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', /WITH HOLD/],
    ['SET ROLE reporting', /ROLE/],
    ['SET SESSION AUTHORIZATION reporting', /AUTHORIZATION/],
    ["SELECT set_config('role', 'reporting', false)", /role/],
    ['SELECT set_config($1, $2, false)', /not a constant/],
    ["LOAD 'auto_explain'", /LOAD/],
    ["DO $$BEGIN PERFORM pg_advisory_lock(1); END$$", /DO block/],
  ];
  for (const [sql, why] of pins) assert.match(sessionEffect(sql, cache).pin ?? '', why, sql);
  for (const sql of [
    'CREATE TEMP TABLE t (id bigint) ON COMMIT DROP',
    'SELECT pg_advisory_xact_lock(1)',
    'DECLARE c CURSOR FOR SELECT 1',
    'SET LOCAL ROLE reporting',
    'SELECT temperature, role_name, payload FROM readings',
    'UNLISTEN *',
  ]) {
    assert.deepEqual(sessionEffect(sql, cache), { params: [], pin: null }, sql);
  }
});

test('the byte pre-filter finds every needle in any case and skips ordinary queries', () => {
  const body = (sql: string) => fe.query(sql).subarray(5);
  assert.equal(mayLeaveSessionState(body("select Set_Config('a', 'b', false)")), true);
  assert.equal(mayLeaveSessionState(body('LiStEn x')), true);
  assert.equal(mayLeaveSessionState(body('SELECT id, note FROM orders WHERE id = $1')), false);
  // A Parse body: the name comes first, the query after it.
  const parse = fe.parse('s1', 'SELECT pg_advisory_lock(1)', []).subarray(5);
  assert.equal(mayLeaveSessionState(parse, parse.indexOf(0) + 1), true);
});

test('ParameterStatus: reported parameters are read back, a change of authorization pins', () => {
  const g = new SessionStateGuard(cache);
  assert.equal(g.noteParameterStatus('TimeZone'), 'timezone');
  assert.equal(g.noteParameterStatus('server_version'), null);
  assert.equal(g.pinned, null);
  assert.equal(g.noteParameterStatus('session_authorization'), null);
  assert.match(g.pinned ?? '', /authorization/);
});

test('the sharded loop refuses what it cannot pin or track, with 0A000 and a hint', () => {
  const e = shardedSessionRefusal('LISTEN x', cache);
  assert.equal(e?.code, '0A000');
  assert.match(e!.message, /LISTEN is not supported on a sharded database/);
  assert.match(shardedSessionRefusal("SELECT set_config('search_path', 'a', false)", cache)!.hint ?? '', /use SET/);
  assert.equal(shardedSessionRefusal('SELECT 1', cache), null);
});
