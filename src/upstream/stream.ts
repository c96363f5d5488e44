import WebSocket from 'ws';
import type { MisskeyClient } from './client.js';
import { isValidToken } from './credentials.js';
import { InvalidCredentialError, MisskeyApiError } from './errors.js';

/**
 * The stream hub: Misskey's `/streaming` websocket for the whole process, GraphQL-free.
 *
 * - One upstream socket per token, shared by every subscription of that token; channels are
 *   multiplexed on it with reference counts (many subscribers of one channel → one upstream
 *   channel, each event received once and fanned out). A channel is disconnected when its last
 *   subscriber leaves; the socket is closed when it has had no channel for `idleCloseMs`.
 * - Liveness by websocket ping/pong (Misskey ignores text pings). A socket that does not answer
 *   in time, or that drops, is reconnected with exponential backoff and jitter.
 * - After a reconnect, every channel that was connected before catches up: the messages it
 *   missed are fetched through the timelines with `sinceId` = the last message delivered (or
 *   `sinceDate` = when the channel first connected) and delivered in order before any live event
 *   that arrived meanwhile, all deduplicated by id, so a subscriber sees every message exactly
 *   once. Timelines mark the conversation read in Misskey (API.md §5.9): a catch-up does too.
 *   Deletions and reactions made during the gap are not replayed (Misskey keeps no log of them).
 *   Then each listener's `resumed()` is called, for the state it re-reads itself.
 * - Misskey never answers a refused connect (API.md §3.2): a channel without `connected` within
 *   `connectTimeoutMs`, on a socket that still answers pings, fails its subscribers with
 *   `StreamRefusedError`. A handshake refused with 401/403 fails them with `StreamAuthError`.
 */

export type ChannelSpec =
  | { channel: 'main' }
  | { channel: 'chatUser'; otherId: string }
  | { channel: 'chatRoom'; roomId: string };

/** One event of a channel, as Misskey sent it (`{type, body}` of a `channel` frame). */
export interface StreamEvent {
  /** `message`, `deleted`, `react`, `unreact` (chatUser/chatRoom); `newChatMessage`, … (main). */
  type: string;
  body: unknown;
  /** True when the message was fetched through a timeline after a reconnect. */
  replayed: boolean;
}

export interface StreamListener {
  event(event: StreamEvent): void;
  /** The subscription has ended with this error; no more events follow. */
  error(error: Error): void;
  /** The channel is live again after an upstream reconnect, and what the hub catches up itself
   *  (missed messages) has been delivered: state Misskey announces only live (invitations,
   *  unread flags) may be re-read now. Events that arrive meanwhile are delivered as usual. */
  resumed?(): void;
  /** False when the listener does not want the messages missed during a reconnect (a catch-up
   *  reads timelines, which marks conversations read): a channel whose listeners all say so
   *  skips it. Default true. */
  missedMessages?: boolean;
}

export interface StreamSubscription {
  /** Resolves when the upstream channel is connected; rejects when it cannot be. */
  readonly ready: Promise<void>;
  /** Leaves the channel (idempotent). */
  close(): void;
}

/** Misskey did not open the channel (no `connected` while the socket was alive). */
export class StreamRefusedError extends Error {
  constructor(readonly spec: ChannelSpec) {
    super(`Misskey did not open the ${spec.channel} channel`);
    this.name = 'StreamRefusedError';
  }
}

/** Misskey refused the token at the websocket handshake (or a catch-up call with 401). */
export class StreamAuthError extends Error {
  constructor(readonly status: number) {
    super(`Misskey refused the token on /streaming (HTTP ${status})`);
    this.name = 'StreamAuthError';
  }
}

/** A token already uses every channel one Misskey socket allows. */
export class StreamLimitError extends Error {
  constructor(readonly max: number) {
    super(`a token can have at most ${max} live channels (Misskey's limit per socket)`);
    this.name = 'StreamLimitError';
  }
}

