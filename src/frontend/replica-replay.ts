/**
 * A read sent to a replica by the direct binding may run again, once, on another server if the
 * replica dies before the client saw any of its answer: reads on a replica change nothing. This
 * keeps the one simple Query of such a transaction and holds its RowDescription back until the
 * first row, so "before the client saw any of it" stays true as long as possible.
 */
import { F } from '../wire/protocol.js';
import { SQLSTATE, type PgError } from '../wire/pg-error.js';

export class ReplicaReplay {
  /** The request being served may still be replayed. */
  armed = false;
  private query: Buffer | null = null;
  private heldRowDescription: Buffer | null = null;
  /** The request being served is such a rerun (it is not rerun twice). */
  private replayed = false;

  /** A server was attached for a transaction; reads on a replica are replayable. */
  attached(readOnly: boolean, onReplica: boolean): void {
    this.armed = readOnly && !this.replayed && onReplica;
    this.query = null;
    this.replayed = false;
  }

  /** The client's message of type `t` (whole message `message()`) goes to the server. */
  forwarding(t: number, message: () => Buffer): void {
    if (t !== F.Query) {
      this.armed = false;
      return;
    }
    // One read, unanswered so far: kept so it can run elsewhere if the replica dies.
    if (this.query) this.armed = false;
    else this.query = message();
  }

  /** A server message the client would see: true to hold it back (a RowDescription before any row). */
  hold(isRowDescription: boolean, message: () => Buffer): boolean {
    if (isRowDescription && !this.heldRowDescription) {
      this.heldRowDescription = message();
      return true;
    }
    this.armed = false; // the client sees the answer from here on
    return false;
  }

  /** The RowDescription held back, to send before the message that ended the hold. */
  takeHeld(): Buffer | null {
    const m = this.heldRowDescription;
    this.heldRowDescription = null;
    return m;
  }

  /** The server went away: the query to run again, or null (not after query_timeout closed it). */
  takeQuery(reported: PgError): Buffer | null {
    const q = this.armed && reported.code !== SQLSTATE.queryCanceled ? this.query : null;
    this.armed = false;
    this.query = null;
    if (q) this.replayed = true;
    return q;
  }

  reset(): void {
    this.armed = false;
    this.query = null;
    this.heldRowDescription = null;
  }
}
