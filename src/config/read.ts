/**
 * Type-checks one TOML table against a SectionSpec, producing a plain object with only the keys
 * that were present (absent keys stay absent so defaults can be told apart from user values).
 * Every problem becomes a ConfigError naming file, key and line.
 */
import { TomlDate } from 'smol-toml';
import { ConfigError } from './errors.js';
import { formatPath, type LineIndex, type PathPart } from './locate.js';
import { IGNORED, UNSUPPORTED, type FieldSpec, type SectionSpec } from './schema.js';

export interface Source {
  file: string;
  lines: LineIndex;
}

export function fail(src: Source, path: readonly PathPart[], problem: string): never {
  throw new ConfigError(src.file, formatPath(path), problem, src.lines.find(path));
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'an array';
  if (value instanceof TomlDate) return `the date ${value.toISOString()}`;
  if (typeof value === 'object' && value !== null) return 'a table';
  return String(value);
}

export function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof TomlDate);
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** Error text for a key that is not accepted in `section`. */
export function unknownKeyProblem(key: string, section: string, accepted: readonly string[]): string {
  const label = section ? `in ${section.endsWith(']') ? section : `[${section}]`}` : 'at the top level';
  if ((UNSUPPORTED[sectionName(section)] ?? []).includes(key)) {
    return `"${key}" is a PgDog setting that pgshift does not support ${label}; remove it (see docs/configuration.md)`;
  }
  let best = '';
  let bestDist = Infinity;
  for (const k of accepted) {
    const d = editDistance(key, k);
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  const hint =
    bestDist <= Math.max(2, Math.floor(key.length / 4))
      ? `; did you mean "${best}"?`
      : accepted.length <= 12
        ? `; accepted keys: ${accepted.join(', ')}`
        : '; see docs/configuration.md for the accepted keys';
  return `unknown key ${label}${hint}`;
}

/** "[[databases]]" → "databases"; "general" → "general". */
function sectionName(section: string): string {
  return section.replace(/^\[+|\]+$/g, '');
}

function checkField(src: Source, path: PathPart[], spec: FieldSpec, value: unknown): unknown {
  const bad = (want: string): never => fail(src, path, `must be ${want} (got ${describe(value)})`);
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string') bad('a string');
      return value;
    case 'bool':
      if (typeof value !== 'boolean') bad('true or false');
      return value;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) bad('an integer');
      if ((value as number) < spec.min) bad(`at least ${spec.min}`);
      if (spec.max !== undefined && (value as number) > spec.max) bad(`at most ${spec.max}`);
      return value;
    case 'duration':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        bad('a whole number of milliseconds, 0 or more');
      }
      return value;
    case 'port':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
        bad('a port number between 1 and 65535');
      }
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) {
        bad(`one of ${spec.values.map((v) => `"${v}"`).join(', ')}`);
      }
      return value;
    case 'stringArray':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) bad('an array of strings');
      return [...(value as string[])];
    case 'scalarArray':
      if (
        !Array.isArray(value) ||
        value.some((v) => typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v)))
      ) {
        bad('an array of strings and integers');
      }
      return [...(value as (string | number)[])];
    case 'scalar':
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) {
        bad('a string or an integer');
      }
      return value;
  }
}

/**
 * Reads `raw` (a TOML table) at `path`. `section` names the table for messages and picks the
 * ignore / unsupported lists ("general", "databases", ...). `passthrough` keys are returned
 * unchecked for the caller to handle (e.g. nested [[sharded_tables.mapping]]).
 */
export function readSection(
  src: Source,
  raw: unknown,
  path: PathPart[],
  section: string,
  spec: SectionSpec,
  passthrough: readonly string[] = [],
): Record<string, unknown> {
  const label = path.length > 0 && typeof path[path.length - 1] === 'number' ? `[[${section}]]` : section;
  if (!isTable(raw)) fail(src, path, `must be a table (got ${describe(raw)})`);
  const out: Record<string, unknown> = {};
  const ignored = IGNORED[section] ?? [];
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    const fieldSpec = Object.prototype.hasOwnProperty.call(spec, key) ? spec[key] : undefined;
    if (fieldSpec) out[key] = checkField(src, [...path, key], fieldSpec, value);
    else if (passthrough.includes(key)) out[key] = value;
    else if (!ignored.includes(key)) {
      fail(src, [...path, key], unknownKeyProblem(key, label, [...Object.keys(spec), ...passthrough]));
    }
  }
  return out;
}

/** Reads an array of tables ([[name]]); absent means empty. */
export function readArray(src: Source, raw: unknown, path: PathPart[]): unknown[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) fail(src, path, `must be an array of tables, written [[${formatPath(path)}]] (got ${describe(raw)})`);
  return raw;
}

export function requireKeys<T extends Record<string, unknown>>(
  src: Source,
  obj: T,
  path: PathPart[],
  keys: readonly string[],
  label: string,
): void {
  for (const k of keys) {
    if (obj[k] === undefined) fail(src, [...path, k], `missing required key "${k}" in ${label}`);
  }
}
