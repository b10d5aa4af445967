/**
 * The durable record of cutovers (DESIGN.md §8): `<stateDir>/cutover.json`, written with
 * writeFileDurably (temp, fsync, rename, fsync dir) before every irreversible step.
 *
 * It holds two things in one file, so that both change in one atomic write:
 *  - `routing`: the cutover swaps in force that the config files may not show yet. A restart
 *    applies them over the loaded files; they leave only when the files are saved with the new
 *    layout (cutover_save_config, SAVE_ROUTING) or the operator discards them (DISCARD_ROUTING).
 *  - `journals`: one per cutover attempt, naming the clusters physically (host, port, database,
 *    system_identifier), never by the logical names the swap exchanges.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileDurably } from '../../config/durable-file.js';
import type { RecordedSwap } from '../../config/recorded-routing.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { faultPoint } from '../fault.js';
import type { PhysicalShard } from '../tasks/physical.js';

/** In order; a phase is recorded before the action it names can have an effect that must be undone or finished. */
export const JOURNAL_PHASES = ['reverse_intended', 'reverse_created', 'barrier', 'sequences', 'switched', 'reverse_task', 'forward_finished', 'done', 'rolled_back'] as const;
export type JournalPhase = (typeof JOURNAL_PHASES)[number];

/** The point of no return: from here on a crash rolls forward. */
export function isSwitched(p: JournalPhase): boolean {
  return p === 'switched' || p === 'reverse_task' || p === 'forward_finished' || p === 'done';
}

export function isSettled(p: JournalPhase): boolean {
  return p === 'done' || p === 'rolled_back';
}


export interface CutoverJournal {
  taskId: number;
  /** Logical names at the start of the cutover (the swap exchanges them). */
  source: string;
  destination: string;
  fromUser?: string;
  toUser?: string;
  publication: string;
  /** The clusters the forward task reads from / writes to. */
  sourceShards: PhysicalShard[];
  destinationShards: PhysicalShard[];
  /** The forward task's slots, on sourceShards. */
  forwardSlots: string[];
  /** Reverse slots (one per destination shard) and their base name, on destinationShards. */
  reverseSlotBase: string;
  reverseSlots: string[];
  /** Destination shards where the publication did not exist and this cutover creates it. */
  publicationCreatedOn: number[];
  barrier: string[];
  reverseTaskId: number | null;
  phase: JournalPhase;
  updatedAt: number;
}

export interface RoutingSwap extends RecordedSwap {
  taskId: number;
  at: number;
}

interface StateFile {
  routing: RoutingSwap[];
  journals: CutoverJournal[];
}

/** Settled journals kept for SHOW TASKS; older ones are forgotten. */
const KEEP_SETTLED = 20;

export class CutoverJournalFile {
  private state: StateFile = { routing: [], journals: [] };
  readonly file: string;

  private constructor(readonly stateDir: string) {
    this.file = path.join(stateDir, 'cutover.json');
  }

  static open(stateDir: string): CutoverJournalFile {
    const j = new CutoverJournalFile(stateDir);
    if (existsSync(j.file)) {
      try {
        const data = JSON.parse(readFileSync(j.file, 'utf8')) as Partial<StateFile>;
        j.state = { routing: data.routing ?? [], journals: data.journals ?? [] };
      } catch (err) {
        throw new PgError(SQLSTATE.configFileError, `cutover state file ${j.file} is not valid JSON (${(err as Error).message}); it records where traffic must go after a cutover, so pgshift will not start without it: repair it from its .tmp file or restore it`);
      }
    }
    return j;
  }

  get routing(): readonly RoutingSwap[] {
    return this.state.routing;
  }

  journal(taskId: number): CutoverJournal | undefined {
    return [...this.state.journals].reverse().find((j) => j.taskId === taskId);
  }

  all(): readonly CutoverJournal[] {
    return this.state.journals;
  }

  /** Journals of cutovers interrupted before they settled (a crash), oldest first. */
  unsettled(): CutoverJournal[] {
    return this.state.journals.filter((j) => !isSettled(j.phase));
  }

  /**
   * Records `j` at `phase` (and, at 'switched', its routing swap — `layout` is what it puts in
   * force — in the same write), then passes the fault point of that phase (tests kill there).
   */
  record(j: CutoverJournal, phase: JournalPhase, layout: Record<string, string> = {}): void {
    j.phase = phase;
    j.updatedAt = Date.now();
    // By identity: an unsettled journal of an earlier attempt of the same task stays recorded.
    const others = this.state.journals.filter((x) => x !== j);
    const settled = others.filter((x) => isSettled(x.phase));
    const kept = others.filter((x) => !isSettled(x.phase) || settled.indexOf(x) >= settled.length - KEEP_SETTLED);
    let routing = this.state.routing;
    if (phase === 'switched') routing = addSwap(routing, { source: j.source, destination: j.destination, layout, taskId: j.taskId, at: j.updatedAt });
    this.write({ routing, journals: [...kept, j] });
    faultPoint(phase);
  }

  /** The files now hold the serving layout (saved), or the operator discarded the recorded routing. */
  clearRouting(): void {
    if (this.state.routing.length === 0) return;
    this.write({ routing: [], journals: this.state.journals });
  }

  private write(next: StateFile): void {
    writeFileDurably(this.file, JSON.stringify(next, null, 1));
    this.state = next;
  }
}

/** A swap of the same pair twice is no swap: the list stays the net effect. */
function addSwap(list: readonly RoutingSwap[], s: RoutingSwap): RoutingSwap[] {
  const last = list[list.length - 1];
  const same = (a: RoutingSwap) => (a.source === s.source && a.destination === s.destination) || (a.source === s.destination && a.destination === s.source);
  if (last && same(last)) return list.slice(0, -1);
  return [...list, s];
}

/**
 * Going back to the files' layout without a cutover would hide every write made on the new
 * cluster since the switch: refused while a task still replicates between the swapped
 * databases (CUTOVER of that reverse task is the way back that loses nothing).
 */
export function checkDiscardRouting(routing: readonly RoutingSwap[], tasks: readonly { id: number; type: string; source: string; destination: string; terminal: boolean }[]): void {
  const names = new Set(routing.flatMap((s) => [s.source, s.destination]));
  const blocking = tasks.find((t) => !t.terminal && (names.has(t.source) || names.has(t.destination)));
  if (blocking) {
    throw new PgError(SQLSTATE.objectNotInState, `DISCARD_ROUTING refused: task ${blocking.id} (${blocking.type}) replicates between the swapped databases; serving the config files' layout now would lose the writes made on the new cluster since the cutover`, {
      hint: `roll back with CUTOVER ${blocking.id} (no write is lost), or STOP_TASK ${blocking.id} first if those writes may be abandoned`,
    });
  }
}

