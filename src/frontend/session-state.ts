/**
 * The state of one client session, as one value with one transition function (PgBouncer's
 * change_client_state is the model). The pause gate is entered and left only here: a state
 * either holds a transaction open at the gate or does not, and moving between the two kinds is
 * what begins or ends it. SHOW CLIENTS' idle/active/waiting is derived here too.
 */
import type { PauseGate, GateHolder } from './pause-gate.js';
import type { ClientInfo } from './context.js';

export const enum SessionState {
  /** Between transactions: reading the client, no transaction counted at the gate. */
  Idle,
  /** Holding the client's next request while the gate is closed. */
  AtGate,
  /** Past the gate (counted as an open transaction), waiting for a server connection. */
  CheckingOut,
  /** In a transaction: counted at the gate, reading and serving the client. */
  Active,
  /** A transaction ended; pgshift finishes its own work on the server before the next request. */
  Settling,
  Closed,
}

/** States counted as an open transaction at the pause gate. */
export function holdsGate(s: SessionState): boolean {
  return s === SessionState.CheckingOut || s === SessionState.Active || s === SessionState.Settling;
}

/** States in which the client's next messages wait (its socket is not read). */
export function holdsInput(s: SessionState): boolean {
  return s === SessionState.AtGate || s === SessionState.CheckingOut || s === SessionState.Settling;
}

const SHOWN: Record<SessionState, ClientInfo['state']> = {
  [SessionState.Idle]: 'idle',
  [SessionState.AtGate]: 'waiting',
  [SessionState.CheckingOut]: 'waiting',
  [SessionState.Active]: 'active',
  [SessionState.Settling]: 'active',
  [SessionState.Closed]: 'idle',
};

export interface StateOwner extends GateHolder {
  state: SessionState;
  readonly info: ClientInfo;
  readonly gate: PauseGate;
}

/**
 * Moves `o` to `next`: begins the gate's count when entering a gate-holding state, ends it when
 * leaving one, and updates what SHOW CLIENTS shows. Closed is final.
 */
export function changeState(o: StateOwner, next: SessionState): void {
  const prev = o.state;
  if (prev === next || prev === SessionState.Closed) return;
  const held = holdsGate(prev);
  const holds = holdsGate(next);
  o.state = next;
  if (!held && holds) o.gate.begin(o.info.database, o);
  else if (held && !holds) o.gate.end(o.info.database, o);
  o.info.state = SHOWN[next];
}
