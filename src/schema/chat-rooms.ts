import DataLoader from 'dataloader';
import {
  type FieldNode,
  GraphQLError,
  type GraphQLObjectType,
  type GraphQLResolveInfo,
  getArgumentValues,
  Kind,
  type SelectionSetNode,
} from 'graphql';
import type { entities } from 'misskey-js';
import { type ChatRead, chatReadKey, loadChatReads } from '../loaders/chat.js';
import type { EndpointName, EndpointParams } from '../upstream/client.js';
import type { DriveFile, UserLite } from '../upstream/entities.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import {
  badInput,
  ErrorCode,
  fromUpstream,
  gatewayError,
  registerInternalReason,
} from './errors.js';
import { assertId } from './ids.js';
import { type Connection, type ConnectionArgs, idConnection } from './pagination.js';
import { User } from './users.js';

export type ChatRoomEntity = entities.ChatRoom;
export type ChatRoomMembershipEntity = entities.ChatRoomMembership;

/**
 * A chat message in any of the three shapes Misskey sends (API.md §2): `ChatMessage` (history,
 * search, show: users and room embedded), `ChatMessageLiteFor1on1` (user-timeline, create-to-user:
 * no user objects at all) and `ChatMessageLiteForRoom` (room-timeline, create-to-room: `fromUser`
 * and reaction users embedded, no `toRoom`).
 */
export interface ChatMessageShape {
  id: string;
  createdAt: string;
  fromUserId: string;
  fromUser?: UserLite;
  toUserId?: string | null;
  toUser?: UserLite | null;
  toRoomId?: string | null;
  toRoom?: ChatRoomEntity | null;
  text?: string | null;
  fileId?: string | null;
  file?: DriveFile | null;
  isRead?: boolean;
  reactions: { reaction: string; user?: UserLite | null }[];
}

/** Misskey's length limits (`maxLength` counts code points, as Ajv does). */
export const ROOM_NAME_MAX = 256;
export const ROOM_DESCRIPTION_MAX = 1024;

// Misskey's HTTP-500 reasons of the room endpoints (recorded/errors/chat.rooms.*.json).
registerInternalReason(
  /^you are not a member of the room$/,
  'CHAT_NOT_ROOM_MEMBER',
  'You are not a member of this chat room.',
);
registerInternalReason(
  /^Could not find any entity of type "MiChatRoomMembership"/,
  'CHAT_NOT_ROOM_MEMBER',
  'You are not a member of this chat room (or it does not exist).',
);
registerInternalReason(
  /^Could not find any entity of type "MiChatRoomInvitation"/,
  'CHAT_NOT_INVITED',
  'You have no invitation to this chat room (or it does not exist).',
);
registerInternalReason(
  /^Could not find any entity of type "MiChatRoom"/,
  ErrorCode.NOT_FOUND,
  'No such chat room.',
);
registerInternalReason(/^room is full$/, 'CHAT_ROOM_FULL', 'The chat room has 50 members already.');
registerInternalReason(
  /^Cannot perform update query because update values are not defined/,
  ErrorCode.BAD_USER_INPUT,
  'Give a name or a description to update.',
);

// ---------------------------------------------------------------------------------------------
// Reads: one per-request loader for chat read calls, deduplicated and run with bounded concurrency.

/** Calls a chat read endpoint through the request's loader: the same read twice in one request is
 *  made once, and at most CHAT_READ_CONCURRENCY reads are in flight. Errors are GraphQL errors. */
export function chatRead<E extends EndpointName>(
  ctx: Context,
  endpoint: E,
  params: EndpointParams<E>,
): Promise<unknown> {
  return chatReads(ctx).load({ endpoint, params: params as Record<string, unknown> });
}

function chatReads(ctx: Context): DataLoader<ChatRead, unknown, string> {
  return ctx.loader(
    'chatReads',
    () =>
      new DataLoader<ChatRead, unknown, string>(
        async (reads) =>
          (await loadChatReads(ctx.client, ctx.token, reads, ctx.callOptions(ctx.token))).map(
            (result) => (result instanceof Error ? (fromUpstream(result) as Error) : result),
          ),
        { cacheKeyFn: chatReadKey },
      ),
  ) as DataLoader<ChatRead, unknown, string>;
}

/** Tells this process's `chatUnreadChanged` subscriptions that the request read chat (marking
 *  everything or a conversation read): Misskey announces no reads on its stream. */
