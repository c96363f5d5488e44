import type { Socket } from 'node:net';

/**
 * Deadlines of receiving a request (Node's defaults, 60 s for headers and 300 s in all, let a
 * byte-by-byte sender hold a socket for minutes). Node checks them every
 * `connectionsCheckingInterval` (default 30 s), so that runs at a quarter of the shorter one.
 */
export function httpTimeouts(options: {
  httpHeadersTimeoutMs?: number;
  httpRequestTimeoutMs?: number;
}): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  const requestTimeout = options.httpRequestTimeoutMs ?? 30_000;
  // Node refuses a headers timeout above the request timeout.
  const headersTimeout = Math.min(options.httpHeadersTimeoutMs ?? 10_000, requestTimeout);
  const connectionsCheckingInterval = Math.min(1_000, Math.max(25, headersTimeout / 4));
  return { headersTimeout, requestTimeout, connectionsCheckingInterval };
}

/**
 * Counts open TCP connections per client address (websocket upgrades included: they stay HTTP
 * connections); the returned check says whether a new socket fits under `cap` (0 = no cap).
 */
export function connectionCap(cap: number): (socket: Socket) => boolean {
  const open = new Map<string, number>();
  return (socket) => {
    if (cap <= 0) {
      return true;
    }
    const address = socket.remoteAddress ?? 'unknown';
    const count = open.get(address) ?? 0;
    if (count >= cap) {
      return false;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) {
        open.set(address, left);
      } else {
        open.delete(address);
      }
    });
    return true;
  };
}
