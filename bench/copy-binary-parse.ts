/**
 * Throughput of the COPY codecs on a ~100 MB synthetic stream cut into 64 KB chunks (the size
 * socket reads typically deliver). Per tuple it reads the int4 key through the offsets arrays,
 * as the copy router does. Prints MB/s and tuples/s (best of several runs).
 *
 *   node dist/bench/copy-binary-parse.js [megabytes]
 */
import { BinaryCopyParser, binaryCopyHeader, binaryCopyTrailer, encodeBinaryTuple } from '../src/wire/copy-binary.js';
import { TextCopyRowSplitter } from '../src/wire/copy-text.js';

const targetMb = Number(process.argv[2] ?? 100);
const CHUNK = 64 * 1024;
const RUNS = 5;

function chunked(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length; p += CHUNK) out.push(buf.subarray(p, p + CHUNK));
  return out;
}

function syntheticBinary(bytes: number): { chunks: Buffer[]; tuples: number; size: number } {
  const parts: Buffer[] = [binaryCopyHeader()];
  let size = parts[0].length;
  let n = 0;
  const ts = Buffer.alloc(8);
  while (size < bytes) {
    const id = Buffer.alloc(4);
    id.writeInt32BE(n);
    const big = Buffer.alloc(8);
    big.writeBigInt64BE(BigInt(n) * 1_000_003n);
    ts.writeBigInt64BE(BigInt(n) * 1_000_000n);
    const t = encodeBinaryTuple([
      id,
      big,
      Buffer.from(`customer name number ${n}`),
      Buffer.from('0123456789abcdef'),
      null,
      Buffer.from(ts),
      Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0x04, 0xd2, 0x16, 0x2e]),
      Buffer.from(`some longer free-text column value for row ${n}, with padding....`),
    ]);
    parts.push(t);
    size += t.length;
    n++;
  }
  parts.push(binaryCopyTrailer());
  const all = Buffer.concat(parts);
  return { chunks: chunked(all), tuples: n, size: all.length };
}

function syntheticText(bytes: number, csv: boolean): { chunks: Buffer[]; rows: number; size: number } {
  const lines: string[] = [];
  let size = 0;
  let n = 0;
  const d = csv ? ',' : '\t';
  while (size < bytes) {
    const text = csv ? `"customer ""name"" ${n}"` : `customer \\t name ${n}`;
    const line = [n, n * 1000003, text, '0123456789abcdef', csv ? '' : '\\N', '2024-01-01 00:00:00+00', '1234.5678', `some longer free-text column value for row ${n}, with padding....`].join(d) + '\n';
    lines.push(line);
    size += line.length;
    n++;
  }
  const all = Buffer.from(lines.join(''));
  return { chunks: chunked(all), rows: n, size: all.length };
}

function best(label: string, size: number, count: number, unit: string, run: () => number): void {
  let bestMs = Infinity;
  let check = 0;
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    check += run();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms < bestMs) bestMs = ms;
  }
  const mb = size / (1024 * 1024);
  console.log(
    `${label.padEnd(34)} ${mb.toFixed(0)} MB in ${bestMs.toFixed(0)} ms: ${(mb / (bestMs / 1000)).toFixed(0)} MB/s, ` +
      `${((count / bestMs) * 1000 / 1e6).toFixed(2)} M ${unit}/s (checksum ${check})`,
  );
}

const bin = syntheticBinary(targetMb * 1024 * 1024);
best('binary COPY parse + key read', bin.size, bin.tuples, 'tuples', () => {
  const p = new BinaryCopyParser();
  let sum = 0;
  for (const c of bin.chunks) {
    p.push(c);
    while (p.next()) sum = (sum + p.buf.readInt32BE(p.fieldStart[0])) | 0;
  }
  p.finish();
  return sum & 0xff;
});

const text = syntheticText(targetMb * 1024 * 1024, false);
best('text COPY row split + key field', text.size, text.rows, 'rows', () => {
  const s = new TextCopyRowSplitter({ format: 'text' });
  let sum = 0;
  for (const c of text.chunks) {
    s.push(c);
    while (s.next()) sum = (sum + s.field(0)!.length) | 0;
  }
  s.finish();
  return sum & 0xff;
});

const csv = syntheticText(targetMb * 1024 * 1024, true);
best('CSV COPY row split + key field', csv.size, csv.rows, 'rows', () => {
  const s = new TextCopyRowSplitter({ format: 'csv' });
  let sum = 0;
  for (const c of csv.chunks) {
    s.push(c);
    while (s.next()) sum = (sum + s.field(0)!.length) | 0;
  }
  s.finish();
  return sum & 0xff;
});
