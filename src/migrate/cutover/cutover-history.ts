/**
 * The cutovers of this proxy since it started: the one running, how many finished and the last
 * one's report. The composition root creates one; the cutover records into it and /progress and
 * the metrics read it.
 */
import type { CutoverReport } from './cutover.js';

export type LastCutover = CutoverReport & { taskId: number; rollback: boolean };

export class CutoverHistory {
  last: LastCutover | null = null;
  count = 0;
  /** The task whose cutover is running, null when none is. */
  running: number | null = null;
}