export function announceChatRead(ctx: Context): void {
  const hub = ctx.stream;
  if (ctx.token === null || !hub?.watchesChatReads()) {
    return;
  }
  // The token of a live subscription is known to the hub; any other costs one `i` (per request).
  const known = hub.knownUser(ctx.token);
  if (known !== null) {
    hub.chatRead(known);
    return;
  }
  ctx.viewer().then(
    (me) => hub.chatRead(me.id),
    () => {},
  );
}

/** The Misskey error code behind a GraphQL error made by `fromUpstream`, if any. */
export function misskeyCodeOf(error: unknown): string | undefined {
  if (!(error instanceof GraphQLError)) {
    return undefined;
  }
  const misskey = error.extensions.misskey as { code?: string } | undefined;
  return misskey?.code;
}

/** The gateway code of a GraphQL error. */
export function codeOf(error: unknown): string | undefined {
  return error instanceof GraphQLError ? (error.extensions.code as string | undefined) : undefined;
}

/** The same error with another code and message, keeping Misskey's details. */
export function recode(error: unknown, code: string, message: string): GraphQLError {
  const extensions = error instanceof GraphQLError ? error.extensions : {};
  return gatewayError(code, message, { ...extensions, code });
}

/** A room by id through the request's loader (`chat/rooms/show`); null when Misskey does not show
 *  it to the caller (unknown room, or not owner, member, invitee or moderator). */
export async function loadRoom(ctx: Context, roomId: string): Promise<ChatRoomEntity | null> {
  try {
    return (await chatRead(ctx, 'chat/rooms/show', { roomId })) as ChatRoomEntity;
  } catch (error) {
    if (misskeyCodeOf(error) === 'NO_SUCH_ROOM') {
      return null;
    }
    throw error;
  }
}

/** Remembers a room a response embedded (and its owner), so a later lookup costs no call. */
export function rememberRoom(ctx: Context, room: ChatRoomEntity, replace = false): void {
  ctx.users.remember(room.owner);
  const key = { endpoint: 'chat/rooms/show', params: { roomId: room.id } } as ChatRead;
  if (replace) {
    chatReads(ctx).clear(key);
  }
  chatReads(ctx).prime(key, room);
}

/** Remembers every user and room embedded in messages (senders, recipients, reactors, rooms). */
export function rememberMessages(ctx: Context, messages: readonly ChatMessageShape[]): void {
  for (const message of messages) {
    ctx.users.remember(message.fromUser);
    ctx.users.remember(message.toUser);
    for (const reaction of message.reactions ?? []) {
      ctx.users.remember(reaction.user);
    }
    if (message.toRoom) {
      rememberRoom(ctx, message.toRoom);
    }
  }
}

/**
 * One page of a room's timeline (`chat/messages/room-timeline`), or null when Misskey refuses the
 * room (unknown, or the caller is not its owner or a member). Reading it marks the room read for
 * the caller. Messages get `toRoom` = `room` when given.
 */
