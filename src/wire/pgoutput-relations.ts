/**
 * pgoutput sends a Relation message (and Type messages for non-built-in types) before the first
 * change to a table in a session and again whenever its definition changes; changes then only
 * carry the relation oid. This cache keeps the latest definition per oid and resolves changes.
 */
import { PgError, SQLSTATE } from './pg-error.js';
import type {
  PgOutputMessage,
  RelationColumn,
  RelationMessage,
  ReplicaIdentity,
  RowChangeMessage,
  TruncateMessage,
  TypeMessage,
} from './pgoutput-types.js';

export interface RelationInfo {
  oid: number;
  namespace: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
  /** Indices of the replica-identity columns, in column order. */
  keyColumns: number[];
}

export interface TypeInfo {
  oid: number;
  namespace: string;
  name: string;
}

export class RelationCache {
  private readonly relations = new Map<number, RelationInfo>();
  private readonly types = new Map<number, TypeInfo>();

  /** Records Relation and Type messages; ignores every other message. Returns true if recorded. */
  observe(msg: PgOutputMessage): boolean {
    if (msg.type === 'relation') {
      this.setRelation(msg);
      return true;
    }
    if (msg.type === 'type') {
      this.setType(msg);
      return true;
    }
    return false;
  }

  setRelation(msg: RelationMessage): RelationInfo {
    const keyColumns: number[] = [];
    for (let i = 0; i < msg.columns.length; i++) if (msg.columns[i].isKey) keyColumns.push(i);
    const info: RelationInfo = {
      oid: msg.oid,
      namespace: msg.namespace,
      name: msg.name,
      replicaIdentity: msg.replicaIdentity,
      columns: msg.columns,
      keyColumns,
    };
    this.relations.set(msg.oid, info);
    return info;
  }

  setType(msg: TypeMessage): void {
    this.types.set(msg.oid, { oid: msg.oid, namespace: msg.namespace, name: msg.name });
  }

  get(oid: number): RelationInfo | undefined {
    return this.relations.get(oid);
  }

  /** The relation for an oid; a change for a relation never described is a protocol violation. */
  require(oid: number, context = 'change'): RelationInfo {
    const rel = this.relations.get(oid);
    if (rel === undefined) {
      throw new PgError(
        SQLSTATE.protocolViolation,
        `pgoutput ${context} refers to relation oid ${oid}, but no Relation message for it was received in this session`,
      );
    }
    return rel;
  }

  /**
   * The relation of an Insert/Update/Delete, checking that every tuple has exactly the relation's
   * column count (a mismatch means the stream and the cache disagree about the table's shape).
   */
  resolve(msg: RowChangeMessage): RelationInfo {
    const rel = this.require(msg.relationId, msg.type);
    const n = rel.columns.length;
    const check = (count: number, which: string) => {
      if (count !== n) {
        throw new PgError(
          SQLSTATE.protocolViolation,
          `pgoutput ${msg.type} ${which} tuple for ${rel.namespace}.${rel.name} has ${count} columns, but its Relation message has ${n}`,
        );
      }
    };
    if (msg.type === 'insert') check(msg.newTuple.kinds.length, 'new');
    else if (msg.type === 'update') {
      check(msg.newTuple.kinds.length, 'new');
      if (msg.oldTuple) check(msg.oldTuple.kinds.length, 'old');
    } else check(msg.oldTuple.kinds.length, 'old');
    return rel;
  }

  /** The relations named by a Truncate, in message order. */
  resolveTruncate(msg: TruncateMessage): RelationInfo[] {
    return msg.relationIds.map((oid) => this.require(oid, 'truncate'));
  }

  /** A type announced by a Type message (custom types only; built-in types are never announced). */
  type(oid: number): TypeInfo | undefined {
    return this.types.get(oid);
  }

  get size(): number {
    return this.relations.size;
  }

  clear(): void {
    this.relations.clear();
    this.types.clear();
  }
}
