import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpFront } from '../http/front.js';
import type { WebSocketFront } from '../websocket/front.js';
import type { Services } from './services.js';

/** Listens on `host:port` (0 = any free port) and resolves to the origin clients can use. */
export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown}:${address.port}`;
}

export interface ShutdownOptions {
  /** How long `/ready` says 503 before anything closes (default 0). */
  delayMs?: number;
  /** How long in-flight operations may run before their sockets are cut (default 10 000). */
  timeoutMs?: number;
}

/**
 * Graceful: `/ready` turns 503 (for `delayMs`), websockets close with 1001 (their subscriptions
 * complete), the listener closes, in-flight HTTP operations finish and their keep-alive sockets
 * close; whatever still runs after `timeoutMs` is cut. Then the upstream pool and Redis close.
 */
export async function shutdown(
  parts: { http: HttpFront; websockets: WebSocketFront; services: Services },
  options: ShutdownOptions,
): Promise<void> {
  const { http, websockets, services } = parts;
  const { logger, client } = services;
  http.drain();
  const started = Date.now();
  const bound = options.timeoutMs ?? 10_000;
  logger.info({ inFlightSockets: http.sockets.size }, 'shutting down');
  if ((options.delayMs ?? 0) > 0) {
    await delay(options.delayMs ?? 0);
  }
  await websockets.close();
  await services.stream.close();
  await closeHttp(http, bound, services);
  const left = Math.max(0, bound - (Date.now() - started));
  const drained = await Promise.race([
    client.close().then(() => true),
    delay(left).then(() => false),
  ]);
  if (!drained) {
    await client.destroy();
  }
  await services.redis?.close();
  // The spans of the last operations are sent before the process ends.
  await services.tracing?.shutdown();
  logger.info({ ms: Date.now() - started }, 'gateway closed');
}

/** Stops listening, lets in-flight requests finish, and cuts what still runs after `bound`. */
async function closeHttp(http: HttpFront, bound: number, services: Services): Promise<void> {
  const { server, sockets } = http;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // A keep-alive socket becomes idle once its in-flight request is answered.
  const idle = setInterval(() => server.closeIdleConnections(), 25);
  const cut = setTimeout(() => {
    services.logger.warn({ sockets: sockets.size }, 'shutdown bound reached: cutting sockets');
    for (const socket of sockets) {
      socket.destroy();
    }
  }, bound);
  await closed;
  clearInterval(idle);
  clearTimeout(cut);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