export async function roomMessagesPage(
  ctx: Context,
  roomId: string,
  args: ConnectionArgs,
  room?: ChatRoomEntity,
): Promise<Connection<ChatMessageShape> | null> {
  try {
    return await idConnection(args, async (cursor) => {
      const page = (await chatRead(ctx, 'chat/messages/room-timeline', {
        roomId,
        ...cursor,
      })) as ChatMessageShape[];
      rememberMessages(ctx, page);
      announceChatRead(ctx);
      return room ? page.map((message) => ({ ...message, toRoom: message.toRoom ?? room })) : page;
    });
  } catch (error) {
    if (misskeyCodeOf(error) === 'NO_SUCH_ROOM') {
      return null;
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Types

const PREFETCHED = Symbol('prefetchedMessages');

/** A room as resolvers pass it: Misskey's `ChatRoom`, or (when `chatRoom(id)` selected only `id`
 *  and `messages`) an id whose messages page was already fetched. */
export type ChatRoomParent = ChatRoomEntity & {
  [PREFETCHED]?: Map<string, Connection<ChatMessageShape> | null>;
};

/** The messages page `chatRoom(id)` fetched for the response key `key`, if it did. */
export function prefetchedMessages(
  room: ChatRoomParent,
  key: string,
): Connection<ChatMessageShape> | null | undefined {
  const prefetched = room[PREFETCHED];
  return prefetched?.has(key) ? prefetched.get(key) : undefined;
}

export const ChatRoom = builder.objectRef<ChatRoomParent>('ChatRoom');
export const ChatRoomMembership = builder.objectRef<ChatRoomMembershipEntity>('ChatRoomMembership');

export const ChatRoomConnection = builder.connectionObject(
  { type: ChatRoom, name: 'ChatRoomConnection' },
  { name: 'ChatRoomEdge' },
);
export const ChatRoomMembershipConnection = builder.connectionObject(
  { type: ChatRoomMembership, name: 'ChatRoomMembershipConnection' },
  { name: 'ChatRoomMembershipEdge' },
);

ChatRoom.implement({
  description:
    'A Misskey chat room (group chat). Its owner is not a member row in Misskey: `owner` is the ' +
    'owner, `members` lists everyone who joined, without the owner.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey chat room id.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (room) => room.createdAt }),
    name: t.exposeString('name', { description: 'May be empty.' }),
    description: t.exposeString('description', { description: 'Empty when not set.' }),
    owner: t.field({
      type: User,
      description: 'The user who created the room (embedded by Misskey; no extra call).',
      resolve: (room, _args, ctx) => {
        ctx.users.remember(room.owner);
        return room.owner;
      },
    }),
    isMuted: t.boolean({
      description:
        'Whether the viewer muted this room (its membership flag). Always false for the owner, ' +
        'who has no membership, and for users who only see the room.',
      resolve: (room) => room.isMuted ?? false,
    }),
    invitationExists: t.boolean({
      description:
        'Whether the viewer has an invitation to this room (ignored invitations count). Always ' +
        'false for the owner.',
      resolve: (room) => room.invitationExists ?? false,
    }),
    members: t.connection(
      {
        type: ChatRoomMembership,
        nullable: true,
        description:
          'Users who joined the room, newest membership first; cursors are membership ids ' +
          '(`chat/rooms/members`). **The owner is not listed** (see `owner`). Null when the ' +
          'viewer is neither the owner nor a member (e.g. only invited).',
        resolve: async (room, args, ctx) => {
          try {
            return await idConnection(args, async (cursor) => {
              const page = (await chatRead(ctx, 'chat/rooms/members', {
                roomId: room.id,
                ...cursor,
              })) as ChatRoomMembershipEntity[];
              return page.map((membership) => {
                ctx.users.remember(membership.user);
                return membership.room ? membership : { ...membership, room };
              });
            });
          } catch (error) {
            if (misskeyCodeOf(error) === 'NO_SUCH_ROOM') {
              return null;
            }
            throw error;
          }
        },
      },
      ChatRoomMembershipConnection,
    ),
  }),
});

ChatRoomMembership.implement({
  description: "A user's membership of a chat room (owners have none).",
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey membership id (the cursor of its lists).' }),
    createdAt: t.field({
      type: 'DateTime',
      description: 'When the user joined.',
      resolve: (membership) => membership.createdAt,
    }),
    user: t.field({
      type: User,
      description: 'The member.',
      resolve: async (membership, _args, ctx) => {
        if (membership.user) {
          return membership.user;
        }
        const user = await ctx.users.byId(membership.userId);
        if (!user) {
          throw gatewayError(ErrorCode.NOT_FOUND, 'The member is not visible (suspended?).');
        }
        return user;
      },
    }),
    room: t.field({
      type: ChatRoom,
      resolve: async (membership, _args, ctx) => {
        const room = membership.room ?? (await loadRoom(ctx, membership.roomId));
        if (!room) {
          throw gatewayError(ErrorCode.NOT_FOUND, 'The room is no longer visible to you.');
        }
        return room;
      },
    }),
  }),
});

// ---------------------------------------------------------------------------------------------
// Queries

/**
 * When `chatRoom(id)` selects nothing but `id`, `__typename` and one `messages(...)`, the room
 * itself is not fetched: the messages page is, right away, and tells whether the room exists.
 * That keeps "open a room and read its timeline" at one upstream call. Returns the `messages`
 * field node, or null when the selection needs the room (or uses directives).
 */
function messagesOnlySelection(info: GraphQLResolveInfo): FieldNode | null {
  const fields: FieldNode[] = [];
  const visit = (set: SelectionSetNode | undefined): boolean => {
    for (const selection of set?.selections ?? []) {
      if (selection.directives && selection.directives.length > 0) {
        return false;
      }
      if (selection.kind === Kind.FIELD) {
        fields.push(selection);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        if (!visit(selection.selectionSet)) {
          return false;
        }
      } else {
        const fragment = info.fragments[selection.name.value];
        if (!fragment || !visit(fragment.selectionSet)) {
          return false;
        }
      }
    }
    return true;
  };
  for (const node of info.fieldNodes) {
    if (!visit(node.selectionSet)) {
      return null;
    }
  }
  if (fields.some((f) => !['id', '__typename', 'messages'].includes(f.name.value))) {
    return null;
  }
  const messages = fields.filter((f) => f.name.value === 'messages');
  const keys = new Set(messages.map((f) => (f.alias ?? f.name).value));
  return keys.size === 1 ? (messages[0] ?? null) : null;
}

