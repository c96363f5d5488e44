import type { GraphQLError } from 'graphql';
import type { entities } from 'misskey-js';
import type { UserLite } from '../upstream/entities.js';
import {
  type ChannelSpec,
  isAuthFailure,
  StreamAuthError,
  StreamCapacityError,
  StreamClosedError,
  type StreamEvent,
  type StreamHub,
  StreamLimitError,
  StreamRefusedError,
  StreamUnavailableError,
} from '../upstream/stream.js';
import { builder } from './builder.js';
import { ChatRoomInvitation } from './chat-invitations.js';
import { ChatMessage } from './chat-messages.js';
import { type ChatMessageShape, loadRoom } from './chat-rooms.js';
import { type Context, credentialFrom, type InitialContext, renewCaches } from './context.js';
import {
  badInput,
  ErrorCode,
  fromUpstream,
  gatewayError,
  malformedCredential,
  unauthenticated,
} from './errors.js';
import { assertId } from './ids.js';
import { User } from './users.js';

/**
 * Live chat over GraphQL subscriptions (graphql-ws on /graphql, or SSE through Yoga), fed by the
 * stream hub (src/upstream/stream.ts): one upstream socket per token, channels shared between
 * subscriptions, missed messages fetched after a reconnect, each message delivered once.
 *
 * Each event is resolved with fresh per-request caches (users, loaders): nothing loaded for one
 * event is served stale to a later one.
 */

// ---------------------------------------------------------------------------------------------
// Event types

interface CreatedEvent {
  kind: 'created';
  message: ChatMessageShape;
  replayed: boolean;
}

interface DeletedEvent {
  kind: 'deleted';
  messageId: string;
}

interface ReactionEvent {
  kind: 'reacted' | 'unreacted';
  messageId: string;
  reaction: string;
  /** Embedded in room events; absent in direct ones (Misskey sends no user there). */
  user: UserLite | null;
  /** Direct conversation: the two participants, and the author if the subscription saw it. */
  direct: { viewerId: string; otherId: string; authorId: string | null } | null;
}

type ChatEventPayload = CreatedEvent | DeletedEvent | ReactionEvent;

/** Ends a subscription with this error (resolved as the last event, then the stream completes). */
class Failure {
  constructor(readonly error: unknown) {}
}

const ChatMessageCreatedEvent = builder.objectRef<CreatedEvent>('ChatMessageCreatedEvent');
ChatMessageCreatedEvent.implement({
  description: 'A message was sent in the conversation or room (your own messages included).',
  fields: (t) => ({
    message: t.field({ type: ChatMessage, resolve: (event) => event.message }),
    replayed: t.exposeBoolean('replayed', {
      description:
        'True when the gateway fetched this message after reconnecting to Misskey (it was ' +
        'sent while the live stream was down), false when it arrived live.',
    }),
  }),
});

const ChatMessageDeletedEvent = builder.objectRef<DeletedEvent>('ChatMessageDeletedEvent');
ChatMessageDeletedEvent.implement({
  description: 'A message was deleted (by its author).',
  fields: (t) => ({
    messageId: t.exposeID('messageId'),
  }),
});

const ChatMessageReactedEvent = builder.objectRef<ReactionEvent>('ChatMessageReactedEvent');
const ChatMessageUnreactedEvent = builder.objectRef<ReactionEvent>('ChatMessageUnreactedEvent');

for (const [ref, description] of [
  [ChatMessageReactedEvent, 'Someone reacted to a message.'],
  [
    ChatMessageUnreactedEvent,
    'Someone removed their reaction (Misskey sends this even when there was none to remove).',
  ],
] as const) {
  ref.implement({
    description,
    fields: (t) => ({
      messageId: t.exposeID('messageId'),
      reaction: t.exposeString('reaction', {
        description: 'A Unicode emoji, or a custom emoji as ":name:".',
      }),
      user: t.field({
        type: User,
        nullable: true,
        description:
          'Who reacted. In a direct message only the recipient can react; null when the ' +
          'message is gone and its recipient cannot be told any more.',
        resolve: (event, _args, ctx) => reactorOf(event, ctx),
      }),
    }),
  });
}

