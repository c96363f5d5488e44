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
export function attachStreaming(options: StreamingOptions): StreamingServer {
  const { http, store, events } = options;
  const pingIntervalMs = options.pingIntervalMs ?? 60_000;
  const wss = new WebSocketServer({ noServer: true, autoPong: false, perMessageDeflate: false });
  const connections = new Set<Connection>();
  /** Channels by the stream name they listen to. */
  const routes = new Map<string, Set<Channel>>();
  const accepted = new Map<string | null, number>();
  let serials = 0;
  let refuseStatus: number | null = null;
  let closed = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (closed) {
      socket.destroy();
      return;
    }
    if (refuseStatus !== null) {
      rawResponse(socket, refuseStatus, {});
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
      token = store.tokens.get(credential) ?? null;
      user = token ? (store.users.get(token.userId) ?? null) : null;
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
    wss.handleUpgrade(req, socket, head, (ws) => open(ws, user, token));
  };
  http.on('upgrade', onUpgrade);

  function open(ws: WebSocket, user: UserRow | null, token: TokenRow | null): void {
    const connection: Connection = {
      serial: ++serials,
      ws,
      user,
      token,
      channels: new Map(),
      stalled: false,
      lastPongAt: Date.now(),
    };
    connections.add(connection);
    const key = user?.id ?? null;
    accepted.set(key, (accepted.get(key) ?? 0) + 1);
    ws.on('message', (data, isBinary) => {
      if (!connection.stalled && !isBinary) {
        onMessage(connection, data);
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
      connections.delete(connection);
      for (const channel of connection.channels.values()) {
        unroute(channel);
      }
      connection.channels.clear();
    });
  }

  function send(connection: Connection, text: string): void {
    if (!connection.stalled && connection.ws.readyState === WebSocket.OPEN) {
      connection.ws.send(text);
    }
  }

  function onMessage(connection: Connection, data: RawData): void {
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
        connect(connection, payload);
        break;
      case 'disconnect':
        if (typeof payload.id === 'string') {
          disconnect(connection, payload.id);
        }
        break;
      case 'channel':
      case 'ch':
        channelMessage(connection, payload);
        break;
      case 'readNotification':
        if (connection.user && markNotificationsRead(store, connection.user.id)) {
          const event: StreamEvent = {
            stream: `mainStream:${connection.user.id}`,
            type: 'readAllNotifications',
            body: null,
          };
          events.emit('event', event);
        }
        break;
      default:
        break;
    }
  }

  function connect(connection: Connection, body: Record<string, unknown>): void {
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
      disconnect(connection, id);
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
      const room = typeof roomId === 'string' ? chatState(store).rooms.get(roomId) : undefined;
      if (
        typeof roomId !== 'string' ||
        !room ||
        !(isRoomMember(chatState(store), room, me.id) || isModerator(store, me))
      ) {
        return;
      }
      stream = `chatRoomStream:${roomId}`;
      channelParams = { roomId };
    }
    const channel: Channel = { id, kind: name, params: channelParams, stream, connection };
    connection.channels.set(id, channel);
    let set = routes.get(stream);
    if (!set) {
      set = new Set();
      routes.set(stream, set);
    }
    set.add(channel);
    if (pong === true) {
      send(connection, JSON.stringify({ type: 'connected', body: { id } }));
    }
  }

  function unroute(channel: Channel): void {
    const set = routes.get(channel.stream);
    if (set) {
      set.delete(channel);
      if (set.size === 0) {
        routes.delete(channel.stream);
      }
    }
  }

  function disconnect(connection: Connection, id: string): void {
    const channel = connection.channels.get(id);
    if (channel) {
      connection.channels.delete(id);
      unroute(channel);
    }
  }

  function channelMessage(connection: Connection, body: Record<string, unknown>): void {
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
      markChatRead(store, user.id, { otherId: channel.params.otherId as string });
    } else if (channel.kind === 'chatRoom') {
      markChatRead(store, user.id, { roomId: channel.params.roomId as string });
    }
  }

  const onEvent = (event: StreamEvent) => {
    // Payloads travel through Redis as JSON in Misskey: serialise once, drop undefined keys.
    const body = JSON.stringify(event.body ?? null);
    if (event.stream === 'broadcast') {
      const frame = `{"type":${JSON.stringify(event.type)},"body":${body}}`;
      for (const connection of connections) {
        send(connection, frame);
      }
      return;
    }
    const set = routes.get(event.stream);
    if (!set) {
      return;
    }
    const type = JSON.stringify(event.type);
    for (const channel of [...set]) {
      if (channel.kind === 'main' && event.type === 'notification') {
        // Misskey's main channel drops notifications from users the receiver mutes.
        const from = (event.body as { userId?: unknown } | null)?.userId;
        const me = channel.connection.user;
        if (typeof from === 'string' && me && store.isMuting(me.id, from)) {
          continue;
        }
      }
      send(
        channel.connection,
        `{"type":"channel","body":{"id":${JSON.stringify(channel.id)},"type":${type},"body":${body}}}`,
      );
    }
  };
  events.on('event', onEvent);

  const pinger = setInterval(() => {
    const now = Date.now();
    for (const connection of connections) {
      if (now - connection.lastPongAt > 2 * pingIntervalMs) {
        connection.ws.terminate();
      } else if (connection.ws.readyState === WebSocket.OPEN) {
        connection.ws.ping();
      }
    }
  }, pingIntervalMs);
  pinger.unref();

  const ofUser = (userId: string | null | undefined) =>
    [...connections].filter((c) => userId === undefined || (c.user?.id ?? null) === userId);

  return {
    socketCount: (userId) => ofUser(userId).length,
    acceptedCount: (userId) =>
      userId === undefined
        ? [...accepted.values()].reduce((a, b) => a + b, 0)
        : (accepted.get(userId) ?? 0),
    channelCount: (kind, userId) => {
      let count = 0;
      for (const connection of ofUser(userId)) {
        for (const channel of connection.channels.values()) {
          if (kind === undefined || channel.kind === kind) {
            count++;
          }
        }
      }
      return count;
    },
    sockets: (userId) =>
      ofUser(userId).map((connection) => ({
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
      })),
    drop: (userId) => {
      const dropped = ofUser(userId);
      for (const connection of dropped) {
        connection.ws.terminate();
      }
      return dropped.length;
    },
    stall: (userId, stalled = true) => {
      let changed = 0;
      for (const connection of ofUser(userId)) {
        if (connection.stalled !== stalled) {
          connection.stalled = stalled;
          connection.lastPongAt = Date.now();
          changed++;
        }
      }
      return changed;
    },
    refuseUpgrades: (status) => {
      refuseStatus = status;
    },
    close: async () => {
      closed = true;
      clearInterval(pinger);
      events.off('event', onEvent);
      http.off('upgrade', onUpgrade);
      for (const connection of connections) {
        connection.ws.terminate();
      }
      connections.clear();
      routes.clear();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
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