async function chatRoomById(
  ctx: Context,
  id: string,
  info: GraphQLResolveInfo,
): Promise<ChatRoomParent | null> {
  const messagesNode = messagesOnlySelection(info);
  if (!messagesNode) {
    return loadRoom(ctx, id);
  }
  const field = (info.schema.getType('ChatRoom') as GraphQLObjectType).getFields().messages;
  if (!field) {
    return loadRoom(ctx, id);
  }
  const args = getArgumentValues(field, messagesNode, info.variableValues) as ConnectionArgs;
  const page = await roomMessagesPage(ctx, id, args);
  // Refused: unknown room, or visible without timeline access (an invitee). Only then ask.
  const room: ChatRoomParent | null = page ? ({ id } as ChatRoomParent) : await loadRoom(ctx, id);
  if (!room) {
    return null;
  }
  room[PREFETCHED] = new Map([[(messagesNode.alias ?? messagesNode.name).value, page]]);
  return room;
}

builder.queryFields((t) => ({
  chatRoom: t.field({
    type: ChatRoom,
    nullable: true,
    description:
      'A chat room by id (`chat/rooms/show`). Null when it does not exist or Misskey does not ' +
      'show it to you (only its owner, members and invitees see a room).',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx, info) => chatRoomById(ctx, assertId(String(args.id), 'id'), info),
  }),
  ownedChatRooms: t.connection(
    {
      type: ChatRoom,
      description:
        'Rooms you own, newest first (`chat/rooms/owned`); cursors are room ids. Rooms you ' +
        'joined are in `joinedChatRooms`.',
      authScopes: { authenticated: true },
      resolve: (_root, args, ctx) =>
        idConnection(args, async (cursor) => {
          const rooms = (await chatRead(ctx, 'chat/rooms/owned', cursor)) as ChatRoomEntity[];
          for (const room of rooms) {
            rememberRoom(ctx, room);
          }
          return rooms;
        }),
    },
    ChatRoomConnection,
  ),
  joinedChatRooms: t.connection(
    {
      type: ChatRoomMembership,
      description:
        'Your memberships, newest first (`chat/rooms/joining`); cursors are membership ids. ' +
        '**Rooms you own are not included** (Misskey gives owners no membership): see ' +
        '`ownedChatRooms`.',
      authScopes: { authenticated: true },
      resolve: (_root, args, ctx) =>
        idConnection(args, async (cursor) => {
          const page = (await chatRead(
            ctx,
            'chat/rooms/joining',
            cursor,
          )) as ChatRoomMembershipEntity[];
          for (const membership of page) {
            if (membership.room) {
              rememberRoom(ctx, membership.room);
            }
          }
          return page;
        }),
    },
    ChatRoomMembershipConnection,
  ),
}));

// ---------------------------------------------------------------------------------------------
// Mutations

function codePoints(text: string): number {
  return [...text].length;
}

function checkRoomText(name: string | null | undefined, description: string | null | undefined) {
  if (name != null && codePoints(name) > ROOM_NAME_MAX) {
    throw badInput(`name is at most ${ROOM_NAME_MAX} characters.`, { argument: 'name' });
  }
  if (description != null && codePoints(description) > ROOM_DESCRIPTION_MAX) {
    throw badInput(`description is at most ${ROOM_DESCRIPTION_MAX} characters.`, {
      argument: 'description',
    });
  }
}

/** A room after a change: fetched fresh (not from this request's cache). */
async function freshRoom(ctx: Context, roomId: string): Promise<ChatRoomEntity> {
  const room = await ctx.call('chat/rooms/show', { roomId });
  rememberRoom(ctx, room, true);
  return room;
}

/**
 * Misskey answers leave/mute by the owner like those of a stranger ("no membership"). Only when
 * that happens, look at the room: if the caller owns it, say so.
 */
async function explainNoMembership(
  ctx: Context,
  error: unknown,
  roomId: string,
  ownerCode: string,
  ownerMessage: string,
): Promise<unknown> {
  if (codeOf(error) !== 'CHAT_NOT_ROOM_MEMBER') {
    return error;
  }
  const [room, me] = await Promise.all([loadRoom(ctx, roomId), ctx.viewer()]);
  return room && room.ownerId === me.id ? recode(error, ownerCode, ownerMessage) : error;
}

