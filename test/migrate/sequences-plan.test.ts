/**
 * The pure half of "sequences across shards" (src/migrate/cutover/sequences.ts): the values and settings
 * each destination shard gets, for ascending and descending sequences, increments ≠ 1, bounds,
 * CYCLE, the round trip 1 → N → 1 → M, and the overlap check VERIFY uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSequence, baseSettings, alterSequenceSql, type ShardSequencePlan } from '../../src/migrate/cutover/sequence-plan.js';
import { sequenceProblems, futureValues, firstCommonValue } from '../../src/migrate/cutover/sequence-check.js';
import type { SequenceState } from '../../src/migrate/cutover/sequences.js';

const I8MAX = 2n ** 63n - 1n;
const I8MIN = -(2n ** 63n);

function st(p: Partial<SequenceState> & { last: bigint }): SequenceState {
  return { increment: 1n, min: 1n, max: I8MAX, cycle: false, called: true, columnExtreme: null, ...p };
}

/** The state a shard has right after a plan is applied (RESTART WITH = last, not called). */
function applied(p: ShardSequencePlan): SequenceState {
  return { increment: p.increment, min: p.min, max: p.max, cycle: p.cycle, last: p.restart, called: false, columnExtreme: null };
}

/** The first `n` values nextval() returns on a shard (NO CYCLE stops at the bound). */
function take(p: ShardSequencePlan, n: number): bigint[] {
  const out: bigint[] = [];
  let v = p.restart;
  while (out.length < n) {
    if (v > p.max || v < p.min) {
      if (!p.cycle) break;
      v = p.increment > 0n ? p.min : p.max;
    }
    out.push(v);
    v += p.increment;
  }
  return out;
}

/** No value is handed out by two shards (a CYCLE shard may repeat its own). */
function assertDisjoint(plans: ShardSequencePlan[], n = 200): bigint[] {
  const per = plans.map((p) => new Set(take(p, n).map(String)));
  const all = per.flatMap((s) => [...s]);
  assert.equal(new Set(all).size, all.length, `values repeat across shards: ${plans.map((p) => take(p, 6).join(',')).join(' | ')}`);
  return plans.flatMap((p) => take(p, n));
}

test('1 → 2: shard s restarts at the first value past the maximum that is ≡ s (mod 2), INCREMENT BY 2', () => {
  const p = planSequence([st({ last: 100n })], 2);
  assert.deepEqual(p.shards.map((s) => [s.restart, s.increment, s.min, s.max]), [
    [102n, 2n, 2n, I8MAX - 1n],
    [101n, 2n, 1n, I8MAX],
  ]);
  assertDisjoint(p.shards);
  assert.equal(p.furthest, 100n);
});

test('an id inserted explicitly past the sequence (the column maximum) is passed too, on any shard', () => {
  const p = planSequence([st({ last: 100n, columnExtreme: 5000n }), st({ last: 300n, columnExtreme: 40n })], 3);
  assert.equal(p.furthest, 5000n);
  const all = assertDisjoint(p.shards);
  assert.ok(all.every((v) => v > 5000n));
  for (const [s, plan] of p.shards.entries()) assert.equal(((plan.restart % 3n) + 3n) % 3n, BigInt(s), 'value ≡ shard (mod 3)');
  assert.deepEqual(p.shards.map((s) => s.restart), [5001n, 5002n, 5003n]);
});

test('increment ≠ 1 is multiplied by the shard count; the round trip 1 → 4 → 1 → 3 restores the application\'s increment and bounds', () => {
  const orig = st({ last: 70n, increment: 5n, min: 10n, max: 1_000_000n });
  const four = planSequence([orig], 4);
  assert.ok(four.shards.every((s) => s.increment === 20n));
  const v4 = assertDisjoint(four.shards);
  assert.ok(v4.every((v) => v > 70n));

  // Use the 4 shards a bit, then roll back to one.
  const used4 = four.shards.map((p) => ({ ...applied(p), last: p.restart + 3n * p.increment, called: true }));
  const maxUsed = used4.reduce((a, s) => (s.last > a ? s.last : a), 0n);
  const b = baseSettings(used4);
  assert.equal(b.interleaved, true);
  assert.deepEqual(b.base, { increment: 5n, min: 10n, max: 1_000_000n, cycle: false });
  const one = planSequence(used4, 1);
  assert.deepEqual(one.shards, [{ increment: 5n, min: 10n, max: 1_000_000n, cycle: false, restart: maxUsed + 5n }]);

  // And forward again to 3 shards.
  const three = planSequence([{ ...applied(one.shards[0]), last: one.shards[0].restart + 50n, called: true }], 3);
  assert.ok(three.shards.every((s) => s.increment === 15n));
  assert.ok(assertDisjoint(three.shards).every((v) => v > one.shards[0].restart + 50n));
});