const ChatEvent = builder.unionType('ChatEvent', {
  description: 'Something that happened in one conversation or room.',
  types: [
    ChatMessageCreatedEvent,
    ChatMessageDeletedEvent,
    ChatMessageReactedEvent,
    ChatMessageUnreactedEvent,
  ],
  resolveType: (event) => {
    switch (event.kind) {
      case 'created':
        return ChatMessageCreatedEvent;
      case 'deleted':
        return ChatMessageDeletedEvent;
      case 'reacted':
        return ChatMessageReactedEvent;
      case 'unreacted':
        return ChatMessageUnreactedEvent;
    }
  },
});

async function reactorOf(event: ReactionEvent, ctx: Context) {
  if (event.user) {
    ctx.users.remember(event.user);
    return event.user;
  }
  const direct = event.direct;
  if (!direct) {
    return null;
  }
  // In a direct message only the recipient can react (ChatService.react): the non-author.
  let authorId = direct.authorId;
  if (authorId === null) {
    try {
      const message = (await ctx.call('chat/messages/show', {
        messageId: event.messageId,
      })) as unknown as ChatMessageShape;
      authorId = message.fromUserId;
    } catch {
      return null;
    }
  }
  return ctx.users.byId(authorId === direct.viewerId ? direct.otherId : direct.viewerId);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

/** How many undelivered events one subscription may hold before it is ended as too slow. */
const MAX_QUEUED = 5_000;

builder.subscriptionFields((t) => ({
  chatMessageReceived: t.field({
    type: ChatMessage,
    description:
      'Every chat message sent to you, direct or in your rooms, as Misskey announces it ' +
      '(`newChatMessage` on its main stream): about 3 s after it was sent, and only while you ' +
      'have not read that conversation or room by then (Misskey skips messages already read, ' +
      'your own messages and rooms you muted). After an upstream reconnect, messages sent ' +
      'meanwhile are fetched through the timelines, which marks those conversations read.',
    authScopes: { authenticated: true },
    subscribe: (_root, _args, ctx) =>
      openStream<ChatMessageShape>(ctx, { channel: 'main' }, (event) =>
        event.type === 'newChatMessage' ? (event.body as ChatMessageShape) : null,
      ),
    resolve: (payload) => unwrap(payload),
  }),
  chatEvents: t.field({
    type: ChatEvent,
    description:
      'Messages created, deleted, reacted to and unreacted in one direct conversation ' +
      '(`userId`) or room (`roomId`), your own actions included. Give exactly one. After an ' +
      'upstream reconnect, messages sent meanwhile are fetched through the timeline (marking ' +
      'the conversation read) and delivered, each exactly once and in order; deletions and ' +
      'reactions made while the stream was down are not replayed.',
    authScopes: { authenticated: true },
    args: {
      userId: t.arg.id({
        required: false,
        description: 'The other user of a direct conversation.',
      }),
      roomId: t.arg.id({ required: false }),
    },
    subscribe: async (_root, args, ctx) => {
      if ((args.userId == null) === (args.roomId == null)) {
        throw badInput('Give exactly one of userId and roomId.');
      }
      const hub = hubOf(ctx);
      const viewerId = await identify(hub, ctx);
      let spec: ChannelSpec;
      if (args.userId != null) {
        const otherId = assertId(String(args.userId), 'userId');
        if (otherId === viewerId) {
          throw badInput('userId is your own id: a conversation needs another user.', {
            argument: 'userId',
          });
        }
        if (!(await ctx.users.byId(otherId))) {
          throw gatewayError(ErrorCode.NOT_FOUND, 'No such user.', { argument: 'userId' });
        }
        spec = { channel: 'chatUser', otherId };
      } else {
        const roomId = assertId(String(args.roomId), 'roomId');
        if (!(await loadRoom(ctx, roomId))) {
          throw gatewayError(ErrorCode.NOT_FOUND, 'No such chat room.', { argument: 'roomId' });
        }
        spec = { channel: 'chatRoom', roomId };
      }
      // A direct conversation: the other user, and the authors of its recent messages, to tell
      // who reacted (rooms embed the reactor).
      const direct =
        spec.channel === 'chatUser'
          ? { otherId: spec.otherId, authors: new Map<string, string>() }
          : null;
      return openStream<ChatEventPayload>(ctx, spec, (event) => {
        const body = event.body as Record<string, unknown> | string | null;
        switch (event.type) {
          case 'message': {
            const message = body as unknown as ChatMessageShape;
            if (direct !== null) {
              const { authors } = direct;
              authors.set(message.id, message.fromUserId);
              if (authors.size > 1_000) {
                authors.delete(authors.keys().next().value as string);
              }
            }
            return { kind: 'created', message, replayed: event.replayed };
          }
          case 'deleted':
            return typeof body === 'string' ? { kind: 'deleted', messageId: body } : null;
          case 'react':
          case 'unreact': {
            const reaction = body as { messageId?: string; reaction?: string; user?: UserLite };
            if (typeof reaction?.messageId !== 'string' || typeof reaction.reaction !== 'string') {
              return null;
            }
            return {
              kind: event.type === 'react' ? 'reacted' : 'unreacted',
              messageId: reaction.messageId,
              reaction: reaction.reaction,
              user: reaction.user ?? null,
              direct:
                direct === null
                  ? null
                  : {
                      viewerId,
                      otherId: direct.otherId,
                      authorId: direct.authors.get(reaction.messageId) ?? null,
                    },
            };
          }
          default:
            return null;
        }
      });
    },
    resolve: (payload) => unwrap(payload),
  }),
}));

// ---------------------------------------------------------------------------------------------
// Room invitations and the unread flag: Misskey announces both only live on `main`, so after an
// upstream reconnect they are re-read (`chat/rooms/invitations/inbox`, `i`).

type Invitation = entities.ChatRoomInvitation;

/** How many invitation ids a subscription remembers for deduplication. */
const SEEN_INVITATIONS = 1_000;
/** Misskey's list `limit` maximum, and how many pages an invitation catch-up reads at most. */
const INBOX_PAGE = 100;
const INBOX_PAGES = 10;
/** Attempts of a re-read after a reconnect (transient upstream errors), spaced RETRY_MS·n. */
const RESUME_ATTEMPTS = 3;
const RETRY_MS = 500;

/** The invitations received after `since` (an invitation id), or since `started` (epoch ms)
 *  when none was delivered yet: page after page (up to INBOX_PAGES), so a long gap loses none. */
async function inboxSince(
  client: Context['client'],
  token: string,
  since: string | null,
  started: number,
): Promise<Invitation[]> {
  const found = new Map<string, Invitation>();
  let cursor: Record<string, unknown> =
    since === null ? { sinceDate: started } : { sinceId: since };
  for (let page = 0; page < INBOX_PAGES; page++) {
    const items = (await client.call(
      'chat/rooms/invitations/inbox',
      { limit: INBOX_PAGE, ...cursor } as never,
      token,
    )) as Invitation[];
    for (const item of items) {
      found.set(item.id, item);
    }
    if (items.length < INBOX_PAGE) {
      break;
    }
    const ids = items.map((item) => item.id).sort();
    cursor = { sinceId: ids[ids.length - 1] };
  }
  return [...found.values()];
}

interface UnreadState {
  hasUnreadChatMessages: boolean;
}

const ChatUnreadState = builder.objectRef<UnreadState>('ChatUnreadState');
ChatUnreadState.implement({
  description: 'Whether you have unread chat messages (the badge of a chat client).',
  fields: (t) => ({
    hasUnreadChatMessages: t.exposeBoolean('hasUnreadChatMessages', {
      description: "Misskey's `hasUnreadChatMessages` of `i`.",
    }),
  }),
});

/** Runs `read` up to RESUME_ATTEMPTS times; an auth failure or the last error ends the
 *  subscription through `push`. */
function retrying<T>(
  read: () => Promise<T>,
  push: (value: Failure) => void,
  done: (value: T) => void,
): void {
  const attempt = (n: number) => {
    read().then(done, (error: unknown) => {
      if (isAuthFailure(error) || n >= RESUME_ATTEMPTS) {
        push(new Failure(streamError(error)));
      } else {
        setTimeout(() => attempt(n + 1), RETRY_MS * n).unref();
      }
    });
  };
  attempt(1);
}

builder.subscriptionFields((t) => ({
  chatRoomInvitationReceived: t.field({
    type: ChatRoomInvitation,
    description:
      'Every invitation to a chat room you receive, as Misskey announces it (a ' +
      '`chatRoomInvitationReceived` notification on its main stream, at once; none from users ' +
      'you mute). `room` (with its `owner`, the inviter) resolves like in queries. After an ' +
      'upstream reconnect, invitations received meanwhile are read from ' +
      '`chat/rooms/invitations/inbox` and delivered, each once (ones ignored meanwhile are not).',
    authScopes: { authenticated: true },
    subscribe: (_root, _args, ctx) => {
      const token = ctx.token as string;
      const started = Date.now();
      let last: string | null = null;
      const seen = new Set<string>();
      const accept = (invitation: Invitation): Invitation | null => {
        if (seen.has(invitation.id)) {
          return null;
        }
        seen.add(invitation.id);
        if (seen.size > SEEN_INVITATIONS) {
          seen.delete(seen.values().next().value as string);
        }
        if (last === null || invitation.id > last) {
          last = invitation.id;
        }
        return invitation;
      };
      return openStream<Invitation>(
        ctx,
        { channel: 'main' },
        (event) => {
          const body = event.body as { type?: unknown; invitation?: Invitation } | null;
          if (
            event.type !== 'notification' ||
            body?.type !== 'chatRoomInvitationReceived' ||
            typeof body.invitation?.id !== 'string'
          ) {
            return null;
          }
          return accept(body.invitation);
        },
        {
          missedMessages: false,
          resumed: (push) => {
            const since = last;
            retrying(
              () => inboxSince(ctx.client, token, since, started),
              push,
              (inbox) => {
                const newer = inbox
                  .filter((i) =>
                    since === null ? Date.parse(i.createdAt) >= started : i.id > since,
                  )
                  .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
                for (const invitation of newer) {
                  const value = accept(invitation);
                  if (value) {
                    push(value);
                  }
                }
              },
            );
          },
        },
      );
    },
    resolve: (payload) => unwrap(payload),
  }),
  chatUnreadChanged: t.field({
    type: ChatUnreadState,
    description:
      'Your unread-chat flag (`me.hasUnreadChatMessages`): the current value first, then each ' +
      'change, read from `i` when something may have changed it: Misskey announcing a message ' +
      'to you (`newChatMessage`, ~3 s after it was sent, if still unread), you reading chat ' +
      'through this gateway (`markAllChatMessagesRead`, a conversation or room timeline; ' +
      'Misskey announces no reads), and an upstream reconnect. Reads made elsewhere (another ' +
      'client) show at the next of these.',
    authScopes: { authenticated: true },
    subscribe: async (_root, _args, ctx) => {
      const hub = hubOf(ctx);
      const viewerId = await identify(hub, ctx);
      const token = ctx.token as string;
      const read = async () =>
        ((await ctx.client.call('i', {}, token)) as { hasUnreadChatMessages?: boolean })
          .hasUnreadChatMessages === true;
      let current: boolean;
      try {
        current = await read();
      } catch (error) {
        throw streamError(error);
      }
      /** Re-reads of `i` are numbered: the result of one started before the last applied is
       *  older information and is dropped. */
      let started = 0;
      let applied = 0;
      const reread = (push: (value: UnreadState | Failure) => void) => {
        const n = ++started;
        retrying(read, push, (value) => {
          if (n <= applied) {
            return;
          }
          applied = n;
          if (value !== current) {
            current = value;
            push({ hasUnreadChatMessages: value });
          }
        });
      };
      // `newChatMessage` does not mean the flag is set (`chat/read-all` clears the flag but not
      // the per-conversation marks Misskey checks before announcing): `i` is re-read instead.
      let push: ((value: UnreadState | Failure) => void) | null = null;
      let missed = false;
      return openStream<UnreadState>(
        ctx,
        { channel: 'main' },
        (event) => {
          // Replayed messages were fetched through timelines, which marks them read: the re-read
          // of `i` after the reconnect tells the outcome.
          if (event.type === 'newChatMessage' && !event.replayed) {
            if (push) {
              reread(push);
            } else {
              missed = true;
            }
          }
          return null;
        },
        {
          initial: [{ hasUnreadChatMessages: current }],
          missedMessages: false,
          resumed: reread,
          attach: (given) => {
            push = given;
            if (missed) {
              reread(given);
            }
            return hub.onChatRead(viewerId, () => reread(given));
          },
        },
      );
    },
    resolve: (payload) => unwrap(payload),
  }),
}));

function unwrap<T>(payload: T | Failure): T {
  if (payload instanceof Failure) {
    throw payload.error;
  }
  return payload;
}

function hubOf(ctx: Context): StreamHub {
  if (!ctx.stream) {
    throw gatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, 'Subscriptions are not available here.');
  }
  return ctx.stream;
}

