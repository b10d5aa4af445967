/**
 * Streaming row splitter for text and CSV COPY data, used when the copy runs with
 * `resharding_copy_format = "text"` (or CSV): it finds row boundaries across arbitrary chunk
 * boundaries, reports each row as a byte range (to forward whole rows untouched), and decodes a
 * single field (the shard key) on demand.
 *
 * Row ends follow PostgreSQL's COPY rules: in text format every '\n' ends a row (data newlines
 * are always escaped as "\n"); in CSV a '\n' ends a row unless it is inside quotes. Rows are
 * expected to end in "\n" as COPY TO writes them ("\r\n" input is not recognised as one newline).
 */
import { PgError, SQLSTATE } from './pg-error.js';

export interface TextCopyOptions {
  format: 'text' | 'csv';
  /** Single-byte delimiter; default tab (text) or comma (CSV). */
  delimiter?: string;
  /** NULL marker; default "\N" (text) or the empty unquoted string (CSV). */
  null?: string;
  /** CSV quote character; default '"'. */
  quote?: string;
  /** CSV escape character; default the quote character. */
  escape?: string;
}

const EMPTY = Buffer.alloc(0);
const NL = 0x0a;
const BACKSLASH = 0x5c;

function singleByte(name: string, v: string): number {
  const b = Buffer.from(v, 'utf8');
  if (b.length !== 1) throw new PgError(SQLSTATE.invalidParameterValue, `COPY ${name} must be a single one-byte character, got "${v}"`);
  return b[0];
}

export class TextCopyRowSplitter {
  readonly csv: boolean;
  readonly delim: number;
  readonly quote: number;
  readonly escape: number;
  readonly nullMarker: Buffer;

  /** Buffer holding the current row. Changes between pushes. */
  buf: Buffer = EMPTY;
  /** Current row's byte range in `buf`, including its terminating '\n'. */
  rowStart = 0;
  rowEnd = 0;
  /** Rows returned so far. */
  rows = 0;

  private pos = 0;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** CSV quote state carried across a scan that ran out of input. */
  private inQuote = false;
  private escPending = false;
  /** Where the scan for the current row's end stopped (relative to pos) so it is not repeated. */
  private scanned = 0;

  constructor(opts: TextCopyOptions) {
    this.csv = opts.format === 'csv';
    this.delim = singleByte('delimiter', opts.delimiter ?? (this.csv ? ',' : '\t'));
    this.quote = singleByte('quote', opts.quote ?? '"');
    this.escape = singleByte('escape', opts.escape ?? opts.quote ?? '"');
    this.nullMarker = Buffer.from(opts.null ?? (this.csv ? '' : '\\N'), 'utf8');
  }

  /** Call only after next() returned false. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const leftover = this.buf.length - this.pos;
    if (this.pendingLen === 0 && leftover === 0) {
      this.buf = chunk;
      this.pos = 0;
      this.scanned = 0;
      return;
    }
    if (this.pendingLen === 0) {
      if (this.scanned !== leftover) {
        throw new PgError(SQLSTATE.internalError, 'TextCopyRowSplitter.push called before next() consumed the previous chunk');
      }
      this.pending.push(this.buf.subarray(this.pos));
      this.pendingLen = leftover;
    }
    // Only stitch once the new chunk contains the row's end; scanning it continues the quote
    // state, so a long row arriving in many small chunks is not rescanned from its start.
    const end = this.findRowEnd(chunk, 0);
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    if (end >= 0) {
      const before = this.pendingLen - chunk.length;
      this.buf = Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
      this.pendingLen = 0;
      this.pos = 0;
      this.scanned = before + end; // the newline itself; next() will find it immediately
      this.inQuote = false;
      this.escPending = false;
    } else {
      this.buf = EMPTY;
      this.pos = 0;
    }
  }

  /** Advances to the next complete row; false when more input is needed. */
  next(): boolean {
    if (this.pendingLen > 0) return false;
    const buf = this.buf;
    const start = this.pos;
    if (start >= buf.length) return false;
    const nl = this.findRowEnd(buf, start + this.scanned);
    if (nl < 0) {
      this.scanned = buf.length - start;
      return false;
    }
    this.inQuote = false;
    this.escPending = false;
    this.scanned = 0;
    this.rowStart = start;
    this.rowEnd = nl + 1;
    this.pos = nl + 1;
    this.rows++;
    return true;
  }

  /** The current row including its newline, as a view. */
  rowBytes(): Buffer {
    return this.buf.subarray(this.rowStart, this.rowEnd);
  }

  /** Throws if input ended in the middle of a row. */
  finish(): void {
    const left = this.pendingLen + (this.buf.length - this.pos);
    if (left > 0) {
      throw new PgError('22P04', `COPY ${this.csv ? 'CSV' : 'text'} data ended in the middle of row ${this.rows + 1} (${left} bytes without a final newline${this.inQuote ? ', inside a quoted field' : ''})`);
    }
  }

  /** Field i (0-based) of the current row, decoded to a string; null for NULL; throws if the row has fewer fields. */
  field(i: number): string | null {
    return this.csv ? this.csvField(i) : this.textField(i);
  }

