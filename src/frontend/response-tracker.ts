/**
 * Tracks what a server owes the client for the messages forwarded so far, so pgshift can drop
 * responses to messages it added (a Parse it injected) and insert responses to messages it
 * answered itself (a Parse the server already had, a Close), each at the exact position the
 * client expects. Server responses arrive in request order, which makes a FIFO enough.
 */
import { B } from '../wire/protocol.js';

export const enum Pending {
  Parse,
  Bind,
  Describe,
  Execute,
  Close,
  Sync,
  Query,
  Synthetic,
}

export interface PendingEntry {
  kind: Pending;
  /** Do not forward this message's response (pgshift sent the message, not the client). */
  swallow: boolean;
  /** For Parse: the server-side statement name, forgotten if the Parse fails. */
  statement?: string;
  /** For Synthetic: the bytes to give the client when the entry reaches the head. */
  message?: Buffer;
}

/** Told about the outcome of Parse messages pgshift forwarded for named statements. */
export interface ParseObserver {
  parseSucceeded(statement: string): void;
  parseFailed(statement: string): void;
}

/** What to do with one server message. */
export const enum Verdict {
  Forward,
  Drop,
}

export class ResponseTracker {
  private q: PendingEntry[] = [];
  private head = 0;

  get empty(): boolean {
    return this.head >= this.q.length;
  }

  get length(): number {
    return this.q.length - this.head;
  }

  push(kind: Pending, swallow = false, statement?: string): void {
    this.q.push({ kind, swallow, statement });
  }

  pushSynthetic(message: Buffer): void {
    this.q.push({ kind: Pending.Synthetic, swallow: false, message });
  }

  clear(): void {
    this.q.length = 0;
    this.head = 0;
  }

  private shift(): PendingEntry | undefined {
    const e = this.q[this.head++];
    if (this.head >= this.q.length) {
      this.q.length = 0;
      this.head = 0;
    } else if (this.head > 64) {
      this.q.splice(0, this.head);
      this.head = 0;
    }
    return e;
  }

  private peek(): PendingEntry | undefined {
    return this.q[this.head];
  }

  /** Synthetic messages now at the head (nothing earlier is outstanding); removes them. */
  takeReady(out: Buffer[]): void {
    let e = this.peek();
    while (e && e.kind === Pending.Synthetic) {
      out.push(e.message!);
      this.shift();
      e = this.peek();
    }
  }

  /**
   * Accounts for one server message of `type`. The observer learns which named statements were
   * prepared or failed, so the server connection only claims statements it really has.
   */
  onServerMessage(type: number, observer: ParseObserver): Verdict {
    const e = this.peek();
    if (!e) return Verdict.Forward;
    switch (type) {
      case B.ParseComplete:
        if (e.kind === Pending.Parse) {
          this.shift();
          if (e.statement) observer.parseSucceeded(e.statement);
          return e.swallow ? Verdict.Drop : Verdict.Forward;
        }
        return Verdict.Forward;
      case B.BindComplete:
        if (e.kind === Pending.Bind) this.shift();
        return Verdict.Forward;
      case B.CloseComplete:
        if (e.kind === Pending.Close) this.shift();
        return Verdict.Forward;
      case B.NoData:
      case B.RowDescription:
        if (e.kind === Pending.Describe) this.shift();
        return Verdict.Forward;
      case B.CommandComplete:
      case B.EmptyQueryResponse:
      case B.PortalSuspended:
        if (e.kind === Pending.Execute) this.shift();
        return Verdict.Forward;
      case B.ReadyForQuery:
        // Sync or simple Query done; anything still before it was skipped by the server.
        while (!this.empty) {
          const x = this.shift()!;
          if (x.kind === Pending.Sync || x.kind === Pending.Query) break;
        }
        return Verdict.Forward;
      case B.ErrorResponse: {
        if (e.kind === Pending.Query) return Verdict.Forward;
        // The server skips every message up to the next Sync: drop their entries (synthetic
        // responses too, since PostgreSQL would not have sent them either).
        while (!this.empty) {
          const x = this.peek()!;
          if (x.kind === Pending.Sync || x.kind === Pending.Query) break;
          if (x.kind === Pending.Parse && x.statement) observer.parseFailed(x.statement);
          this.shift();
        }
        return Verdict.Forward;
      }
      default:
        return Verdict.Forward;
    }
  }
}