/** The viewer's id, checking the token (cached by the hub while the token has a socket). */
async function identify(hub: StreamHub, ctx: Context): Promise<string> {
  if (ctx.token === null) {
    throw unauthenticated();
  }
  try {
    return await hub.whoami(ctx.token);
  } catch (error) {
    throw streamError(error);
  }
}

/** A client-safe GraphQL error for a hub failure. */
function streamError(error: unknown): GraphQLError | unknown {
  if (error instanceof StreamAuthError) {
    return gatewayError(ErrorCode.UNAUTHENTICATED, 'Misskey refused the token.', {
      misskey: { status: error.status, endpoint: 'streaming' },
    });
  }
  if (error instanceof StreamRefusedError) {
    return error.spec.channel === 'chatRoom'
      ? gatewayError(
          'CHAT_NOT_ROOM_MEMBER',
          "Misskey did not open the room's stream: you are not its owner, a member or a moderator.",
        )
      : gatewayError(
          ErrorCode.FORBIDDEN,
          `Misskey did not open the ${error.spec.channel} stream (does the token have the read:chat and read:account permissions?).`,
        );
  }
  if (error instanceof StreamLimitError) {
    return gatewayError(
      ErrorCode.OPERATION_LIMIT_EXCEEDED,
      `One token can watch at most ${error.max} different conversations and rooms at once (Misskey's channel limit per socket).`,
      { limit: { name: 'upstreamChannels', max: error.max } },
    );
  }
  if (error instanceof StreamCapacityError) {
    return gatewayError(
      ErrorCode.OPERATION_LIMIT_EXCEEDED,
      `The gateway already serves live chat for ${error.max} tokens; try again later.`,
      { limit: { name: 'streamTokens', max: error.max } },
    );
  }
  if (error instanceof StreamUnavailableError) {
    return gatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, "Misskey's live stream cannot be reached.");
  }
  if (error instanceof StreamClosedError) {
    return gatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, `Live stream ended: ${error.message}.`);
  }
  return fromUpstream(error);
}