/** The hub already serves `maxTokens` distinct tokens: a new one is refused. */
export class StreamCapacityError extends Error {
  constructor(readonly max: number) {
    super(`the gateway already serves live subscriptions of ${max} tokens`);
    this.name = 'StreamCapacityError';
  }
}

/** The upstream socket could not be (re)connected in time for a new subscription. */
export class StreamUnavailableError extends Error {
  constructor(readonly waitedMs: number) {
    super(`Misskey's /streaming could not be reached within ${waitedMs} ms`);
    this.name = 'StreamUnavailableError';
  }
}

/** The hub was closed (the gateway is shutting down). */
export class StreamClosedError extends Error {
  constructor(message = 'the stream hub is closed') {
    super(message);
    this.name = 'StreamClosedError';
  }
}

export interface StreamHubOptions {
  /** Interval of websocket pings to the upstream. Default 20 s. */
  pingIntervalMs?: number;
  /** A ping not answered within this is a dead socket. Default 10 s. */
  pongTimeoutMs?: number;
  /** Handshake timeout, and how long a channel may wait for `connected`. Default 5 s. */
  connectTimeoutMs?: number;
  /** A new subscription whose channel is not connected within this fails with
   *  StreamUnavailableError (Misskey unreachable). Default 20 s. */
  readyTimeoutMs?: number;
  /** A socket with no channel left is closed after this. Default 1 s. */
  idleCloseMs?: number;
  /** Reconnect delays: `min(maxMs, initialMs·2ⁿ)`, of which a random half is jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Misskey's `MAX_CHANNELS_PER_CONNECTION`. */
  maxChannelsPerSocket?: number;
  /** Distinct tokens served at once (each may hold one upstream socket). Default 10 000. */
  maxTokens?: number;
  /** Largest frame accepted from the upstream; a larger one closes that socket (1009), which is
   *  then reconnected like any dropped socket. Default 1 MiB. */
  maxFrameBytes?: number;
  /** Called on socket and channel lifecycle changes (logs, metrics). */
  onLog?: (event: string, details: Record<string, unknown>) => void;
}

/** Channel events that carry a message (deduplicated and caught up by id). */
const MESSAGE_EVENTS: Record<ChannelSpec['channel'], string> = {
  main: 'newChatMessage',
  chatUser: 'message',
  chatRoom: 'message',
};

/** Misskey's timeline `limit` maximum; a catch-up reads at most CATCH_UP_PAGES pages. */
const PAGE = 100;
const CATCH_UP_PAGES = 20;
/** How many recent message ids a channel remembers for deduplication. */
const SEEN_IDS = 2_000;

interface Message {
  id: string;
  createdAt?: string;
  fromUserId?: string;
  toUserId?: string | null;
  toRoomId?: string | null;
  toRoom?: { isMuted?: boolean } | null;
}

export function channelKey(spec: ChannelSpec): string {
  switch (spec.channel) {
    case 'main':
      return 'main';
    case 'chatUser':
      return `chatUser:${spec.otherId}`;
    case 'chatRoom':
      return `chatRoom:${spec.roomId}`;
  }
}

function paramsOf(spec: ChannelSpec): Record<string, string> {
  switch (spec.channel) {
    case 'main':
      return {};
    case 'chatUser':
      return { otherId: spec.otherId };
    case 'chatRoom':
      return { roomId: spec.roomId };
  }
}

interface Member {
  listener: StreamListener;
  resolve(): void;
  reject(error: Error): void;
  settled: boolean;
  timer: NodeJS.Timeout | null;
}

interface ChannelState {
  key: string;
  spec: ChannelSpec;
  members: Set<Member>;
  /** The connect id on the current socket (never reused on one socket). */
  connectId: string | null;
  connected: boolean;
  everConnected: boolean;
  /** Where a catch-up starts: the last message delivered, or when the channel first connected. */
  since: { id: string } | { date: number } | null;
  seen: Set<string>;
  /** Live events held back while a catch-up runs. */
  buffer: { type: string; body: unknown }[] | null;
  refuseTimer: NodeJS.Timeout | null;
  /** Bumped on every (re)connect: results of an older catch-up are ignored. */
  epoch: number;
}

