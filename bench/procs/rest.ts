import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { loadConfig } from '../../src/config.js';
import { announceReady, serveCommands } from '../ipc.js';
import type { ServerReady } from '../protocol.js';
import { restCaller, WORKLOADS } from '../workloads.js';
import { statsHandlers } from './stats.js';

/**
 * S0 and S1 as a server: `POST /s0/<workload>` or `/s1/<workload>` with the caller's
 * `Authorization: Bearer` and the variables as the JSON body runs that REST client against the
 * upstream and answers `{ data }`, like the gateway would. Its upstream pool has the gateway's
 * default size (UPSTREAM_CONNECTIONS), so only the call pattern differs.
 */
async function main(): Promise<void> {
  const upstream = process.env.MISSKEY_URL;
  if (!upstream) {
    throw new Error('MISSKEY_URL is required');
  }
  const connections = loadConfig(process.env).upstreamConnections;
  const pool = new Pool(upstream, { connections, pipelining: 1, keepAliveTimeout: 4_000 });
  const call = restCaller(pool);
  const routes = new Map<string, (typeof WORKLOADS)[number]['rest']['S0']>();
  for (const workload of WORKLOADS) {
    for (const system of ['S0', 'S1'] as const) {
      const client = workload.rest[system];
      if (client) {
        routes.set(`/${system.toLowerCase()}/${workload.id}`, client);
      }
    }
  }

  const server = createServer((req, res) => {
    const client = req.method === 'POST' ? routes.get(req.url ?? '') : undefined;
    if (!client) {
      res.writeHead(404).end();
      return;
    }
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
    readJson(req)
      .then((variables) => client(call, token, variables))
      .then(
        (data) => {
          const body = JSON.stringify({ data });
          res.writeHead(200, {
            'content-type': 'application/json; charset=utf-8',
            'content-length': Buffer.byteLength(body),
          });
          res.end(body);
        },
        (error: unknown) => {
          const body = JSON.stringify({ errors: [{ message: String(error) }] });
          res.writeHead(502, { 'content-type': 'application/json; charset=utf-8' });
          res.end(body);
        },
      );
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  serveCommands(statsHandlers(() => pool.stats.connected));
  announceReady({ origin: `http://127.0.0.1:${port}` } satisfies ServerReady);
  const stop = () => {
    server.close();
    server.closeAllConnections();
    pool.destroy().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

main().catch((error: unknown) => {
  console.error('bench rest:', error);
  process.exit(1);
});
