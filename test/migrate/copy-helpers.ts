// Helpers for the COPY codec tests: run real COPY TO / COPY FROM and cut data into random chunks.
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { rng } from '../harness/rng.js';

export async function copyOut(c: pg.Client, sql: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  const s = c.query(copyTo(sql));
  for await (const chunk of s) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

export async function copyIn(c: pg.Client, sql: string, data: Buffer[]): Promise<void> {
  await pipeline(Readable.from(data), c.query(copyFrom(sql)));
}

export { rng };

/** Cuts buf into chunks of 1 byte .. maxSize, log-uniformly distributed (many tiny and many large). */
export function randomChunks(buf: Buffer, seed: number, maxSize = 65536): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length; ) {
    const n = Math.max(1, Math.floor(Math.exp(r() * Math.log(maxSize))));
    out.push(buf.subarray(p, Math.min(buf.length, p + n)));
    p += n;
  }
  return out;
}

/** Asserts two tables hold the same multiset of rows. */
export async function sameRows(c: pg.Client, a: string, b: string): Promise<{ missing: number; extra: number; count: number }> {
  const q = async (sql: string) => Number((await c.query(sql)).rows[0].n);
  return {
    missing: await q(`SELECT count(*) AS n FROM (SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b}) x`),
    extra: await q(`SELECT count(*) AS n FROM (SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a}) x`),
    count: await q(`SELECT count(*) AS n FROM ${b}`),
  };
}