type SocketState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

/** Everything of one token: its socket and its channels. */
class TokenStream {
  readonly channels = new Map<string, ChannelState>();
  readonly #byConnectId = new Map<string, ChannelState>();
  #ws: WebSocket | null = null;
  #state: SocketState = 'idle';
  #attempts = 0;
  #connectIds = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;
  #pongTimer: NodeJS.Timeout | null = null;
  #pongWaiters: ((alive: boolean) => void)[] = [];
  #me: Promise<string> | null = null;
  /** Operations of the token about to join a channel (see `hold`). */
  #holds = 0;
  /** Sockets opened for this token (1 + reconnects). */
  opened = 0;
  /** The token's user id once `me()` has resolved. */
  userId: string | null = null;

  constructor(
    readonly hub: StreamHub,
    readonly token: string,
  ) {}

  get state(): SocketState {
    return this.#state;
  }

  subscribe(spec: ChannelSpec, listener: StreamListener): StreamSubscription {
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
    const key = channelKey(spec);
    let channel = this.channels.get(key);
    let member!: Member;
    const ready = new Promise<void>((resolve, reject) => {
      member = { listener, resolve, reject, settled: false, timer: null };
    });
    ready.catch(() => {});
    if (!channel) {
      if (this.channels.size >= this.hub.options.maxChannelsPerSocket) {
        this.#settle(member, new StreamLimitError(this.hub.options.maxChannelsPerSocket));
        this.#scheduleIdleClose();
        return { ready, close: () => {} };
      }
      channel = {
        key,
        spec,
        members: new Set(),
        connectId: null,
        connected: false,
        everConnected: false,
        since: null,
        seen: new Set(),
        buffer: null,
        refuseTimer: null,
        epoch: 0,
      };
      this.channels.set(key, channel);
      channel.members.add(member);
      if (this.#state === 'open') {
        this.#sendConnect(channel);
      } else if (this.#state === 'idle') {
        this.#open();
      }
    } else {
      channel.members.add(member);
      if (channel.connected && channel.buffer === null) {
        this.#settle(member);
      }
    }
    const joined = channel;
    if (!member.settled) {
      const waited = this.hub.options.readyTimeoutMs;
      member.timer = setTimeout(() => {
        member.timer = null;
        this.#settle(member, new StreamUnavailableError(waited));
        this.#leave(joined, member);
      }, waited);
      member.timer.unref();
    }
    let closed = false;
    return {
      ready,
      close: () => {
        if (closed) {
          return;
        }
        closed = true;
        this.#leave(joined, member);
      },
    };
  }

  /** Forgets the token after `idleCloseMs` unless a channel joins meanwhile. */
  keepIdle(): void {
    this.#scheduleIdleClose();
  }

  /** Keeps the token (and its user id) until the function returned is called (idempotent). */
  hold(): () => void {
    this.#holds++;
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
    let held = true;
    return () => {
      if (held) {
        held = false;
        this.#holds--;
        this.#scheduleIdleClose();
      }
    };
  }

