/**
 * Every long data-movement operation is a Task (DESIGN.md §6): an integer id, a type string, a
 * status and an inner status, plus what is needed to resume it after a restart (phase, slot
 * names, per-table copy progress). The registry keeps them in memory and persists them as JSON
 * in `<stateDir>/tasks.json` (temp file, fsync, rename, fsync of the directory: a crash never leaves a torn or lost file).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { writeFileDurably } from '../../config/durable-file.js';
import path from 'node:path';
import type { Logger } from '../../observe/log.js';
import type { ReplicationStream } from '../replicate/stream.js';
import { TableCopy, type TableCopyJson } from '../copy/table-progress.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import type { TaskClusters } from './physical.js';
import type { VerifyStateJson } from '../verify/report.js';

export type TaskKind = 'copy_data' | 'replication' | 'schema_sync' | 'reshard' | 'verify';
export type TaskStatus = 'started' | 'running' | 'cancelling' | 'finished' | 'cancelled' | `failed: ${string}`;
/** Where a task is; decides what a restart resumes. */
export type TaskPhase = 'created' | 'schema_pre' | 'copying' | 'schema_post' | 'replicating' | 'done';

export interface TaskOptions {
  fromUser?: string;
  toUser?: string;
  skipSchemaSync?: boolean;
  /** Copy (and post schema) only, then finish keeping the slot for a later REPLICATE. */
  syncOnly?: boolean;
  /** Keep the slots when the task is stopped. */
  keepSlot?: boolean;
  schemaPhase?: 'pre' | 'post' | 'cutover';
  reverse?: boolean;
  /** The slot was created by a cutover before its pause: skip the other stream's own (origin-tagged) writes. */
  skipOriginated?: boolean;
  /** ctid range size for the copy (tests use small values). */
  chunkBlocks?: number;
  /** VERIFY: the task whose move is verified, and the tables to compare (default all). */
  verifyOf?: number;
  tables?: string[];
}

export interface TaskJson {
  id: number;
  kind: TaskKind;
  type: string;
  source: string;
  destination: string;
  publication: string;
  slots: string[];
  phase: TaskPhase;
  status: TaskStatus;
  innerStatus: string;
  startedAt: number;
  updatedAt: number;
  options: TaskOptions;
  tables: TableCopyJson[];
  /** Slots deliberately left on the source (failure while streaming, --sync-only). */
  slotsKept: boolean;
  /** The physical clusters the task started on (absent in files written before they were recorded). */
  clusters?: TaskClusters;
  /** VERIFY's findings and resume points. */
  verify?: VerifyStateJson;
}

export function isTerminal(s: TaskStatus): boolean {
  return s === 'finished' || s === 'cancelled' || s.startsWith('failed: ');
}

export class Task {
  readonly tables = new Map<string, TableCopy>();
  /** One per source shard while streaming (the cutover waits on them). */
  streams: ReplicationStream[] = [];
  controller = new AbortController();
  /** Settles when the task's background work has returned. */
  done: Promise<void> = Promise.resolve();
  status: TaskStatus = 'started';
  innerStatus = '';
  phase: TaskPhase = 'created';
  updatedAt: number;
  slotsKept = false;
  /** Where the task really reads and writes: logical names are exchanged by a cutover, these are not. */
  clusters: TaskClusters | null = null;
  verify: VerifyStateJson | null = null;

  constructor(
    readonly registry: TaskRegistry,
    readonly id: number,
    readonly kind: TaskKind,
    readonly type: string,
    readonly source: string,
    readonly destination: string,
    readonly publication: string,
    public slots: string[],
    readonly options: TaskOptions,
    readonly startedAt = Date.now(),
  ) {
    this.updatedAt = startedAt;
  }

  get terminal(): boolean {
    return isTerminal(this.status);
  }

  /** Updates status / inner status / phase and persists. A terminal status is final. */
  update(change: { status?: TaskStatus; inner?: string; phase?: TaskPhase }): Promise<void> {
    if (this.terminal) return Promise.resolve();
    if (change.status !== undefined) this.status = change.status;
    if (change.inner !== undefined) this.innerStatus = change.inner;
    if (change.phase !== undefined) this.phase = change.phase;
    this.updatedAt = Date.now();
    return this.registry.save();
  }

