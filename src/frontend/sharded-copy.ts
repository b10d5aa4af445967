/**
 * COPY ... FROM STDIN into a sharded table: the client's rows are split by shard key and each
 * shard receives its rows in its own COPY, with the same statement. Rows are forwarded as the
 * client sent them (text, CSV or binary); only the key field is decoded.
 */
import * as fe from '../wire/frontend-messages.js';
import { B, F } from '../wire/protocol.js';
import { PgError, SQLSTATE, parseErrorFields } from '../wire/pg-error.js';
import { decodeCommandComplete } from '../wire/decode.js';
import { BinaryCopyParser, binaryCopyHeader, binaryCopyTrailer } from '../wire/copy-binary.js';
import { TextCopyRowSplitter } from '../wire/copy-text.js';
import type { CopyPlan } from '../router/index.js';
import { NULL_KEY_SHARD } from '../router/index.js';
import type { ServerConnection } from '../backend/server.js';
import type { MultiShardBinding } from './multi-shard-binding.js';

const FLUSH_BYTES = 64 * 1024;

export async function copyInSharded(client: MultiShardBinding, plan: CopyPlan, sql: string): Promise<boolean> {
  if (!plan.broadcast && plan.keyColumn === null) {
    throw new PgError(SQLSTATE.featureNotSupported, `COPY into sharded table "${plan.table}" needs a column list that includes the shard key "${plan.keyColumnName ?? '?'}"`, { hint: `COPY ${plan.table} (col1, col2, ...) FROM STDIN` });
  }
  const shards = client.ctx.sharding(client.info).shards;
  const servers: ServerConnection[] = [];
  for (let s = 0; s < shards; s++) servers.push(await client.tx.server(s));
  // Start the COPY on every shard; each answers CopyInResponse (or an error).
  let startError: PgError | null = null;
  let copyIn: Buffer | null = null;
  const inCopy = servers.map(() => false);
  const started = servers.map((srv, i) =>
    srv.receive((t, body, raw) => {
      if (t === B.CopyInResponse) {
        inCopy[i] = true;
        copyIn ??= Buffer.from(raw);
        return true;
      }
      if (t === B.ErrorResponse) startError ??= PgError.fromFields(parseErrorFields(body));
      return t === B.ReadyForQuery;
    }),
  );
  for (const srv of servers) srv.write(fe.query(sql));
  await Promise.all(started);
  if (startError || !copyIn) {
    const copying = servers.filter((_, i) => inCopy[i]);
    for (const srv of copying) srv.write(fe.copyFail('COPY aborted by pgshift: another shard refused it'));
    await drain(copying);
    throw startError ?? new PgError(SQLSTATE.internalError, 'shards did not start COPY');
  }
  client.write(copyIn);

  const out: Buffer[][] = servers.map(() => []);
  const outLen = new Array<number>(shards).fill(0);
  const send = (s: number, bytes: Buffer) => {
    out[s].push(bytes);
    outLen[s] += bytes.length;
    if (outLen[s] >= FLUSH_BYTES) flush(s);
  };
  const flush = (s: number) => {
    if (!outLen[s]) return;
    servers[s].write(fe.copyData(Buffer.concat(out[s], outLen[s])));
    out[s] = [];
    outLen[s] = 0;
  };
  const shardOf = (keyText: string | Buffer | null, binary: boolean): number => {
    if (keyText === null) return NULL_KEY_SHARD;
    return binary ? plan.sharder!.shardOfBinary(keyText as Buffer) : plan.sharder!.shardOfText(keyText);
  };
  const everyone = (bytes: Buffer) => {
    for (let s = 0; s < shards; s++) send(s, bytes);
  };

  let rowError: PgError | null = null;
  let failedByClient: string | null = null;
  const binary = plan.format === 'binary';
  const bin = binary ? new BinaryCopyParser() : null;
  const text = binary ? null : new TextCopyRowSplitter({ format: plan.format as 'text' | 'csv', delimiter: plan.delimiter, null: plan.null, quote: plan.quote, escape: plan.escape });
  let headerSkipped = !plan.header;
  if (binary) everyone(binaryCopyHeader());

  const consume = () => {
    if (bin) {
      while (bin.next()) {
        const bytes = Buffer.from(bin.tupleBytes());
        if (plan.broadcast) everyone(bytes);
        else send(shardOf(bin.field(plan.keyColumn!), true), bytes);
      }
    } else if (text) {
      while (text.next()) {
        const bytes = Buffer.from(text.rowBytes());
        if (!headerSkipped) {
          headerSkipped = true;
          everyone(bytes); // each shard's COPY skips its own header line
          continue;
        }
        if (plan.broadcast) everyone(bytes);
        else send(shardOf(text.field(plan.keyColumn!), false), bytes);
      }
    }
  };

  for (;;) {
    const m = await client.nextMessage();
    if (!m) {
      for (const srv of servers) srv.destroy();
      return false;
    }
    const [t, body] = m;
    if (t === F.CopyData) {
      if (rowError) continue;
      try {
        if (bin) bin.push(body);
        else text!.push(body);
        consume();
      } catch (err) {
        rowError = err instanceof PgError ? err : new PgError('22P04', String(err));
      }
    } else if (t === F.CopyDone) {
      break;
    } else if (t === F.CopyFail) {
      failedByClient = body.toString('utf8', 0, Math.max(0, body.length - 1));
      break;
    } else if (t === F.Flush || t === F.Sync) {
      continue;
    } else {
      rowError ??= new PgError(SQLSTATE.protocolViolation, `unexpected message type '${String.fromCharCode(t)}' during COPY from stdin`);
      break;
    }
  }
  if (!rowError && !failedByClient) {
    try {
      if (bin) bin.finish();
      else text!.finish();
    } catch (err) {
      rowError = err instanceof PgError ? err : new PgError('22P04', String(err));
    }
  }
  if (rowError || failedByClient) {
    for (const srv of servers) srv.write(fe.copyFail(failedByClient ?? `COPY aborted by pgshift: ${rowError!.message}`));
    await drain(servers);
    throw rowError ?? new PgError(SQLSTATE.queryCanceled, `COPY from stdin failed: ${failedByClient}`);
  }
  if (binary) everyone(binaryCopyTrailer());
  for (let s = 0; s < shards; s++) {
    flush(s);
    servers[s].write(fe.copyDone());
  }
  let total = 0;
  let error: PgError | null = null;
  await Promise.all(
    servers.map((srv) =>
      srv.exchange(null, (t, body) => {
        if (t === B.CommandComplete) {
          const m = /^COPY (\d+)$/.exec(decodeCommandComplete(body));
          if (m) total += Number(m[1]);
        } else if (t === B.ErrorResponse) error ??= PgError.fromFields(parseErrorFields(body));
      }),
    ),
  );
  if (error) throw error;
  // Broadcast copies wrote every row once per shard; report rows as the client sent them.
  client.complete(`COPY ${plan.broadcast ? Math.round(total / shards) : total}`);
  return true;
}

async function drain(servers: ServerConnection[]): Promise<void> {
  await Promise.all(servers.map((srv) => (srv.closed ? undefined : srv.exchange(null, () => undefined).catch(() => undefined))));
}
