/**
 * ConfigError: a configuration problem the operator can fix. It always names the file (or
 * "environment" for env overrides) and the key, and the line when it could be found, so the
 * message alone tells the operator where to look.
 */
export class ConfigError extends Error {
  /** The file the problem is in (path as given), or "environment" for PGSHIFT_* variables. */
  readonly file: string;
  /** Dotted key path, e.g. "general.port", "databases[1].role", "users[0].database". */
  readonly key: string;
  /** 1-based line in `file`, when it could be located. */
  readonly line?: number;
  /** The problem without the location prefix. */
  readonly problem: string;

  constructor(file: string, key: string, problem: string, line?: number) {
    const where = line !== undefined ? `${file}:${line}` : file;
    super(key ? `${where}: ${key}: ${problem}` : `${where}: ${problem}`);
    this.name = 'ConfigError';
    this.file = file;
    this.key = key;
    this.problem = problem;
    if (line !== undefined) this.line = line;
  }
}