  save(): Promise<void> {
    return this.registry.save();
  }

  elapsedMs(now = Date.now()): number {
    return (this.terminal ? this.updatedAt : now) - this.startedAt;
  }

  toJSON(): TaskJson {
    return {
      id: this.id,
      kind: this.kind,
      type: this.type,
      source: this.source,
      destination: this.destination,
      publication: this.publication,
      slots: this.slots,
      phase: this.phase,
      status: this.status,
      innerStatus: this.innerStatus,
      startedAt: this.startedAt,
      updatedAt: this.updatedAt,
      options: this.options,
      tables: [...this.tables.values()].map((t) => t.toJSON()),
      slotsKept: this.slotsKept,
      ...(this.clusters ? { clusters: this.clusters } : {}),
      ...(this.verify ? { verify: this.verify } : {}),
    };
  }
}

/** Terminal tasks are forgotten after a day, as in PgDog. */
const RETENTION_MS = 24 * 3600 * 1000;

export class TaskRegistry {
  private readonly tasks = new Map<number, Task>();
  private nextId = 1;
  private saving: Promise<void> = Promise.resolve();
  private readonly file: string;

  private constructor(
    readonly stateDir: string,
    readonly log: Logger,
  ) {
    this.file = path.join(stateDir, 'tasks.json');
  }

  /** Loads `<stateDir>/tasks.json` when present. Tasks come back exactly as saved (not resumed). */
  static async open(stateDir: string, log: Logger): Promise<TaskRegistry> {
    const reg = new TaskRegistry(stateDir, log);
    await mkdir(stateDir, { recursive: true });
    let text: string | null = null;
    try {
      text = await readFile(reg.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== null) {
      let data: { nextId: number; tasks: TaskJson[] };
      try {
        data = JSON.parse(text) as { nextId: number; tasks: TaskJson[] };
      } catch (err) {
        throw new PgError(SQLSTATE.configFileError, `task state file ${reg.file} is not valid JSON (${(err as Error).message}); move it away to start without task history`);
      }
      reg.nextId = data.nextId;
      const cutoff = Date.now() - RETENTION_MS;
      for (const j of data.tasks) {
        if (isTerminal(j.status) && !j.slotsKept && j.updatedAt < cutoff) continue;
        const t = new Task(reg, j.id, j.kind, j.type, j.source, j.destination, j.publication, j.slots, j.options, j.startedAt);
        t.status = j.status;
        t.innerStatus = j.innerStatus;
        t.phase = j.phase;
        t.updatedAt = j.updatedAt;
        t.slotsKept = j.slotsKept;
        t.clusters = j.clusters ?? null;
        t.verify = j.verify ?? null;
        for (const tj of j.tables) t.tables.set(`${tj.schema}.${tj.table}`, TableCopy.fromJSON(tj));
        reg.tasks.set(t.id, t);
      }
    }
    return reg;
  }

  /** Reserves the next id (pre-flight runs before the task exists, but slot names need the id). */
  reserveId(): number {
    return this.nextId++;
  }

  create(
    id: number,
    kind: TaskKind,
    type: string,
    fields: { source: string; destination: string; publication: string; slots: string[]; options: TaskOptions },
  ): Task {
    const t = new Task(this, id, kind, type, fields.source, fields.destination, fields.publication, fields.slots, fields.options);
    this.tasks.set(id, t);
    return t;
  }

  get(id: number): Task | undefined {
    return this.tasks.get(id);
  }

  /** All tasks, ascending id. */
  list(): Task[] {
    return [...this.tasks.values()].sort((a, b) => a.id - b.id);
  }

  /** Persists every task; writes are serialized so the file always holds the latest state. */
  save(): Promise<void> {
    const next = this.saving.then(() => this.write());
    this.saving = next.catch((err) => {
      this.log.error({ err: (err as Error).message, file: this.file }, 'saving task state failed');
    });
    return next;
  }

  private async write(): Promise<void> {
    const data = JSON.stringify({ nextId: this.nextId, tasks: this.list().map((t) => t.toJSON()) }, null, 1);
    // fsynced file and directory: a task recorded finished stays finished after a power loss.
    writeFileDurably(this.file, data);
  }
}
