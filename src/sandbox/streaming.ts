import type { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { Store } from './store.js';

export interface StreamingServer {
  /** Open upstream-facing sockets right now. */
  socketCount(): number;
  close(): Promise<void>;
}

/** Misskey's `/streaming` websocket. Not served yet: upgrades are refused. */
export function attachStreaming(options: {
  http: Server;
  store: Store;
  events: EventEmitter;
}): StreamingServer {
  options.http.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
  });
  return { socketCount: () => 0, close: async () => {} };
}
