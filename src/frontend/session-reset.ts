/**
 * Session pooling's hand-back: a server a session client kept is reset with DISCARD ALL (its
 * SETs, temporary tables, prepared statements and locks go) before another client gets it.
 */
import type { ServerConnection } from '../backend/server.js';
import type { Pool } from '../backend/pool.js';

export function releaseSessionServer(pool: Pool, srv: ServerConnection): void {
  srv.query('DISCARD ALL').then(
    () => {
      srv.prepared.clear();
      srv.applied.clear();
      pool.release(srv, true);
    },
    () => pool.release(srv, false),
  );
}
