// Shared by the cutover tests that move logical database "prod" (one source shard) to
// "prod_new" (two destination shards) through an in-process proxy: the [[databases]] text and
// the SHOW TASKS polling every one of them needs.
import type { ProxyFixture } from '../harness/proxy.js';

/** "prod" on the source's database "shop"; "prod_new" on the destination's shop_0 and shop_1. */
export function prodDatabases(sourcePort: number, destPort: number): string {
  const src = `[[databases]]\nname = "prod"\nhost = "127.0.0.1"\nport = ${sourcePort}\ndatabase_name = "shop"\n`;
  return src + [0, 1].map((i) => `\n[[databases]]\nname = "prod_new"\nhost = "127.0.0.1"\nport = ${destPort}\ndatabase_name = "shop_${i}"\nshard = ${i}\n`).join('');
}

/** Admin-database polling for one proxy (the fixture is read at call time: tests assign it in before()). */
export function taskPolling(px: () => ProxyFixture, defaultTimeoutMs = 30_000, intervalMs = 50) {
  const admin = (sql: string) => px().admin(sql);
  return {
    admin,
    /** Resolves with f's first truthy value; the timeout error lists the tasks. */
    async waitFor<T>(what: string, f: () => Promise<T | undefined | null | false>, timeoutMs = defaultTimeoutMs): Promise<T> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = await f();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; tasks: ${JSON.stringify(await admin('SHOW TASKS'))}`);
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    },
    async taskRow(id: number) {
      return (await admin('SHOW TASKS')).find((r) => Number(r.id) === id);
    },
  };
}
