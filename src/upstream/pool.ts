import type { Dispatcher } from 'undici';
// undici's index also loads fetch, WebSocket, caches, mocks and interceptors: 4.8 MB of heap where
// the modules below take 1.8 MB. Only these are loaded, and `request` is given to every
// dispatcher as the index gives it.
import request from 'undici/lib/api/api-request.js';
import Client from 'undici/lib/dispatcher/client.js';
import DispatcherBase from 'undici/lib/dispatcher/dispatcher.js';
import Pool from 'undici/lib/dispatcher/pool.js';

Object.assign(DispatcherBase.prototype, { request });

/**
 * The keep-alive pool to the upstream, with one defect of undici (7.x) worked around.
 *
 * When undici refuses a request synchronously (an invalid header value, path or method: its
 * `Request` constructor throws), `Client.dispatch` reports the error to the handler and returns
 * `false`. `Pool` reads `false` as "this client is busy", marks it as needing a drain and stops
 * handing it requests until it emits `drain`. But the client never got busy, so it never emits
 * `drain`: it is out of the pool for good. After `connections` such refusals no client is left,
 * every request waits in the pool's queue forever, and an abort signal cannot end it (undici only
 * aborts requests that reached a socket).
 *
 * `RefusalSafeClient` answers "not busy" when a dispatch was refused, so a refusal costs the
 * caller its request and nothing else. The client also validates everything it sends (see
 * `client.ts`), so a refusal should never happen in the first place.
 */
class RefusalSafeClient extends Client {
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) {
    const queued = this.stats.size;
    const accepted = super.dispatch(options, handler);
    // A request that was taken is in the client's queue; a refused one never got there.
    return accepted || this.stats.size <= queued;
  }
}

export interface PoolOptions {
  connections: number;
  keepAliveTimeoutMs: number;
  timeoutMs: number;
}

export function createPool(origin: string, options: PoolOptions): Pool {
  return new Pool(origin, {
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    keepAliveMaxTimeout: 60_000,
    connectTimeout: Math.min(options.timeoutMs, 5_000),
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    factory: (url, clientOptions) => new RefusalSafeClient(url, clientOptions),
  });
}