  /** Index of the '\n' ending the row, scanning buf from `from`, or -1 (state kept for CSV). */
  private findRowEnd(buf: Buffer, from: number): number {
    if (!this.csv) return buf.indexOf(NL, from);
    const q = this.quote;
    const esc = this.escape;
    let p = from;
    const end = buf.length;
    while (p < end) {
      if (!this.inQuote) {
        const nl = buf.indexOf(NL, p);
        const qi = buf.indexOf(q, p);
        if (qi < 0 || (nl >= 0 && nl < qi)) return nl;
        this.inQuote = true;
        p = qi + 1;
      } else if (esc === q) {
        // Quote doubles as escape: a doubled quote closes and reopens, so toggling is exact.
        const qi = buf.indexOf(q, p);
        if (qi < 0) return -1;
        this.inQuote = false;
        p = qi + 1;
      } else {
        for (; p < end; p++) {
          const c = buf[p];
          if (this.escPending) this.escPending = false;
          else if (c === esc) this.escPending = true;
          else if (c === q) {
            this.inQuote = false;
            p++;
            break;
          }
        }
      }
    }
    return -1;
  }

  private missing(i: number, n: number): never {
    throw new PgError('22P04', `COPY row ${this.rows} has ${n} fields, field ${i + 1} was requested`);
  }

  private textField(i: number): string | null {
    const buf = this.buf;
    const end = this.rowEnd - 1;
    const d = this.delim;
    let s = this.rowStart;
    let f = 0;
    let p = s;
    // Walk to field i: a delimiter after a backslash is data, not a separator.
    while (true) {
      if (p >= end || buf[p] === d) {
        if (f === i) break;
        if (p >= end) this.missing(i, f + 1);
        f++;
        s = ++p;
        continue;
      }
      p += buf[p] === BACKSLASH ? 2 : 1;
    }
    const e = p > end ? end : p;
    if (e - s === this.nullMarker.length && buf.compare(this.nullMarker, 0, this.nullMarker.length, s, e) === 0) return null;
    const bs = buf.indexOf(BACKSLASH, s);
    if (bs < 0 || bs >= e) return buf.toString('utf8', s, e);
    return unescapeText(buf, s, e).toString('utf8');
  }

  private csvField(i: number): string | null {
    const buf = this.buf;
    const end = this.rowEnd - 1;
    const d = this.delim;
    const q = this.quote;
    const esc = this.escape;
    let f = 0;
    let p = this.rowStart;
    while (true) {
      const s = p;
      let inQuote = false;
      let sawQuote = false;
      let out: number[] | null = null; // only allocated for quoted fields of the wanted column
      for (; p < end; p++) {
        const c = buf[p];
        if (!inQuote) {
          if (c === d) break;
          if (c === q) {
            inQuote = sawQuote = true;
            if (f === i && out === null) out = Array.from(buf.subarray(s, p));
            continue;
          }
        } else {
          if (c === esc && p + 1 < end && (buf[p + 1] === q || buf[p + 1] === esc)) {
            p++;
            if (out) out.push(buf[p]);
            continue;
          }
          if (c === q) {
            inQuote = false;
            continue;
          }
        }
        if (out) out.push(c);
      }
      if (f === i) {
        if (!sawQuote) {
          if (p - s === this.nullMarker.length && buf.compare(this.nullMarker, 0, this.nullMarker.length, s, p) === 0) return null;
          return buf.toString('utf8', s, p);
        }
        return Buffer.from(out ?? []).toString('utf8');
      }
      if (p >= end) this.missing(i, f + 1);
      f++;
      p++;
    }
  }
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Undoes COPY text-format escaping of buf[s, e): \b \f \n \r \t \v, octal \ooo, hex \xhh, \c → c. */
export function unescapeText(buf: Buffer, s: number, e: number): Buffer {
  const out = Buffer.allocUnsafe(e - s);
  let o = 0;
  let p = s;
  while (p < e) {
    const c = buf[p++];
    if (c !== BACKSLASH || p >= e) {
      out[o++] = c;
      continue;
    }
    const n = buf[p++];
    if (n >= 0x30 && n <= 0x37) {
      let v = n - 0x30;
      for (let k = 0; k < 2 && p < e && buf[p] >= 0x30 && buf[p] <= 0x37; k++) v = v * 8 + (buf[p++] - 0x30);
      out[o++] = v & 0xff;
    } else if (n === 0x78 && p < e && hexVal(buf[p]) >= 0) {
      let v = hexVal(buf[p++]);
      if (p < e && hexVal(buf[p]) >= 0) v = v * 16 + hexVal(buf[p++]);
      out[o++] = v;
    } else {
      switch (n) {
        case 0x62: out[o++] = 0x08; break; // \b
        case 0x66: out[o++] = 0x0c; break; // \f
        case 0x6e: out[o++] = 0x0a; break; // \n
        case 0x72: out[o++] = 0x0d; break; // \r
        case 0x74: out[o++] = 0x09; break; // \t
        case 0x76: out[o++] = 0x0b; break; // \v
        default: out[o++] = n; // \\, \<delimiter>, and any other char stands for itself
      }
    }
  }
  return out.subarray(0, o);
}
