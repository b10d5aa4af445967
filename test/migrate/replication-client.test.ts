import { test } from 'node:test';
import assert from 'node:assert/strict';
import { protoVersionFor, serverMajorVersion, startReplicationSql } from '../../src/migrate/replicate/replication-client.js';
import { pgTimestampText } from '../../src/migrate/replicate/origin.js';
import { dateToPgTimestamp } from '../../src/wire/pgoutput.js';

test('pgoutput protocol version follows the source major version: 14 → 2, 15 → 3, 16+ → 4, older → 1', () => {
  assert.deepEqual([13, 14, 15, 16, 17].map(protoVersionFor), [1, 2, 3, 4, 4]);
  assert.equal(serverMajorVersion('15.6 (Debian 15.6-1.pgdg120+2)'), 15);
  assert.equal(serverMajorVersion('16beta1'), 16);
  assert.equal(serverMajorVersion('9.6.24'), 0);
  assert.equal(serverMajorVersion(undefined), 0);
});

test('START_REPLICATION quotes the slot and publication and enables streaming only from protocol 2', () => {
  assert.equal(
    startReplicationSql({ slot: 'my "slot"', publication: "it's", startLsn: 0x16b374d848n, protoVersion: 3, binary: true }),
    `START_REPLICATION SLOT "my ""slot""" LOGICAL 16/B374D848 (proto_version '3', publication_names '"it''s"', messages 'true', streaming 'on', binary 'true')`,
  );
  assert.equal(
    startReplicationSql({ slot: 's', publication: 'p', startLsn: 0n, protoVersion: 1, binary: false }),
    `START_REPLICATION SLOT "s" LOGICAL 0/0 (proto_version '1', publication_names '"p"', messages 'true')`,
  );
});

test('commit timestamps recorded with the origin keep their microseconds', () => {
  const t = dateToPgTimestamp(new Date('2024-02-29T23:59:59.123Z')) + 456n;
  assert.equal(pgTimestampText(t), '2024-02-29T23:59:59.123456+00');
  assert.equal(pgTimestampText(-1n), '1999-12-31T23:59:59.999999+00');
});