  /** The token's user id (`i`), fetched once per token stream. */
  me(): Promise<string> {
    this.#me ??= this.hub.client.call('i', {}, this.token).then(
      (me) => {
        this.userId = (me as { id: string }).id;
        return this.userId;
      },
      (error: unknown) => {
        this.#me = null;
        throw error;
      },
    );
    return this.#me;
  }

  #settle(member: Member, error?: Error): void {
    if (member.settled) {
      return;
    }
    member.settled = true;
    if (member.timer) {
      clearTimeout(member.timer);
      member.timer = null;
    }
    if (error) {
      member.reject(error);
    } else {
      member.resolve();
    }
  }

  #leave(channel: ChannelState, member: Member): void {
    if (!channel.members.delete(member)) {
      return;
    }
    this.#settle(member, new StreamClosedError('unsubscribed'));
    if (channel.members.size > 0 || this.channels.get(channel.key) !== channel) {
      return;
    }
    this.#removeChannel(channel, true);
  }

  #removeChannel(channel: ChannelState, disconnect: boolean): void {
    this.channels.delete(channel.key);
    if (channel.refuseTimer) {
      clearTimeout(channel.refuseTimer);
      channel.refuseTimer = null;
    }
    channel.epoch++;
    if (channel.connectId !== null) {
      this.#byConnectId.delete(channel.connectId);
      if (disconnect && this.#state === 'open') {
        this.#send({ type: 'disconnect', body: { id: channel.connectId } });
      }
      this.hub.log('channel disconnected', { channel: channel.key });
    }
    channel.connectId = null;
    this.#scheduleIdleClose();
  }

  /** Ends every subscription of a channel with an error. */
  #fail(channel: ChannelState, error: Error): void {
    const members = [...channel.members];
    channel.members.clear();
    if (this.channels.get(channel.key) === channel) {
      this.#removeChannel(channel, true);
    }
    for (const member of members) {
      this.#settle(member, error);
      member.listener.error(error);
    }
  }

  #scheduleIdleClose(): void {
    if (this.channels.size > 0 || this.#holds > 0 || this.#state === 'closed' || this.#idleTimer) {
      return;
    }
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.channels.size === 0 && this.#holds === 0) {
        this.shutdown(1000, 'idle');
      }
    }, this.hub.options.idleCloseMs);
    this.#idleTimer.unref();
  }

  #open(): void {
    this.#state = 'connecting';
    this.opened++;
    const ws = new WebSocket(this.hub.streamingUrl, {
      headers: { authorization: `Bearer ${this.token}` },
      handshakeTimeout: this.hub.options.connectTimeoutMs,
      perMessageDeflate: false,
      // Without it, ws buffers frames of up to 100 MiB from the upstream.
      maxPayload: this.hub.options.maxFrameBytes,
    });
    this.#ws = ws;
    const current = () => this.#ws === ws;
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      if (!current()) {
        return;
      }
      const status = res.statusCode ?? 0;
      this.hub.log('handshake refused', { status });
      if (status === 401 || status === 403) {
        this.#ws = null;
        this.#fatal(new StreamAuthError(status));
      } else {
        this.#dropped(ws);
      }
    });
    ws.on('open', () => {
      if (!current()) {
        return;
      }
      this.#state = 'open';
      this.hub.log('socket open', { attempt: this.#attempts });
      this.#startPing(ws);
      for (const channel of this.channels.values()) {
        this.#sendConnect(channel);
      }
      this.#scheduleIdleClose();
    });
    ws.on('message', (data, isBinary) => {
      if (current() && !isBinary) {
        this.#onFrame(data.toString());
      }
    });
    ws.on('pong', () => {
      if (!current()) {
        return;
      }
      if (this.#pongTimer) {
        clearTimeout(this.#pongTimer);
        this.#pongTimer = null;
      }
      for (const wake of this.#pongWaiters.splice(0)) {
        wake(true);
      }
    });
    ws.on('error', () => {
      // 'close' follows (or 'unexpected-response' was handled)
    });
    ws.on('close', () => {
      if (current()) {
        this.#dropped(ws);
      }
    });
  }

  #startPing(ws: WebSocket): void {
    this.#stopPing();
    this.#pingTimer = setInterval(() => {
      void this.#ping(ws);
    }, this.hub.options.pingIntervalMs);
    this.#pingTimer.unref();
  }

  #stopPing(): void {
    if (this.#pingTimer) {
      clearInterval(this.#pingTimer);
      this.#pingTimer = null;
    }
    if (this.#pongTimer) {
      clearTimeout(this.#pongTimer);
      this.#pongTimer = null;
    }
    for (const wake of this.#pongWaiters.splice(0)) {
      wake(false);
    }
  }

  /** Pings; resolves true on the pong, false (and terminates the socket) on a timeout. */
  #ping(ws: WebSocket): Promise<boolean> {
    if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve(false);
    }
    const answered = new Promise<boolean>((resolve) => this.#pongWaiters.push(resolve));
    if (!this.#pongTimer) {
      ws.ping();
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = null;
        this.hub.log('pong timeout', {});
        ws.terminate();
      }, this.hub.options.pongTimeoutMs);
      this.#pongTimer.unref();
    }
    return answered;
  }

  #send(frame: unknown): void {
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(frame));
    }
  }

  #sendConnect(channel: ChannelState): void {
    const ws = this.#ws;
    if (!ws) {
      return;
    }
    const id = `g${++this.#connectIds}`;
    channel.connectId = id;
    channel.connected = false;
    channel.epoch++;
    this.#byConnectId.set(id, channel);
    this.#send({
      type: 'connect',
      body: { channel: channel.spec.channel, id, params: paramsOf(channel.spec), pong: true },
    });
    if (channel.refuseTimer) {
      clearTimeout(channel.refuseTimer);
    }
    channel.refuseTimer = setTimeout(() => {
      channel.refuseTimer = null;
      // Only a socket that still answers pings can be said to have refused the channel.
      void this.#ping(ws).then((alive) => {
        if (alive && channel.connectId === id && !channel.connected) {
          this.hub.log('channel refused', { channel: channel.key });
          this.#fail(channel, new StreamRefusedError(channel.spec));
        }
      });
    }, this.hub.options.connectTimeoutMs);
    channel.refuseTimer.unref();
  }

  #onFrame(text: string): void {
    let frame: { type?: unknown; body?: unknown };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const body = frame.body as { id?: unknown; type?: unknown; body?: unknown } | null;
    if (typeof body?.id !== 'string') {
      return;
    }
    const channel = this.#byConnectId.get(body.id);
    if (!channel) {
      return;
    }
    if (frame.type === 'connected') {
      this.#onConnected(channel);
    } else if (frame.type === 'channel' && typeof body.type === 'string') {
      if (channel.buffer) {
        channel.buffer.push({ type: body.type, body: body.body ?? null });
      } else {
        this.#deliver(channel, body.type, body.body ?? null, false);
      }
    }
  }

  #onConnected(channel: ChannelState): void {
    if (channel.connected) {
      return;
    }
    if (channel.refuseTimer) {
      clearTimeout(channel.refuseTimer);
      channel.refuseTimer = null;
    }
    channel.connected = true;
    // A socket that connects channels is healthy: the next failure starts the backoff afresh.
    this.#attempts = 0;
    this.hub.log('channel connected', { channel: channel.key, again: channel.everConnected });
    if (!channel.everConnected) {
      channel.everConnected = true;
      channel.since ??= { date: Date.now() };
      for (const member of channel.members) {
        this.#settle(member);
      }
      return;
    }
    channel.buffer = [];
    const epoch = channel.epoch;
    const ws = this.#ws;
    const wanted = [...channel.members].some((m) => m.listener.missedMessages !== false);
    if (!wanted) {
      // Nobody wants the messages of the gap: a later catch-up starts from now.
      channel.since = { date: Date.now() };
    }
    (wanted ? this.#catchUp(channel) : Promise.resolve([])).then(
      (missed) => {
        if (channel.epoch !== epoch) {
          return;
        }
        const held = channel.buffer ?? [];
        channel.buffer = null;
        this.hub.log('caught up', { channel: channel.key, missed: missed.length });
        for (const message of missed) {
          this.#deliver(channel, MESSAGE_EVENTS[channel.spec.channel], message, true);
        }
        for (const event of held) {
          this.#deliver(channel, event.type, event.body, false);
        }
        for (const member of channel.members) {
          this.#settle(member);
        }
        for (const member of [...channel.members]) {
          member.listener.resumed?.();
        }
      },
      (error: unknown) => {
        if (channel.epoch !== epoch) {
          return;
        }
        channel.buffer = null;
        this.hub.log('catch-up failed', { channel: channel.key, error: (error as Error).name });
        if (error instanceof MisskeyApiError && error.status === 401) {
          this.#fatal(new StreamAuthError(401));
        } else if (error instanceof MisskeyApiError && error.status < 500 && error.status !== 429) {
          this.#fail(channel, error);
        } else {
          // Try again after a reconnect (the watermark has not moved).
          ws?.terminate();
        }
      },
    );
  }

  #deliver(channel: ChannelState, type: string, body: unknown, replayed: boolean): void {
    if (type === MESSAGE_EVENTS[channel.spec.channel]) {
      const id = (body as Message | null)?.id;
      if (typeof id === 'string') {
        if (channel.seen.has(id)) {
          return;
        }
        channel.seen.add(id);
        if (channel.seen.size > SEEN_IDS) {
          const oldest = channel.seen.values().next().value as string;
          channel.seen.delete(oldest);
        }
        const since = channel.since;
        if (!since || !('id' in since) || id > since.id) {
          channel.since = { id };
        }
      }
    }
    const event: StreamEvent = { type, body, replayed };
    for (const member of [...channel.members]) {
      member.listener.event(event);
    }
  }

  /** The messages a channel missed, oldest first. */
  async #catchUp(channel: ChannelState): Promise<Message[]> {
    const since = channel.since ?? { date: Date.now() };
    const cursor = 'id' in since ? { sinceId: since.id } : { sinceDate: since.date };
    const spec = channel.spec;
    if (spec.channel === 'chatUser') {
      return this.#timeline('chat/messages/user-timeline', { userId: spec.otherId }, cursor);
    }
    if (spec.channel === 'chatRoom') {
      return this.#timeline('chat/messages/room-timeline', { roomId: spec.roomId }, cursor);
    }
    // main: `newChatMessage` is every message sent to me; find the conversations and rooms with
    // newer messages through the history, then read what I was sent there.
    const me = await this.me();
    const [direct, rooms] = await Promise.all([
      this.#call('chat/history', { limit: PAGE, room: false }),
      this.#call('chat/history', { limit: PAGE, room: true }),
    ]);
    const newer = (m: Message) =>
      'id' in since ? m.id > since.id : Date.parse(m.createdAt ?? '') >= since.date;
    const reads: Promise<Message[]>[] = [];
    for (const latest of direct as Message[]) {
      if (newer(latest)) {
        const otherId = latest.fromUserId === me ? latest.toUserId : latest.fromUserId;
        if (otherId) {
          reads.push(this.#timeline('chat/messages/user-timeline', { userId: otherId }, cursor));
        }
      }
    }
    for (const latest of rooms as Message[]) {
      // Misskey sends no newChatMessage for a room I muted.
      if (newer(latest) && latest.toRoomId && latest.toRoom?.isMuted !== true) {
        reads.push(
          this.#timeline('chat/messages/room-timeline', { roomId: latest.toRoomId }, cursor),
        );
      }
    }
    const all = (await Promise.all(reads)).flat().filter((m) => m.fromUserId !== me);
    return all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async #timeline(
    endpoint: 'chat/messages/user-timeline' | 'chat/messages/room-timeline',
    target: Record<string, string>,
    cursor: { sinceId: string } | { sinceDate: number },
  ): Promise<Message[]> {
    const messages: Message[] = [];
    let page: Message[];
    let params: Record<string, unknown> = { ...target, ...cursor, limit: PAGE };
    for (let pages = 0; pages < CATCH_UP_PAGES; pages++) {
      page = ((await this.#call(endpoint, params)) as Message[])
        .slice()
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      messages.push(...page);
      if (page.length < PAGE) {
        break;
      }
      params = { ...target, sinceId: (page.at(-1) as Message).id, limit: PAGE };
    }
    return messages;
  }

  #call(endpoint: string, params: Record<string, unknown>): Promise<unknown> {
    return this.hub.client.call(endpoint as 'chat/history', params as never, this.token);
  }

  #dropped(ws: WebSocket): void {
    if (this.#ws !== ws) {
      return;
    }
    this.#ws = null;
    this.#stopPing();
    this.#byConnectId.clear();
    for (const channel of this.channels.values()) {
      channel.connected = false;
      channel.connectId = null;
      channel.buffer = null;
      channel.epoch++;
      if (channel.refuseTimer) {
        clearTimeout(channel.refuseTimer);
        channel.refuseTimer = null;
      }
    }
    if (this.#state === 'closed') {
      return;
    }
    if (this.channels.size === 0) {
      this.shutdown(1000, 'idle');
      return;
    }
    const { initialMs, maxMs } = this.hub.options.backoff;
    const base = Math.min(maxMs, initialMs * 2 ** this.#attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    this.#attempts++;
    this.#state = 'waiting';
    this.hub.log('socket dropped', { retryInMs: Math.round(delay), attempt: this.#attempts });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#state === 'waiting') {
        this.#open();
      }
    }, delay);
    this.#retryTimer.unref();
  }

  /** Ends every subscription of the token with `error` and forgets the token. */
  #fatal(error: Error): void {
    for (const channel of [...this.channels.values()]) {
      this.#fail(channel, error);
    }
    this.shutdown(1000, 'refused');
  }

  shutdown(code: number, reason: string, error?: Error): void {
    if (this.#state === 'closed') {
      return;
    }
    this.#state = 'closed';
    for (const timer of [this.#retryTimer, this.#idleTimer]) {
      if (timer) {
        clearTimeout(timer);
      }
    }
    this.#retryTimer = null;
    this.#idleTimer = null;
    this.#stopPing();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(code, reason);
        setTimeout(() => ws.terminate(), 1_000).unref();
      } else {
        ws.terminate();
      }
    }
    if (error) {
      for (const channel of [...this.channels.values()]) {
        this.#fail(channel, error);
      }
    }
    this.hub.forget(this);
    this.hub.log('socket closed', { reason });
  }
}