/** What a subscription adds to a hub channel's events. */
interface StreamExtras<T> {
  /** Delivered first, before any event of the channel. */
  initial?: readonly T[];
  /** The channel is live again after an upstream reconnect (the hub has caught up what it
   *  can): re-read what Misskey announces only live and `push` what was missed. */
  resumed?: (push: (value: T | Failure) => void) => void;
  /** Called once the channel is connected, with `push`; returns what to do when the
   *  subscription ends. */
  attach?: (push: (value: T | Failure) => void) => () => void;
  /** False: this subscription does not need the messages missed during a reconnect (see
   *  `StreamListener.missedMessages`). */
  missedMessages?: boolean;
}

/** Shared by the subscriptions that add nothing (a default `{}` would be one object each). */
const NO_EXTRAS: StreamExtras<never> = {};

/**
 * Joins a hub channel and returns its events as an async iterator. Resolves once the upstream
 * channel is connected (so a refused channel is an error of the subscription itself). Before each
 * event is handed over, the context gets fresh caches.
 */
async function openStream<T>(
  ctx: Context,
  spec: ChannelSpec,
  map: (event: StreamEvent) => T | null,
  extras: StreamExtras<T> = NO_EXTRAS,
): Promise<AsyncIterableIterator<T | Failure>> {
  const hub = hubOf(ctx);
  await identify(hub, ctx);
  const token = ctx.token as string;
  const queue = new EventQueue<T | Failure>();
  for (const value of extras.initial ?? []) {
    queue.push(value);
  }
  const push = (value: T | Failure) => {
    if (queue.size >= MAX_QUEUED) {
      queue.push(
        new Failure(
          gatewayError('SUBSCRIPTION_TOO_SLOW', 'The client did not keep up with the events.'),
        ),
      );
      queue.end();
      subscription.close();
      return;
    }
    queue.push(value);
    if (value instanceof Failure) {
      queue.end();
      subscription.close();
    }
  };
  const subscription = hub.subscribe(token, spec, {
    event: (event) => {
      const value = map(event);
      if (value !== null) {
        push(value);
      }
    },
    error: (error) => {
      queue.push(new Failure(streamError(error)));
      queue.end();
    },
    resumed: extras.resumed ? () => extras.resumed?.(push) : undefined,
    missedMessages: extras.missedMessages ?? true,
  });
  queue.onReturn = () => subscription.close();
  try {
    await subscription.ready;
  } catch (error) {
    subscription.close();
    throw streamError(error);
  }
  // What the subscribe resolver loaded (the room, users, auth scopes) is not kept while the
  // subscription waits for events; each event starts from fresh caches too.
  renewCaches(ctx);
  queue.renew = () => renewCaches(ctx);
  const detach = extras.attach?.(push);
  if (detach) {
    queue.onReturn = () => {
      detach();
      subscription.close();
    };
  }
  return queue;
}