const CreateChatRoomInput = builder.inputType('CreateChatRoomInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: `At most ${ROOM_NAME_MAX} characters.` }),
    description: t.string({ description: `At most ${ROOM_DESCRIPTION_MAX} characters.` }),
  }),
});

const UpdateChatRoomInput = builder.inputType('UpdateChatRoomInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string({ description: `At most ${ROOM_NAME_MAX} characters.` }),
    description: t.string({ description: `At most ${ROOM_DESCRIPTION_MAX} characters.` }),
  }),
});

builder.mutationFields((t) => ({
  createChatRoom: t.field({
    type: ChatRoom,
    description: 'Creates a room you own (`chat/rooms/create`; Misskey allows 10 a day).',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: CreateChatRoomInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      checkRoomText(input.name, input.description);
      const room = await ctx.call('chat/rooms/create', {
        name: input.name,
        ...(input.description != null ? { description: input.description } : {}),
      });
      rememberRoom(ctx, room, true);
      return room;
    },
  }),
  updateChatRoom: t.field({
    type: ChatRoom,
    description: 'Renames or re-describes a room you own (`chat/rooms/update`).',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: UpdateChatRoomInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const roomId = assertId(String(input.id), 'id');
      if (input.name == null && input.description == null) {
        throw badInput('Give a name or a description to update.');
      }
      checkRoomText(input.name, input.description);
      const room = await ctx.call('chat/rooms/update', {
        roomId,
        ...(input.name != null ? { name: input.name } : {}),
        ...(input.description != null ? { description: input.description } : {}),
      });
      rememberRoom(ctx, room, true);
      return room;
    },
  }),
  deleteChatRoom: t.id({
    description:
      'Deletes a room you own, with its messages, memberships and invitations ' +
      '(`chat/rooms/delete`). Returns the id of the deleted room.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const roomId = assertId(String(args.id), 'id');
      await ctx.call('chat/rooms/delete', { roomId });
      return roomId;
    },
  }),
  joinChatRoom: t.field({
    type: ChatRoom,
    description:
      'Joins a room you were invited to (an ignored invitation still works; `chat/rooms/join`) ' +
      'and returns it. CHAT_NOT_INVITED without an invitation, CHAT_ALREADY_MEMBER when you ' +
      'own or already joined it, CHAT_ROOM_FULL at 50 members.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const roomId = assertId(String(args.id), 'id');
      try {
        await ctx.call('chat/rooms/join', { roomId });
      } catch (error) {
        if (codeOf(error) !== 'CHAT_NOT_INVITED') {
          throw error;
        }
        // No invitation row. A room you can see without one is yours or one you joined.
        const room = await loadRoom(ctx, roomId);
        if (room && !room.invitationExists) {
          throw recode(error, 'CHAT_ALREADY_MEMBER', 'You already own or joined this room.');
        }
        throw error;
      }
      return freshRoom(ctx, roomId);
    },
  }),
  leaveChatRoom: t.id({
    description:
      'Leaves a room you joined (`chat/rooms/leave`); returns its id. The owner cannot leave ' +
      '(CHAT_OWNER_CANNOT_LEAVE): delete the room instead.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const roomId = assertId(String(args.id), 'id');
      try {
        await ctx.call('chat/rooms/leave', { roomId });
      } catch (error) {
        throw await explainNoMembership(
          ctx,
          error,
          roomId,
          'CHAT_OWNER_CANNOT_LEAVE',
          'The owner cannot leave its room; delete it instead.',
        );
      }
      return roomId;
    },
  }),
  setChatRoomMuted: t.field({
    type: ChatRoom,
    description:
      'Mutes or unmutes a room you joined (`chat/rooms/mute`): a muted room sends you no unread ' +
      'marks or new-message notifications. Returns the room. The owner cannot mute its room ' +
      '(CHAT_OWNER_CANNOT_MUTE).',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }), muted: t.arg.boolean({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const roomId = assertId(String(args.id), 'id');
      try {
        await ctx.call('chat/rooms/mute', { roomId, mute: args.muted });
      } catch (error) {
        throw await explainNoMembership(
          ctx,
          error,
          roomId,
          'CHAT_OWNER_CANNOT_MUTE',
          'The owner has no membership to mute.',
        );
      }
      return freshRoom(ctx, roomId);
    },
  }),
}));