test('N → M: an interleaved source is recognised and re-interleaved, not multiplied again', () => {
  const two = planSequence([st({ last: 10n })], 2).shards.map((p) => ({ ...applied(p), last: p.restart + 100n * p.increment, called: true }));
  const three = planSequence(two, 3);
  assert.ok(three.shards.every((s) => s.increment === 3n), 'INCREMENT BY 3 × 1, not 3 × 2');
  const furthest = two.reduce((a, s) => (s.last > a ? s.last : a), 0n);
  assert.ok(assertDisjoint(three.shards).every((v) => v > furthest));
  assert.deepEqual(baseSettings(three.shards.map(applied)).base, { increment: 1n, min: 1n, max: I8MAX, cycle: false });
});

test('descending sequences go below the minimum used, with residues and bounds of their own', () => {
  const src = [st({ last: -100n, increment: -1n, min: I8MIN, max: -1n, columnExtreme: -150n })];
  const p = planSequence(src, 2);
  assert.equal(p.furthest, -150n);
  assert.deepEqual(p.shards.map((s) => [s.restart, s.increment, s.min, s.max]), [
    [-152n, -2n, I8MIN, -2n],
    [-151n, -2n, I8MIN + 1n, -1n],
  ]);
  assert.ok(assertDisjoint(p.shards).every((v) => v < -150n));
  // Back to one: plain INCREMENT BY -1, original bounds.
  const used = p.shards.map((s) => ({ ...applied(s), last: s.restart - 10n, called: true }));
  assert.deepEqual(planSequence(used, 1).shards, [{ increment: -1n, min: I8MIN, max: -1n, cycle: false, restart: -163n }]);
  // Increment -3 over 4 shards.
  const q = planSequence([st({ last: 0n, increment: -3n, min: -1000n, max: 0n })], 4);
  assert.ok(q.shards.every((s) => s.increment === -12n));
  assert.ok(assertDisjoint(q.shards, 20).every((v) => v < 0n && v >= -1000n));
});

test('bounds: a sequence with no room past the maximum is refused with the fix; a CYCLE one wraps within its own residue', () => {
  assert.throws(() => planSequence([st({ last: 2147483647n, max: 2147483647n })], 2, { name: 'public.t_id_seq' }), (e: Error & { code?: string; hint?: string }) => {
    assert.equal(e.code, '2200H');
    assert.match(e.message, /public\.t_id_seq has no value left past 2147483647/);
    assert.match(e.hint ?? '', /MAXVALUE/);
    return true;
  });
  assert.throws(() => planSequence([st({ last: 5n, max: 5n })], 1), /no value left/);
  // Room for shard 1 but not shard 0.
  assert.throws(() => planSequence([st({ last: 8n, max: 9n })], 2), /shard 0 of 2/);
  // A range smaller than the shard count.
  assert.throws(() => planSequence([st({ last: 1n, min: 1n, max: 2n })], 3), /too small for 3 shards/);

  const c = planSequence([st({ last: 9n, min: 1n, max: 10n, cycle: true })], 2);
  assert.deepEqual(c.shards.map((s) => [s.restart, s.min, s.max]), [[10n, 2n, 10n], [1n, 1n, 9n]], 'shard 1 has nothing past 9: it wraps to its minimum');
  assert.ok(c.warnings.some((w) => /CYCLE/.test(w)));
  // Even after wrapping, the shards never share a value.
  assertDisjoint(c.shards, 50);
  assert.deepEqual(sequenceProblems('s', c.shards.map(applied)), []);
});

