/**
 * The HTTP endpoint (`[general] http_port`): GET /progress (JSON, in the spirit of mongosync's
 * progress endpoint), GET /metrics (Prometheus text), GET /health. Read-only; values are
 * computed when asked.
 */
import http from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from './log.js';

export interface HttpSources {
  progress(): Promise<unknown>;
  metrics: Registry;
}

export class HttpEndpoint {
  private server: http.Server | null = null;

  constructor(private readonly sources: HttpSources, private readonly log: Logger) {}

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const srv = http.createServer((req, res) => void this.handle(req, res));
      srv.once('error', reject);
      srv.listen(port, host, () => {
        srv.off('error', reject);
        this.server = srv;
        resolve((srv.address() as { port: number }).port);
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') return send(res, 405, 'text/plain', 'only GET is supported\n');
      if (path === '/progress') return send(res, 200, 'application/json', JSON.stringify(await this.sources.progress(), bigintSafe, 2) + '\n');
      if (path === '/metrics') return send(res, 200, this.sources.metrics.contentType, await this.sources.metrics.metrics());
      if (path === '/health') return send(res, 200, 'text/plain', 'ok\n');
      send(res, 404, 'text/plain', 'not found: try /progress, /metrics or /health\n');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'HTTP endpoint error');
      send(res, 500, 'text/plain', `error: ${(err as Error).message}\n`);
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function bigintSafe(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
