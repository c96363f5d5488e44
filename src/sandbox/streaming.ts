import type { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { chatState, isRoomMember, markChatRead, markNotificationsRead } from './chat/state.js';
import { isModerator } from './chat/support.js';
import type { StreamEvent } from './registry.js';
import type { Store, TokenRow, UserRow } from './store.js';

/** The channels the sandbox serves (API.md §3.3–3.5). */
export type ChannelKind = 'main' | 'chatUser' | 'chatRoom';

/** One open `/streaming` socket, as tests see it. */
export interface StreamingSocket {
  readonly serial: number;
  /** The user the socket was opened as, or null for an anonymous socket. */
  readonly userId: string | null;
  /** Connect ids and kinds of the channels open on it. */
  channels(): { id: string; kind: ChannelKind; params: Record<string, string> }[];
  /** True while stalled (see `StreamingServer.stall`). */
  readonly stalled: boolean;
}

export interface StreamingServer {
  /** Open sockets right now (of one user when given; `null` = anonymous ones). */
  socketCount(userId?: string | null): number;
  /** Sockets accepted since start (of one user when given): counts reconnects. */
  acceptedCount(userId?: string | null): number;
  /** Open channels right now, of one kind and/or of one user. */
  channelCount(kind?: ChannelKind, userId?: string): number;
  /** The open sockets (of one user when given). */
  sockets(userId?: string | null): StreamingSocket[];
  /** Destroys every socket of a user at once, without a close frame (as a network failure
   *  would). Returns how many were dropped. */
  drop(userId: string): number;
  /** A stalled socket stays open but delivers nothing: no events, no `connected`, no answer to
   *  websocket pings, and it ignores what the client sends. `stall(userId, false)` resumes
   *  (what was not delivered meanwhile is lost). Returns how many sockets changed. */
  stall(userId: string, stalled?: boolean): number;
  /** While set, new upgrades are refused with this HTTP status (e.g. 503); null accepts again. */
  refuseUpgrades(status: number | null): void;
  close(): Promise<void>;
}

export interface StreamingOptions {
  http: Server;
  store: Store;
  events: EventEmitter;
  /** Websocket-level ping interval (Misskey: 60 s); a socket whose last pong is older than
   *  twice this is terminated. */
  pingIntervalMs?: number;
}

/** Misskey's `MAX_CHANNELS_PER_CONNECTION`: further connects are ignored. */
export const MAX_CHANNELS_PER_CONNECTION = 32;

interface Channel {
  id: string;
  kind: ChannelKind;
  params: Record<string, string>;
  stream: string;
  connection: Connection;
}

interface Connection {
  serial: number;
  ws: WebSocket;
  user: UserRow | null;
  token: TokenRow | null;
  channels: Map<string, Channel>;
  stalled: boolean;
  lastPongAt: number;
}

const KINDS: Record<ChannelKind, { requireCredential: boolean; kind: string; shared: boolean }> = {
  main: { requireCredential: true, kind: 'read:account', shared: true },
  chatUser: { requireCredential: true, kind: 'read:chat', shared: false },
  chatRoom: { requireCredential: true, kind: 'read:chat', shared: false },
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isKind(value: unknown): value is ChannelKind {
  return typeof value === 'string' && Object.hasOwn(KINDS, value);
}

/**
 * Misskey's `/streaming` websocket (API.md §3, recordings in recorded/streaming/):
 * - handshake: `Authorization: Bearer` (wins) or `?i=`; an unknown token, or an app token
 *   without `read:account`, gets a raw `401` with `WWW-Authenticate`; a suspended user `403`;
 *   no token opens an anonymous socket. The path is not checked, like Misskey.
 * - frames `connect` / `disconnect` / `channel` (`ch`); `connected` only for `pong: true` and a
 *   successful init; every failure is silent (no error frames); non-JSON text is ignored.
 * - at most 32 channels per socket, `main` once per socket, a reused connect id replaces the
 *   old channel; room membership is checked only at connect.
 * - events published by endpoints on `sandbox.events` are routed by stream name (see
 *   `StreamEvent` in registry.ts); `broadcast` goes to every socket as a top-level frame.
 * - websocket pings every 60 s; a socket without a pong for 2 min is terminated.
 */
/** See the top of this file: Misskey's `/streaming` on the sandbox's HTTP server. */
class SandboxStreaming implements StreamingServer {
  readonly http: Server;
  readonly store: Store;
  readonly events: EventEmitter;
  readonly #pingIntervalMs: number;
  readonly #wss = new WebSocketServer({
    noServer: true,
    autoPong: false,
    perMessageDeflate: false,
  });
  readonly #connections = new Set<Connection>();
  /** Channels by the stream name they listen to. */
  readonly #routes = new Map<string, Set<Channel>>();
  readonly #accepted = new Map<string | null, number>();
  readonly #pinger: NodeJS.Timeout;
  #serials = 0;
  #refuseStatus: number | null = null;
  #closed = false;

  constructor(options: StreamingOptions) {
    this.http = options.http;
    this.store = options.store;
    this.events = options.events;
    this.#pingIntervalMs = options.pingIntervalMs ?? 60_000;
    this.http.on('upgrade', this.#onUpgrade);
    this.events.on('event', this.#onEvent);
    this.#pinger = setInterval(() => this.#ping(), this.#pingIntervalMs);
    this.#pinger.unref();
  }

  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (this.#refuseStatus !== null) {
      rawResponse(socket, this.#refuseStatus, {});
      return;
    }
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const authorization = req.headers.authorization;
    let credential: string | null = null;
    if (typeof authorization === 'string' && authorization.startsWith('Bearer ')) {
      credential = authorization.slice('Bearer '.length);
    } else {
      const i = url.searchParams.get('i');
      credential = i === null || i === '' ? null : i;
    }
    let user: UserRow | null = null;
    let token: TokenRow | null = null;
    if (credential !== null) {
      token = this.store.tokens.get(credential) ?? null;
      user = token ? (this.store.users.get(token.userId) ?? null) : null;
      if (
        !token ||
        !user ||
        (token.type === 'app' && !token.permissions.includes('read:account'))
      ) {
        rawResponse(socket, 401, {
          'WWW-Authenticate':
            'Bearer realm="Misskey", error="invalid_token", error_description="Failed to authenticate"',
        });
        return;
      }
      if (user.isSuspended) {
        rawResponse(socket, 403, {});
        return;
      }
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, user, token));
  };

  #open(ws: WebSocket, user: UserRow | null, token: TokenRow | null): void {
    const connection: Connection = {
      serial: ++this.#serials,
      ws,
      user,
      token,
      channels: new Map(),
      stalled: false,
      lastPongAt: Date.now(),
    };
    this.#connections.add(connection);
    const key = user?.id ?? null;
    this.#accepted.set(key, (this.#accepted.get(key) ?? 0) + 1);
    ws.on('message', (data, isBinary) => {
      if (!connection.stalled && !isBinary) {
        this.#onMessage(connection, data);
      }
    });
    ws.on('ping', (data) => {
      if (!connection.stalled && ws.readyState === WebSocket.OPEN) {
        ws.pong(data);
      }
    });
    ws.on('pong', () => {
      connection.lastPongAt = Date.now();
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      this.#connections.delete(connection);
      for (const channel of connection.channels.values()) {
        this.#unroute(channel);
      }
      connection.channels.clear();
    });
  }
  #send(connection: Connection, text: string): void {
    if (!connection.stalled && connection.ws.readyState === WebSocket.OPEN) {
      connection.ws.send(text);
    }
  }
  #onMessage(connection: Connection, data: RawData): void {
    let message: unknown;
    try {
      message = JSON.parse(data.toString());
    } catch {
      return; // the SDK's "h" / "ping" heartbeats and other non-JSON text: ignored
    }
    if (typeof message !== 'object' || message === null) {
      return;
    }
    const { type, body } = message as { type?: unknown; body?: unknown };
    const payload = isPlainObject(body) ? body : {};
    switch (type) {
      case 'connect':
        this.#connect(connection, payload);
        break;
      case 'disconnect':
        if (typeof payload.id === 'string') {
          this.#disconnect(connection, payload.id);
        }
        break;
      case 'channel':
      case 'ch':
        this.#channelMessage(connection, payload);
        break;
      case 'readNotification':
        if (connection.user && markNotificationsRead(this.store, connection.user.id)) {
          const event: StreamEvent = {
            stream: `mainStream:${connection.user.id}`,
            type: 'readAllNotifications',
            body: null,
          };
          this.events.emit('event', event);
        }
        break;
      default:
        break;
    }
  }
  #connect(connection: Connection, body: Record<string, unknown>): void {
    const { channel: name, id, params, pong } = body;
    // Misskey's stream/Connection.ts drops the request unless id and channel are strings, pong is
    // a boolean, null or absent, and params is absent or a JSON object (null and arrays are not);
    // an unknown channel name throws inside Misskey and is dropped just the same.
    if (
      !isKind(name) ||
      typeof id !== 'string' ||
      (pong !== undefined && pong !== null && typeof pong !== 'boolean') ||
      (params !== undefined && !isPlainObject(params))
    ) {
      return;
    }
    const spec = KINDS[name];
    const { user, token } = connection;
    if (spec.requireCredential && user === null) {
      return;
    }
    if (token && token.type === 'app' && !token.permissions.includes(spec.kind)) {
      return;
    }
    if (connection.channels.has(id)) {
      this.#disconnect(connection, id);
    }
    if (spec.shared && [...connection.channels.values()].some((c) => c.kind === name)) {
      return;
    }
    if (connection.channels.size >= MAX_CHANNELS_PER_CONNECTION) {
      return;
    }
    const given = (params ?? {}) as Record<string, unknown>;
    const me = user as UserRow;
    let stream: string;
    let channelParams: Record<string, string>;
    if (name === 'main') {
      stream = `mainStream:${me.id}`;
      channelParams = {};
    } else if (name === 'chatUser') {
      const otherId = given.otherId;
      if (typeof otherId !== 'string' || otherId === me.id) {
        return;
      }
      stream = `chatUserStream:${me.id}-${otherId}`;
      channelParams = { otherId };
    } else {
      const roomId = given.roomId;
      const room = typeof roomId === 'string' ? chatState(this.store).rooms.get(roomId) : undefined;
      if (
        typeof roomId !== 'string' ||
        !room ||
        !(isRoomMember(chatState(this.store), room, me.id) || isModerator(this.store, me))
      ) {
        return;
      }
      stream = `chatRoomStream:${roomId}`;
      channelParams = { roomId };
    }
    const channel: Channel = { id, kind: name, params: channelParams, stream, connection };
    connection.channels.set(id, channel);
    let set = this.#routes.get(stream);
    if (!set) {
      set = new Set();
      this.#routes.set(stream, set);
    }
    set.add(channel);
    if (pong === true) {
      this.#send(connection, JSON.stringify({ type: 'connected', body: { id } }));
    }
  }
  #unroute(channel: Channel): void {
    const set = this.#routes.get(channel.stream);
    if (set) {
      set.delete(channel);
      if (set.size === 0) {
        this.#routes.delete(channel.stream);
      }
    }
  }
  #disconnect(connection: Connection, id: string): void {
    const channel = connection.channels.get(id);
    if (channel) {
      connection.channels.delete(id);
      this.#unroute(channel);
    }
  }
  #channelMessage(connection: Connection, body: Record<string, unknown>): void {
    // Misskey requires `body` to be present (any JSON value), else the message is ignored.
    if (typeof body.id !== 'string' || typeof body.type !== 'string' || !('body' in body)) {
      return;
    }
    const channel = connection.channels.get(body.id);
    const user = connection.user;
    if (!channel || !user || body.type !== 'read') {
      return;
    }
    if (channel.kind === 'chatUser') {
      markChatRead(this.store, user.id, { otherId: channel.params.otherId as string });
    } else if (channel.kind === 'chatRoom') {
      markChatRead(this.store, user.id, { roomId: channel.params.roomId as string });
    }
  }
  readonly #onEvent = (event: StreamEvent): void => {
    // Payloads travel through Redis as JSON in Misskey: serialise once, drop undefined keys.
    const body = JSON.stringify(event.body ?? null);
    if (event.stream === 'broadcast') {
      const frame = `{"type":${JSON.stringify(event.type)},"body":${body}}`;
      for (const connection of this.#connections) {
        this.#send(connection, frame);
      }
      return;
    }
    const set = this.#routes.get(event.stream);
    if (!set) {
      return;
    }
    const type = JSON.stringify(event.type);
    for (const channel of [...set]) {
      if (channel.kind === 'main' && event.type === 'notification') {
        // Misskey's main channel drops notifications from users the receiver mutes.
        const from = (event.body as { userId?: unknown } | null)?.userId;
        const me = channel.connection.user;
        if (typeof from === 'string' && me && this.store.isMuting(me.id, from)) {
          continue;
        }
      }
      this.#send(
        channel.connection,
        `{"type":"channel","body":{"id":${JSON.stringify(channel.id)},"type":${type},"body":${body}}}`,
      );
    }
  };

  #ping(): void {
    const now = Date.now();
    for (const connection of this.#connections) {
      if (now - connection.lastPongAt > 2 * this.#pingIntervalMs) {
        connection.ws.terminate();
      } else if (connection.ws.readyState === WebSocket.OPEN) {
        connection.ws.ping();
      }
    }
  }

  #ofUser(userId: string | null | undefined): Connection[] {
    return [...this.#connections].filter(
      (c) => userId === undefined || (c.user?.id ?? null) === userId,
    );
  }

  socketCount(userId?: string | null): number {
    return this.#ofUser(userId).length;
  }

  acceptedCount(userId?: string | null): number {
    return userId === undefined
      ? [...this.#accepted.values()].reduce((a, b) => a + b, 0)
      : (this.#accepted.get(userId) ?? 0);
  }

  channelCount(kind?: ChannelKind, userId?: string | null): number {
    let count = 0;
    for (const connection of this.#ofUser(userId)) {
      for (const channel of connection.channels.values()) {
        if (kind === undefined || channel.kind === kind) {
          count++;
        }
      }
    }
    return count;
  }

  sockets(userId?: string | null): StreamingSocket[] {
    return this.#ofUser(userId).map((connection) => ({
      serial: connection.serial,
      userId: connection.user?.id ?? null,
      channels: () =>
        [...connection.channels.values()].map((c) => ({
          id: c.id,
          kind: c.kind,
          params: { ...c.params },
        })),
      get stalled() {
        return connection.stalled;
      },
    }));
  }

  drop(userId: string): number {
    const dropped = this.#ofUser(userId);
    for (const connection of dropped) {
      connection.ws.terminate();
    }
    return dropped.length;
  }

  stall(userId: string, stalled = true): number {
    let changed = 0;
    for (const connection of this.#ofUser(userId)) {
      if (connection.stalled !== stalled) {
        connection.stalled = stalled;
        connection.lastPongAt = Date.now();
        changed++;
      }
    }
    return changed;
  }

  refuseUpgrades(status: number | null): void {
    this.#refuseStatus = status;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pinger);
    this.events.off('event', this.#onEvent);
    this.http.off('upgrade', this.#onUpgrade);
    for (const connection of this.#connections) {
      connection.ws.terminate();
    }
    this.#connections.clear();
    this.#routes.clear();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

export function attachStreaming(options: StreamingOptions): StreamingServer {
  return new SandboxStreaming(options);
}

const STATUS_TEXT: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answers an upgrade with a plain HTTP response and closes the socket, as Misskey does. */
function rawResponse(socket: Duplex, status: number, headers: Record<string, string>): void {
  const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`];
  for (const [name, value] of Object.entries({
    ...headers,
    Connection: 'close',
    'Content-Length': '0',
  })) {
    lines.push(`${name}: ${value}`);
  }
  socket.once('error', () => {});
  socket.end(`${lines.join('\r\n')}\r\n\r\n`, () => socket.destroy());
}
