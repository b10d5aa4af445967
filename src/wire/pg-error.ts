/**
 * An error with a SQLSTATE, as PostgreSQL reports them. Everything pgshift reports to a client
 * goes through this type so the client sees a standard ErrorResponse it can act on.
 */
export class PgError extends Error {
  severity: string;
  detail?: string;
  hint?: string;
  /** Other fields from a server ErrorResponse, keyed by their one-letter code. */
  fields?: Record<string, string>;

  constructor(
    readonly code: string,
    message: string,
    opts: { severity?: string; detail?: string; hint?: string; fields?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'PgError';
    this.severity = opts.severity ?? 'ERROR';
    this.detail = opts.detail;
    this.hint = opts.hint;
    this.fields = opts.fields;
  }

  /** Builds a PgError from the body of a server ErrorResponse / NoticeResponse. */
  static fromFields(fields: Record<string, string>): PgError {
    return new PgError(fields.C ?? 'XX000', fields.M ?? 'unknown server error', {
      severity: fields.S ?? 'ERROR',
      detail: fields.D,
      hint: fields.H,
      fields,
    });
  }
}

/** Decodes the field list of an ErrorResponse or NoticeResponse body. */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]);
    const endStr = body.indexOf(0, i + 1);
    if (endStr < 0) break;
    out[code] = body.toString('utf8', i + 1, endStr);
    i = endStr + 1;
  }
  return out;
}

/** Common SQLSTATEs used by pgshift itself. */
export const SQLSTATE = {
  protocolViolation: '08P01',
  connectionFailure: '08006',
  connectionException: '08000',
  cannotConnectNow: '57P03',
  adminShutdown: '57P01',
  queryCanceled: '57014',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  invalidCatalogName: '3D000',
  syntaxError: '42601',
  featureNotSupported: '0A000',
  tooManyConnections: '53300',
  programLimitExceeded: '54000',
  idleInTransactionTimeout: '25P03',
  idleSessionTimeout: '57P05',
  reservedName: '42939',
  internalError: 'XX000',
  invalidParameterValue: '22023',
  objectNotInState: '55000',
  undefinedObject: '42704',
  undefinedColumn: '42703',
  undefinedTable: '42P01',
  duplicatePreparedStatement: '42P05',
  invalidSqlStatementName: '26000',
  configFileError: 'F0000',
  inFailedSqlTransaction: '25P02',
  insufficientPrivilege: '42501',
  ioError: '58030',
  warning: '01000',
} as const;

/** Turns any thrown value into a PgError without losing its message. */
export function asPgError(err: unknown, fallbackCode: string = SQLSTATE.internalError): PgError {
  if (err instanceof PgError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  // Node socket errors (ECONNREFUSED, ECONNRESET, EPIPE …): the server is unreachable. Tested
  // first: 'EPIPE' also looks like a SQLSTATE, and no SQLSTATE class starts with E.
  if (typeof e?.code === 'string' && e.code.startsWith('E')) {
    return new PgError(SQLSTATE.connectionFailure, `server connection failed: ${msg}`);
  }
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return new PgError(e.code, msg);
  return new PgError(fallbackCode, msg);
}
