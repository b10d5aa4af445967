/**
 * Prepared statements under transaction pooling. A client's named statement may run on any
 * server connection, so each distinct (query, parameter types) gets one global server-side name
 * (`pgshift_<n>`). A client's names map to those; a server connection remembers which global
 * names it has prepared, and pgshift prepares them on demand before a Bind or Describe.
 */
import * as fe from '../wire/frontend-messages.js';

export interface GlobalStatement {
  serverName: string;
  query: string;
  paramTypes: number[];
  /** The Parse message to send to a server that lacks this statement. */
  parseMessage: Buffer;
  /** A server accepted this Parse once, so a client's Parse of it can be answered without a server. */
  verified: boolean;
}

export class StatementRegistry {
  private byKey = new Map<string, GlobalStatement>();
  private byName = new Map<string, GlobalStatement>();
  private next = 1;

  intern(query: string, paramTypes: number[]): GlobalStatement {
    const key = paramTypes.length ? `${paramTypes.join(',')}|${query}` : query;
    let s = this.byKey.get(key);
    if (!s) {
      const serverName = `pgshift_${this.next++}`;
      s = { serverName, query, paramTypes, parseMessage: fe.parse(serverName, query, paramTypes), verified: false };
      this.byKey.set(key, s);
      this.byName.set(serverName, s);
    }
    return s;
  }

  get size(): number {
    return this.byKey.size;
  }

  markVerified(serverName: string): void {
    const s = this.byName.get(serverName);
    if (s) s.verified = true;
  }

  /** The global statement a client's Parse would define, if it is already known to be valid. */
  verified(query: string, paramTypes: number[]): GlobalStatement | undefined {
    const s = this.byKey.get(paramTypes.length ? `${paramTypes.join(',')}|${query}` : query);
    return s?.verified ? s : undefined;
  }
}

/** One client's statement names → global statements. */
export class ClientStatements {
  private map = new Map<string, GlobalStatement>();
  constructor(private readonly registry: StatementRegistry) {}

  define(name: string, query: string, paramTypes: number[]): GlobalStatement {
    const s = this.registry.intern(query, paramTypes);
    this.map.set(name, s);
    return s;
  }

  /**
   * Defines `name` without a server when the statement is known to be valid. This keeps a
   * client that prepares synchronously outside a transaction (pgbench -M prepared) from waiting
   * for a server that another of its connections holds.
   */
  defineVerified(name: string, query: string, paramTypes: number[]): boolean {
    const s = this.registry.verified(query, paramTypes);
    if (s) this.map.set(name, s);
    return s !== undefined;
  }
  get(name: string): GlobalStatement | undefined {
    return this.map.get(name);
  }
  close(name: string): void {
    this.map.delete(name);
  }
  clear(): void {
    this.map.clear();
  }

  /** The client's names with their query text and parameter types. */
  toMap(): Map<string, { query: string; paramTypes: number[] }> {
    return new Map([...this.map].map(([k, g]) => [k, { query: g.query, paramTypes: g.paramTypes }]));
  }
  get size(): number {
    return this.map.size;
  }
}
