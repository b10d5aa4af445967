/**
 * Finds the line of a key in TOML source text, so validation errors can say "pgshift.toml:12".
 * smol-toml does not report positions, so this is a light line scanner that understands table
 * headers ([a], [[a]], [[a.b]] nested under the current [[a]]), dotted keys, multi-line strings
 * and multi-line arrays well enough for configuration files. It is best effort: when a key
 * cannot be found, the line of its enclosing table header is used, and failing that none.
 */

export type PathPart = string | number;

const SEGMENT = /[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'/g;
const KEY_LINE = /^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=(.*)$/;
const ARRAY_HEADER = /^\s*\[\[\s*([^\]]+?)\s*\]\]\s*(?:#.*)?$/;
const TABLE_HEADER = /^\s*\[\s*([^\]]+?)\s*\]\s*(?:#.*)?$/;

function splitKey(key: string): string[] {
  const parts = key.match(SEGMENT) ?? [];
  return parts.map((p) => (p.startsWith('"') || p.startsWith("'") ? p.slice(1, -1) : p));
}

function pathKey(path: readonly PathPart[]): string {
  return path.map(String).join('\u0000');
}

/** Counts unbalanced '[' in a value, ignoring brackets inside strings and after a comment. */
function bracketDepth(value: string): number {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#') break;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
  }
  return depth;
}

export class LineIndex {
  private readonly lines = new Map<string, number>();

  constructor(text: string) {
    const src = text.split(/\r?\n/);
    let current: PathPart[] = [];
    // Current index of each array of tables, by the concrete path of the array.
    const arrayIndex = new Map<string, number>();
    let multiline = ''; // the closing delimiter of a multi-line string we are inside
    let depth = 0; // open brackets of a multi-line array/inline table we are inside

    const resolve = (parts: string[]): PathPart[] => {
      const out: PathPart[] = [];
      for (const p of parts) {
        out.push(p);
        const idx = arrayIndex.get(pathKey(out));
        if (idx !== undefined) out.push(idx);
      }
      return out;
    };

    for (let n = 0; n < src.length; n++) {
      const line = src[n];
      const lineNo = n + 1;
      if (multiline) {
        if (line.includes(multiline)) multiline = '';
        continue;
      }
      if (depth > 0) {
        depth += bracketDepth(line);
        continue;
      }
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;

      let m = ARRAY_HEADER.exec(line);
      if (m) {
        const parts = splitKey(m[1]);
        const parent = resolve(parts.slice(0, -1));
        const arrayPath = [...parent, parts[parts.length - 1]];
        const k = pathKey(arrayPath);
        const idx = (arrayIndex.get(k) ?? -1) + 1;
        arrayIndex.set(k, idx);
        // A new element of an outer array starts fresh nested arrays.
        for (const key of [...arrayIndex.keys()]) {
          if (key.startsWith(k + '\u0000') && key.length > k.length) arrayIndex.delete(key);
        }
        current = [...arrayPath, idx];
        this.record(arrayPath, lineNo);
        this.record(current, lineNo);
        continue;
      }
      m = TABLE_HEADER.exec(line);
      if (m) {
        current = resolve(splitKey(m[1]));
        this.record(current, lineNo);
        continue;
      }
      m = KEY_LINE.exec(line);
      if (m) {
        this.record([...current, ...splitKey(m[1])], lineNo);
        const value = m[2];
        const triple = /("""|''')/.exec(value);
        if (triple && value.indexOf(triple[1], triple.index + 3) === -1) multiline = triple[1];
        else depth = Math.max(0, bracketDepth(value));
      }
    }
  }

  private record(path: readonly PathPart[], line: number): void {
    const k = pathKey(path);
    if (!this.lines.has(k)) this.lines.set(k, line);
  }

  /** Line of `path` exactly, or of its nearest enclosing table / key, or undefined. */
  find(path: readonly PathPart[]): number | undefined {
    for (let len = path.length; len > 0; len--) {
      const line = this.lines.get(pathKey(path.slice(0, len)));
      if (line !== undefined) return line;
    }
    return undefined;
  }

  /** Line of `path` only if that exact key was found. */
  exact(path: readonly PathPart[]): number | undefined {
    return this.lines.get(pathKey(path));
  }
}

/** Formats a path as "databases[1].role". */
export function formatPath(path: readonly PathPart[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${p}` : p;
  }
  return out;
}
