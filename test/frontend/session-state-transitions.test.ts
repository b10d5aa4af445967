import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PauseGate } from '../../src/frontend/pause-gate.js';
import { SessionState, changeState, type StateOwner } from '../../src/frontend/session-state.js';
import type { ClientInfo } from '../../src/frontend/context.js';

function owner(gate: PauseGate): StateOwner & { aborted: number } {
  return {
    state: SessionState.Idle,
    info: { database: 'app', state: 'idle' } as ClientInfo,
    gate,
    aborted: 0,
    abortTransaction() {
      this.aborted++;
    },
  };
}

test('the session state is the one place the gate counts a transaction: entered once on the way in, left once on the way out, never twice', () => {
  const gate = new PauseGate(0);
  const o = owner(gate);
  changeState(o, SessionState.AtGate);
  assert.equal(gate.openTransactions('app'), 0, 'waiting at the gate is not an open transaction');
  assert.equal(o.info.state, 'waiting');
  changeState(o, SessionState.CheckingOut);
  assert.equal(gate.openTransactions('app'), 1);
  assert.deepEqual(gate.holdersOf('app'), [o], 'a cutover can end it');
  changeState(o, SessionState.Active);
  changeState(o, SessionState.Settling);
  changeState(o, SessionState.Active);
  assert.equal(gate.openTransactions('app'), 1, 'moving between gate-holding states counts nothing again');
  assert.equal(o.info.state, 'active');
  changeState(o, SessionState.Idle);
  changeState(o, SessionState.Idle);
  assert.equal(gate.openTransactions('app'), 0);
  assert.deepEqual(gate.holdersOf('app'), []);
  assert.equal(o.info.state, 'idle');
});

test('closing a session inside a transaction leaves the gate, and a closed session never enters it again', async () => {
  const gate = new PauseGate(0);
  const o = owner(gate);
  changeState(o, SessionState.Active);
  gate.close('app', 'cutover');
  let quiet = false;
  const q = gate.quiet('app').then(() => (quiet = true));
  changeState(o, SessionState.Closed);
  await q;
  assert.ok(quiet, 'the cutover waiting for quiet is released by the close');
  changeState(o, SessionState.Active);
  assert.equal(o.state, SessionState.Closed);
  assert.equal(gate.openTransactions('app'), 0);
});
