import type { GraphQLError } from 'graphql';
import type { LimitsConfig } from '../config.js';
import { limitError } from '../engine/limits.js';
import { tokenKey } from '../upstream/credentials.js';

/** The websocket as this module needs it (`ws`'s WebSocket). */
interface Closable {
  close(code: number, reason: string): void;
}

interface SocketState {
  /** The token key of `connection_init`, or null for a socket without one. */
  tokenKey: string | null;
  /** Running operations: id → the token key each was counted against. */
  operations: Map<string, string>;
  idleTimer: NodeJS.Timeout | null;
}

/** Close code for a socket over a per-token cap (graphql-ws leaves 4400–4499 to servers). */
export const TOO_MANY_CLOSE_CODE = 4429;
/** Close code for a socket without a token that ran nothing for `wsIdleWithoutTokenMs`. */
export const IDLE_CLOSE_CODE = 4408;

type Caps = Pick<
  LimitsConfig,
  'wsMaxSocketsPerToken' | 'wsMaxSubscriptionsPerToken' | 'wsIdleWithoutTokenMs'
>;

/**
 * Shares of the websocket front per token: how many sockets a token may hold open, how many
 * operations it may run across them, and how long a socket without any token may sit idle. One
 * caller's sockets can then never crowd out the others' (the per-address connection cap of the
 * HTTP front bounds sockets without a token). Tokens are kept as short hashes, never as keys.
 */
export class WebSocketAdmission {
  readonly #caps: Caps;
  readonly #sockets = new Map<Closable, SocketState>();
  readonly #socketsPerToken = new Map<string, number>();
  readonly #operationsPerToken = new Map<string, number>();

  constructor(caps: Caps) {
    this.#caps = caps;
  }

  /** A socket was accepted: until a token arrives, it may only idle for a while. */
  opened(socket: Closable): void {
    const state: SocketState = { tokenKey: null, operations: new Map(), idleTimer: null };
    this.#sockets.set(socket, state);
    this.#startIdle(socket, state);
  }

  /** `connection_init` carried `token` (verified); false when the token holds too many sockets
   *  already (the socket is then closed with 4429). */
  connected(socket: Closable, token: string | null): boolean {
    const state = this.#sockets.get(socket);
    if (!state || token === null) {
      return true;
    }
    const key = tokenKey(token);
    const held = this.#socketsPerToken.get(key) ?? 0;
    if (held >= this.#caps.wsMaxSocketsPerToken) {
      socket.close(
        TOO_MANY_CLOSE_CODE,
        `A token may hold ${this.#caps.wsMaxSocketsPerToken} websockets at once`,
      );
      return false;
    }
    this.#socketsPerToken.set(key, held + 1);
    state.tokenKey = key;
    this.#stopIdle(state);
    return true;
  }

  /** An operation is about to run with `token`: null when it may, else the refusal. */
  start(socket: Closable, id: string, token: string): GraphQLError | null {
    const state = this.#sockets.get(socket);
    if (!state) {
      return null;
    }
    const key = tokenKey(token);
    const running = this.#operationsPerToken.get(key) ?? 0;
    const max = this.#caps.wsMaxSubscriptionsPerToken;
    if (running >= max) {
      return limitError(
        'subscriptionsPerToken',
        max,
        `A token may run ${max} websocket operations at once, across all its sockets.`,
        running + 1,
      );
    }
    this.#operationsPerToken.set(key, running + 1);
    state.operations.set(id, key);
    this.#stopIdle(state);
    return null;
  }

  /** The operation `id` ended (completed, or its socket closed). */
  end(socket: Closable, id: string): void {
    const state = this.#sockets.get(socket);
    const key = state?.operations.get(id);
    if (!state || key === undefined) {
      return;
    }
    state.operations.delete(id);
    decrement(this.#operationsPerToken, key);
    if (state.tokenKey === null && state.operations.size === 0) {
      this.#startIdle(socket, state);
    }
  }

  closed(socket: Closable): void {
    const state = this.#sockets.get(socket);
    if (!state) {
      return;
    }
    this.#sockets.delete(socket);
    this.#stopIdle(state);
    for (const id of [...state.operations.keys()]) {
      this.end(socket, id);
    }
    if (state.tokenKey !== null) {
      decrement(this.#socketsPerToken, state.tokenKey);
    }
  }

  /** Distinct tokens with open sockets or running operations (for tests and metrics). */
  get tokens(): number {
    return new Set([...this.#socketsPerToken.keys(), ...this.#operationsPerToken.keys()]).size;
  }

  #startIdle(socket: Closable, state: SocketState): void {
    this.#stopIdle(state);
    state.idleTimer = setTimeout(() => {
      state.idleTimer = null;
      socket.close(IDLE_CLOSE_CODE, 'Idle connection without a token');
    }, this.#caps.wsIdleWithoutTokenMs);
    state.idleTimer.unref();
  }

  #stopIdle(state: SocketState): void {
    if (state.idleTimer) {
      clearTimeout(state.idleTimer);
      state.idleTimer = null;
    }
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) {
    counts.set(key, left);
  } else {
    counts.delete(key);
  }
}