/** A pull-based queue: `return()` (the client unsubscribing) ends it at once, even while a
 *  `next()` is waiting. */
class EventQueue<T> implements AsyncIterableIterator<T> {
  readonly #items: T[] = [];
  #waiting: ((result: IteratorResult<T>) => void) | null = null;
  #ended = false;
  #returned = false;
  onReturn: (() => void) | null = null;
  /**
   * Drops what the previous event's execution cached: called when an event is handed out from
   * the queue and when the queue starts to wait. Renewed only right before an event, that state
   * would be held through the wait (seconds in a quiet room), outlive two scavenges and die in
   * the old generation: ~45 MB per 10 s at 5,000 events/s, and a major collection during delivery.
   */
  renew: (() => void) | null = null;

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    if (this.#ended) {
      return;
    }
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = null;
      waiting({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** No more items after those queued. */
  end(): void {
    this.#ended = true;
    if (this.#waiting && this.#items.length === 0) {
      const waiting = this.#waiting;
      this.#waiting = null;
      waiting({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length === 0 && this.#ended) {
      this.#finish();
      return Promise.resolve({ value: undefined, done: true });
    }
    this.renew?.();
    if (this.#items.length > 0) {
      return Promise.resolve({ value: this.#items.shift() as T, done: false });
    }
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.#ended = true;
    this.#items.length = 0;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.({ value: undefined, done: true });
    this.#finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<T>> {
    void this.return();
    return Promise.reject(error);
  }

  #finish(): void {
    if (!this.#returned) {
      this.#returned = true;
      this.onReturn?.();
    }
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

// ---------------------------------------------------------------------------------------------
// Websocket authentication (used by server.ts's graphql-ws options)

/**
 * graphql-ws authentication: a token in `connection_init` (`{ authorization: "Bearer …" }` or
 * `{ token }`) is checked with Misskey (`i`) at once, and an invalid one closes the socket with
 * 4403. GraphiQL sends its header editor with each operation instead (`extensions.headers`), so a
 * connection without a token is accepted, and each of its operations must carry a valid token or
 * the socket is closed with 4403 before anything runs.
 */
export function websocketAuth(hub: StreamHub) {
  const verify = async (token: string): Promise<'ok' | 'refused' | 'busy'> => {
    try {
      await hub.whoami(token);
      return 'ok';
    } catch (error) {
      if (isAuthFailure(error)) {
        return 'refused';
      }
      if (error instanceof StreamCapacityError) {
        return 'busy';
      }
      // Anything else closes the socket with 4500 and this reason.
      throw new Error('Misskey cannot be reached to check the token');
    }
  };
  return {
    /** False (close 4403) for a malformed or refused `connection_init` token; a token the
     *  stream hub has no room for closes the socket with 1013 (try again later). */
    onConnect: async (ctx: {
      connectionParams?: Readonly<Record<string, unknown>>;
      extra: { socket: { close(code: number, reason: string): void } };
    }) => {
      const credential = credentialFrom({ connectionParams: ctx.connectionParams ?? {} });
      if (credential.kind === 'malformed') {
        return false;
      }
      if (credential.kind === 'none') {
        return true;
      }
      const verdict = await verify(credential.token);
      if (verdict === 'busy') {
        ctx.extra.socket.close(1013, 'The gateway serves too many tokens; try again later');
      }
      return verdict === 'ok';
    },
    /** Null when the operation may run; else the socket has been closed with 4403. */
    onSubscribe: async (
      ctx: {
        connectionParams?: Readonly<Record<string, unknown>>;
        extra: { socket: { close(code: number, reason: string): void } };
      },
      params: { extensions?: Record<string, unknown> | null },
    ): Promise<GraphQLError[] | null> => {
      const credential = credentialFrom({
        connectionParams: ctx.connectionParams ?? {},
        params: params as InitialContext['params'],
      });
      if (credential.kind === 'token' && (await verify(credential.token)) === 'ok') {
        return null;
      }
      ctx.extra.socket.close(4403, 'Forbidden');
      return [credential.kind === 'malformed' ? malformedCredential() : unauthenticated()];
    },
  };
}