/** See the top of this file. */
export class StreamHub {
  readonly options: Required<Omit<StreamHubOptions, 'onLog' | 'backoff'>> & {
    backoff: { initialMs: number; maxMs: number };
  };
  readonly streamingUrl: string;
  readonly #streams = new Map<string, TokenStream>();
  readonly #onLog: StreamHubOptions['onLog'];
  #closed = false;
  /** Sockets opened since start, reconnects included. */
  #opened = 0;
  /** Listeners of `chatRead(userId)`, by user id. */
  readonly #chatReads = new Map<string, Set<() => void>>();

  constructor(
    readonly client: MisskeyClient,
    options: StreamHubOptions = {},
  ) {
    const url = new URL('/streaming', client.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.streamingUrl = url.toString();
    this.#onLog = options.onLog;
    this.options = {
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
      idleCloseMs: options.idleCloseMs ?? 1_000,
      maxChannelsPerSocket: options.maxChannelsPerSocket ?? 32,
      maxTokens: options.maxTokens ?? 10_000,
      maxFrameBytes: options.maxFrameBytes ?? 1024 * 1024,
      backoff: {
        initialMs: options.backoff?.initialMs ?? 250,
        maxMs: options.backoff?.maxMs ?? 15_000,
      },
    };
  }

  /** Joins a channel with `token`'s socket (opening it if needed). */
  subscribe(token: string, spec: ChannelSpec, listener: StreamListener): StreamSubscription {
    if (this.#closed || !isValidToken(token)) {
      const ready = Promise.reject(
        this.#closed ? new StreamClosedError() : new InvalidCredentialError('streaming'),
      );
      ready.catch(() => {});
      return { ready, close: () => {} };
    }
    const stream = this.#stream(token);
    if (!stream) {
      const ready = Promise.reject(new StreamCapacityError(this.options.maxTokens));
      ready.catch(() => {});
      return { ready, close: () => {} };
    }
    return stream.subscribe(spec, listener);
  }

  /**
   * Keeps `token` known while one of its operations waits for its turn to subscribe (its user id
   * is then not asked again, nor its socket closed and reopened); nothing for an unknown token.
   * Returns the function that ends the hold (idempotent).
   */
  hold(token: string): () => void {
    return this.#streams.get(token)?.hold() ?? (() => undefined);
  }

  /** The user id of a token (`i`, once per token while it has a socket); Misskey's errors as
   *  thrown by the upstream client. */
  whoami(token: string): Promise<string> {
    if (this.#closed) {
      return Promise.reject(new StreamClosedError());
    }
    if (!isValidToken(token)) {
      // Checked before a token stream is made for it (the client would refuse it too).
      return Promise.reject(new InvalidCredentialError('i'));
    }
    const stream = this.#stream(token);
    if (!stream) {
      return Promise.reject(new StreamCapacityError(this.options.maxTokens));
    }
    stream.keepIdle();
    return stream.me();
  }

  /** The token's stream; null when it is new and the hub is full (bounded whatever the
   *  callers send: one upstream socket per token, and each token costs memory). */
  #stream(token: string): TokenStream | null {
    let stream = this.#streams.get(token);
    if (!stream) {
      if (this.#streams.size >= this.options.maxTokens) {
        return null;
      }
      stream = new TokenStream(this, token);
      this.#streams.set(token, stream);
    }
    return stream;
  }

