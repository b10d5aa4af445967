// Quoting for SQL pgshift generates itself.

export function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}

export function quoteLiteral(s: string): string {
  if (s.includes('\\')) return "E'" + s.replace(/\\/g, '\\\\').replace(/'/g, "''") + "'";
  return "'" + s.replace(/'/g, "''") + "'";
}

/** A possibly schema-qualified table name. */
export function quoteQualified(schema: string | undefined, name: string): string {
  return schema ? `${quoteIdent(schema)}.${quoteIdent(name)}` : quoteIdent(name);
}