test('INCREMENT × shard count must fit in bigint', () => {
  assert.throws(() => planSequence([st({ last: 0n, increment: 2n ** 62n })], 2), /does not fit in bigint/);
});

test('full-copy tables (replicated): every shard gets the same plain sequence', () => {
  const p = planSequence([st({ last: 41n, increment: 2n })], 3, { replicated: true });
  assert.deepEqual(p.shards.map((s) => [s.restart, s.increment]), [[43n, 2n], [43n, 2n], [43n, 2n]]);
  assert.deepEqual(sequenceProblems('s', p.shards.map(applied), true), []);
});

test('check: the pre-fix state (same value everywhere) overlaps; interleaved shards do not; a diverged full-copy sequence and a sequence behind its columns are reported', () => {
  const same = [st({ last: 100n }), st({ last: 100n })];
  assert.deepEqual(sequenceProblems('public.orders_id_seq', same), [
    { sequence: 'public.orders_id_seq', kind: 'overlap', shards: [0, 1], value: '101', detail: 'shards 0 and 1 can both hand out 101' },
  ]);
  // Same residue with different next values still overlaps later on.
  const offByStride = [st({ last: 100n, increment: 2n }), st({ last: 104n, increment: 2n })];
  assert.equal(sequenceProblems('s', offByStride)[0].value, '106');
  // Different strides meeting (CRT): 1 + 3k and 2 + 5k share 7.
  assert.equal(firstCommonValue({ lo: 1n, hi: 100n, m: 3n, res: 1n }, { lo: 2n, hi: 100n, m: 5n, res: 2n }), 7n);
  assert.equal(firstCommonValue({ lo: 1n, hi: 6n, m: 3n, res: 1n }, { lo: 2n, hi: 6n, m: 5n, res: 2n }), null);
  assert.equal(firstCommonValue({ lo: 0n, hi: 100n, m: 4n, res: 0n }, { lo: 0n, hi: 100n, m: 4n, res: 2n }), null);

  const planned = planSequence([st({ last: 100n })], 4).shards.map(applied);
  assert.deepEqual(sequenceProblems('s', planned), []);

  const diverged = sequenceProblems('s', [st({ last: 10n }), st({ last: 12n })], true);
  assert.deepEqual(diverged.map((p) => [p.kind, p.shards]), [['diverged', [0, 1]]]);

  // Interleaved shards used unevenly: shard 1 holds 9001, shard 0 is at 104 — not a problem,
  // 9001 is not a value shard 0 (≡ 0 mod 4) hands out. 9000 held on shard 1 would be.
  const uneven = (x: bigint) => [{ ...planned[0], columnExtreme: 100n }, { ...planned[1], last: x, called: true, columnExtreme: x }, planned[2], planned[3]];
  assert.deepEqual(sequenceProblems('s', uneven(9001n)), []);
  assert.deepEqual(sequenceProblems('s', [{ ...planned[0] }, { ...planned[1], columnExtreme: 9000n }, planned[2], planned[3]]).map((p) => [p.kind, p.shards, p.value]), [
    ['behind', [0, 1], '9000'],
    ['behind', [1], '101'],
  ]);
  // A shard whose own columns hold a value past its next one (an explicit insert).
  assert.deepEqual(sequenceProblems('s', [{ ...planned[0], columnExtreme: 5000n }, planned[1]]).map((p) => [p.kind, p.shards, p.value]), [['behind', [0], '104']]);
  assert.deepEqual(futureValues(st({ last: 10n, max: 10n })), [], 'an exhausted NO CYCLE sequence hands out nothing');
});

test('ALTER SEQUENCE text', () => {
  assert.equal(
    alterSequenceSql('public.orders_id_seq', { increment: 2n, min: 1n, max: 9n, cycle: false, restart: 5n }),
    'ALTER SEQUENCE public.orders_id_seq INCREMENT BY 2 MINVALUE 1 MAXVALUE 9 START WITH 5 RESTART WITH 5 NO CYCLE',
  );
});