  /** Something this process did (e.g. `chat/read-all`) may have cleared `userId`'s unread chat:
   *  Misskey announces no reads on its stream, so the gateway tells its own listeners. */
  chatRead(userId: string): void {
    for (const listener of [...(this.#chatReads.get(userId) ?? [])]) {
      listener();
    }
  }

  /** The user id of a token the hub already knows (it has live subscriptions), without a call. */
  knownUser(token: string): string | null {
    return this.#streams.get(token)?.userId ?? null;
  }

  /** True when someone listens to `chatRead` (a caller may then skip finding the user id). */
  watchesChatReads(): boolean {
    return this.#chatReads.size > 0;
  }

  /** Calls `listener` on every `chatRead(userId)`; returns the function that stops it. */
  onChatRead(userId: string, listener: () => void): () => void {
    let set = this.#chatReads.get(userId);
    if (!set) {
      set = new Set();
      this.#chatReads.set(userId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#chatReads.get(userId);
      if (current?.delete(listener) && current.size === 0) {
        this.#chatReads.delete(userId);
      }
    };
  }

  /** Open (or reconnecting) upstream sockets: one per token with live subscriptions. */
  socketCount(): number {
    let count = 0;
    for (const stream of this.#streams.values()) {
      if (stream.state !== 'idle' && stream.state !== 'closed') {
        count++;
      }
    }
    return count;
  }

  /** Upstream channels in use (all tokens). */
  channelCount(): number {
    let count = 0;
    for (const stream of this.#streams.values()) {
      count += stream.channels.size;
    }
    return count;
  }

  /** Sockets opened since start, reconnects included. */
  openedCount(): number {
    let count = this.#opened;
    for (const stream of this.#streams.values()) {
      count += stream.opened;
    }
    return count;
  }

  /** @internal */
  forget(stream: TokenStream): void {
    this.#opened += stream.opened;
    stream.opened = 0;
    if (this.#streams.get(stream.token) === stream) {
      this.#streams.delete(stream.token);
    }
  }

  /** @internal */
  log(event: string, details: Record<string, unknown>): void {
    this.#onLog?.(event, details);
  }

  /** Ends every subscription with StreamClosedError and closes every socket. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const stream of [...this.#streams.values()]) {
      stream.shutdown(1001, 'gateway shutting down', new StreamClosedError());
    }
  }
}

/** True for the errors that mean "the token is not valid" (malformed, handshake or REST). */
export function isAuthFailure(error: unknown): boolean {
  return (
    error instanceof StreamAuthError ||
    error instanceof InvalidCredentialError ||
    (error instanceof MisskeyApiError && (error.status === 401 || error.status === 403))
  );
}
