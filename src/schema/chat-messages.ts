import type { AnyUser } from '../upstream/entities.js';
import { builder } from './builder.js';
import {
  announceChatRead,
  type ChatMessageShape,
  ChatRoom,
  chatRead,
  loadRoom,
  misskeyCodeOf,
  prefetchedMessages,
  rememberMessages,
  roomMessagesPage,
} from './chat-rooms.js';
import type { Context } from './context.js';
import { DriveFile, uploadToDrive } from './drive.js';
import { badInput, ErrorCode, gatewayError, registerInternalReason } from './errors.js';
import { assertId } from './ids.js';
import { type Connection, type ConnectionArgs, idConnection } from './pagination.js';
import { User } from './users.js';

/** Misskey's `text` limit (`maxLength: 2000`, counted in code points). */
export const CHAT_TEXT_MAX = 2000;
/** Misskey's `limit` maximum for chat/history and chat/messages/search. */
const LIST_MAX = 100;
const SEARCH_QUERY_MAX = 256;

// Misskey's HTTP-500 reasons of the message endpoints (recorded/errors/chat.messages.*.json,
// ChatService.ts).
registerInternalReason(
  /^recipient is cannot chat \((none|followers|following|mutual)\)$/,
  'CHAT_SCOPE_DENIED',
  "The recipient's chat settings (chatScope) do not let you start a chat with them.",
);
registerInternalReason(
  /^recipient is cannot chat \(policy\)$/,
  'CHAT_RECIPIENT_UNAVAILABLE',
  "Chat is not available to the recipient's account (role policy).",
);
registerInternalReason(/^blocked$/, 'CHAT_BLOCKED', 'The recipient has blocked you.');
registerInternalReason(
  /^(invalid emoji|no such emoji)$/,
  'CHAT_INVALID_REACTION',
  'The reaction is not an emoji, or no custom emoji has that name.',
);
registerInternalReason(
  /^cannot react to own message$/,
  'CHAT_OWN_MESSAGE_REACTION',
  'You cannot react to your own message.',
);
registerInternalReason(
  /^cannot react to others message$/,
  'CHAT_NOT_PARTICIPANT',
  'Only the recipient of a direct message, or a member of the room, can react to it.',
);
registerInternalReason(
  /^too many reactions$/,
  'CHAT_TOO_MANY_REACTIONS',
  'The message has 100 reactions already.',
);
registerInternalReason(
  /^Could not find any entity of type "MiChatMessage"/,
  ErrorCode.NOT_FOUND,
  'No such chat message.',
);

// ---------------------------------------------------------------------------------------------
// Reactions: Misskey's rules (ChatService.react), checked before any call.

/** A local custom emoji, `:name:` (or `:name@.:`). */
const CUSTOM_EMOJI = /^:([\w+-]+)(?:@\.)?:$/;
/** A Unicode emoji: a flag, a keycap, or a pictograph with its variation selectors, skin tones,
 *  tag sequence and zero-width-joined parts (what Misskey's emoji regex finds). */
const UNICODE_EMOJI =
  /\p{Regional_Indicator}{2}|[#*0-9]\uFE0F?\u20E3|\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier})*(?:[\u{E0020}-\u{E007E}]+\u{E007F})?(?:\u200D\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier})*)*/u;

/** The reaction as Misskey stores it (`:name:`, or the first emoji without U+FE0F unless it is a
 *  ZWJ sequence); throws CHAT_INVALID_REACTION when Misskey would refuse it anyway. */
export function normalizeReaction(reaction: string): string {
  const custom = CUSTOM_EMOJI.exec(reaction);
  if (custom) {
    return `:${custom[1]}:`;
  }
  const emoji = UNICODE_EMOJI.exec(reaction)?.[0];
  if (!emoji) {
    throw gatewayError(
      'CHAT_INVALID_REACTION',
      'reaction must contain a Unicode emoji (e.g. "👍") or be a custom emoji as ":name:".',
      { argument: 'reaction' },
    );
  }
  return emoji.includes('\u200d') ? emoji : emoji.replace(/\ufe0f/g, '');
}

// ---------------------------------------------------------------------------------------------
// Types

/** A reaction as resolvers pass it: the reaction and whatever identifies its user. */
interface ReactionParent {
  reaction: string;
  user: AnyUser | null;
  userId: string | null;
}

const ChatMessageReaction = builder.objectRef<ReactionParent>('ChatMessageReaction').implement({
  description: 'One reaction to a chat message (the same user may react more than once).',
  fields: (t) => ({
    reaction: t.exposeString('reaction', {
      description: 'A Unicode emoji, or a custom emoji as ":name:".',
    }),
    user: t.field({
      type: User,
      nullable: true,
      description:
        'Who reacted. In a direct message only the recipient can react, so it is the recipient.',
      resolve: (reaction, _args, ctx) => {
        if (reaction.user) {
          ctx.users.remember(reaction.user);
          return reaction.user;
        }
        return reaction.userId ? ctx.users.byId(reaction.userId) : null;
      },
    }),
  }),
});

export const ChatMessage = builder.objectRef<ChatMessageShape>('ChatMessage');

export const ChatMessageConnection = builder.connectionObject(
  { type: ChatMessage, name: 'ChatMessageConnection' },
  { name: 'ChatMessageEdge' },
);

ChatMessage.implement({
  description: 'A chat message: a direct message to a user, or a message in a room.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey chat message id.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (message) => message.createdAt }),
    text: t.string({
      nullable: true,
      description: 'The text (trimmed by Misskey); null for a file-only message.',
      resolve: (message) => message.text ?? null,
    }),
    isRead: t.boolean({
      nullable: true,
      description:
        "Whether the viewer has read this message's conversation. Misskey tracks read state per " +
        'conversation, not per message, and reports it only in `chatHistory`; null elsewhere.',
      resolve: (message) => message.isRead ?? null,
    }),
    fromUserId: t.exposeID('fromUserId'),
    fromUser: t.field({
      type: User,
      nullable: true,
      description: 'The sender. Null when Misskey no longer shows the user (suspended).',
      resolve: (message, _args, ctx) => {
        if (message.fromUser) {
          ctx.users.remember(message.fromUser);
          return message.fromUser;
        }
        return ctx.users.byId(message.fromUserId);
      },
    }),
    toUserId: t.id({ nullable: true, resolve: (message) => message.toUserId ?? null }),
    toUser: t.field({
      type: User,
      nullable: true,
      description: 'The recipient of a direct message; null for a room message.',
      resolve: (message, _args, ctx) => {
        if (message.toUser) {
          ctx.users.remember(message.toUser);
          return message.toUser;
        }
        return message.toUserId ? ctx.users.byId(message.toUserId) : null;
      },
    }),
    toRoomId: t.id({ nullable: true, resolve: (message) => message.toRoomId ?? null }),
    toRoom: t.field({
      type: ChatRoom,
      nullable: true,
      description:
        'The room of a room message (null for a direct message, or when Misskey no longer ' +
        'shows you the room).',
      resolve: (message, _args, ctx) => {
        if (message.toRoom) {
          return message.toRoom;
        }
        return message.toRoomId ? loadRoom(ctx, message.toRoomId) : null;
      },
    }),
    file: t.field({
      type: DriveFile,
      nullable: true,
      description: 'The attached file, if any.',
      resolve: (message) => message.file ?? null,
    }),
    reactions: t.field({
      type: [ChatMessageReaction],
      description: 'Reactions in the order they were made.',
      resolve: (message) =>
        (message.reactions ?? []).map(
          (r): ReactionParent => ({
            reaction: r.reaction,
            user: r.user ?? null,
            // A direct message can only be reacted to by its recipient (ChatService.react).
            userId: r.user?.id ?? (message.toRoomId ? null : (message.toUserId ?? null)),
          }),
        ),
    }),
  }),
});

// ---------------------------------------------------------------------------------------------
// Reads

/** A message by id (`chat/messages/show`, through the request's loader); null when unknown or
 *  hidden (Misskey shows a room message only to its author). */
async function loadMessage(ctx: Context, messageId: string): Promise<ChatMessageShape | null> {
  try {
    const message = (await chatRead(ctx, 'chat/messages/show', { messageId })) as ChatMessageShape;
    rememberMessages(ctx, [message]);
    return message;
  } catch (error) {
    if (misskeyCodeOf(error) === 'NO_SUCH_MESSAGE') {
      return null;
    }
    throw error;
  }
}

/** One page of the direct conversation with `userId`, or null when the user does not exist.
 *  Reading it marks the conversation read. */
async function conversationPage(
  ctx: Context,
  userId: string,
  args: ConnectionArgs,
): Promise<Connection<ChatMessageShape> | null> {
  try {
    return await idConnection(args, async (cursor) => {
      const page = (await chatRead(ctx, 'chat/messages/user-timeline', {
        userId,
        ...cursor,
      })) as ChatMessageShape[];
      rememberMessages(ctx, page);
      announceChatRead(ctx);
      return page;
    });
  } catch (error) {
    if (misskeyCodeOf(error) === 'NO_SUCH_USER') {
      return null;
    }
    throw error;
  }
}

function listSize(value: number | null | undefined, fallback: number): number {
  const size = value ?? fallback;
  if (!Number.isInteger(size) || size < 1 || size > LIST_MAX) {
    throw badInput(`first must be a whole number from 1 to ${LIST_MAX}, got ${size}.`, {
      argument: 'first',
    });
  }
  return size;
}

const PAGING =
  'Edges are newest first: `first`/`after` page towards older messages, `last`/`before` ' +
  'towards newer ones; cursors are message ids.';
const MARKS_READ =
  '**Reading it marks the conversation read for you** (a Misskey side effect), so fetch it only ' +
  'when the user looks at it.';

export const ChatHistoryKind = builder.enumType('ChatHistoryKind', {
  values: {
    DIRECT: { description: 'Direct conversations with users.' },
    ROOM: { description: 'Rooms you own or joined.' },
  } as const,
});

builder.queryFields((t) => ({
  chatHistory: t.field({
    type: [ChatMessage],
    description:
      'Your conversations, most recent first: the latest message of each (`chat/history`). ' +
      'Each carries `isRead` for its conversation. Misskey gives no cursor, so this is a list.',
    authScopes: { authenticated: true },
    args: {
      kind: t.arg({ type: ChatHistoryKind, defaultValue: 'DIRECT' }),
      first: t.arg.int({ defaultValue: 10, description: `1 to ${LIST_MAX}.` }),
    },
    resolve: async (_root, args, ctx) => {
      const limit = listSize(args.first, 10);
      const messages = (await chatRead(ctx, 'chat/history', {
        limit,
        room: args.kind === 'ROOM',
      })) as ChatMessageShape[];
      rememberMessages(ctx, messages);
      return messages;
    },
  }),
  chatConversation: t.connection(
    {
      type: ChatMessage,
      nullable: true,
      description: `Your direct conversation with a user (\`chat/messages/user-timeline\`). ${PAGING} ${MARKS_READ} Null when the user does not exist.`,
      authScopes: { authenticated: true },
      args: { userId: t.arg.id({ required: true }) },
      resolve: (_root, args, ctx) =>
        conversationPage(ctx, assertId(String(args.userId), 'userId'), args),
    },
    ChatMessageConnection,
  ),
  searchChatMessages: t.field({
    type: [ChatMessage],
    description:
      'Messages whose text contains `query` (case-insensitive), newest first ' +
      '(`chat/messages/search`): in the conversation with `userId`, in the room `roomId`, or ' +
      'else in all your conversations and rooms. Misskey gives no cursor, so this is a list.',
    authScopes: { authenticated: true },
    args: {
      query: t.arg.string({ required: true, description: `1 to ${SEARCH_QUERY_MAX} characters.` }),
      userId: t.arg.id(),
      roomId: t.arg.id(),
      first: t.arg.int({ defaultValue: 10, description: `1 to ${LIST_MAX}.` }),
    },
    resolve: async (_root, args, ctx) => {
      const length = [...args.query].length;
      if (length < 1 || length > SEARCH_QUERY_MAX) {
        throw badInput(`query must be 1 to ${SEARCH_QUERY_MAX} characters.`, {
          argument: 'query',
        });
      }
      if (args.userId != null && args.roomId != null) {
        throw badInput('Give userId or roomId, not both.');
      }
      const limit = listSize(args.first, 10);
      const messages = (await chatRead(ctx, 'chat/messages/search', {
        query: args.query,
        limit,
        ...(args.userId != null ? { userId: assertId(String(args.userId), 'userId') } : {}),
        ...(args.roomId != null ? { roomId: assertId(String(args.roomId), 'roomId') } : {}),
      })) as ChatMessageShape[];
      rememberMessages(ctx, messages);
      return messages;
    },
  }),
  chatMessage: t.field({
    type: ChatMessage,
    nullable: true,
    description:
      'A message by id (`chat/messages/show`). Null when it does not exist or Misskey hides it: ' +
      'only the sender and the recipient of a direct message, and the author of a room message, ' +
      'may read it this way.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => loadMessage(ctx, assertId(String(args.id), 'id')),
  }),
}));

builder.objectField(User, 'chatMessages', (t) =>
  t.connection(
    {
      type: ChatMessage,
      nullable: true,
      description: `Your direct conversation with this user (\`chat/messages/user-timeline\`). ${PAGING} ${MARKS_READ}`,
      authScopes: { authenticated: true },
      resolve: (user, args, ctx) => conversationPage(ctx, user.id, args),
    },
    ChatMessageConnection,
  ),
);

builder.objectField(ChatRoom, 'messages', (t) =>
  t.connection(
    {
      type: ChatMessage,
      nullable: true,
      description: `The room's messages (\`chat/messages/room-timeline\`; senders and reactors come embedded, no extra call). ${PAGING} ${MARKS_READ} Null when you are neither the owner nor a member.`,
      resolve: (room, args, ctx, info) => {
        const prefetched = prefetchedMessages(room, String(info.path.key));
        return prefetched !== undefined ? prefetched : roomMessagesPage(ctx, room.id, args, room);
      },
    },
    ChatMessageConnection,
  ),
);

// ---------------------------------------------------------------------------------------------
// Mutations

const SendChatMessageInput = builder.inputType('SendChatMessageInput', {
  description: 'Exactly one of toUserId and toRoomId; text, a file (fileId or file) or both.',
  fields: (t) => ({
    toUserId: t.id({ description: 'Send a direct message to this user.' }),
    toRoomId: t.id({ description: 'Send to this room (you must own it or be a member).' }),
    text: t.string({
      description: `At most ${CHAT_TEXT_MAX} characters; Misskey trims it.`,
    }),
    fileId: t.id({ description: 'A file of your own drive to attach.' }),
    file: t.field({
      type: 'File',
      description:
        'A file to upload to your drive and attach (multipart request), instead of fileId: ' +
        'uploaded first (as uploadDriveFile), then sent.',
    }),
  }),
});

const ChatReactionPayload = builder
  .objectRef<{ messageId: string; reaction: string }>('ChatReactionPayload')
  .implement({
    description: 'The result of reacting to (or unreacting from) a message.',
    fields: (t) => ({
      messageId: t.exposeID('messageId'),
      reaction: t.exposeString('reaction', { description: 'The reaction as Misskey stores it.' }),
      message: t.field({
        type: ChatMessage,
        nullable: true,
        description:
          'The message with its reactions now (`chat/messages/show`, fetched only when ' +
          'selected). Null for room messages of others, which Misskey shows only to their author.',
        resolve: (payload, _args, ctx) => loadMessage(ctx, payload.messageId),
      }),
    }),
  });

function reactionArgs(id: string | number, reaction: string) {
  const messageId = assertId(String(id), 'id');
  return { messageId, reaction: normalizeReaction(reaction) };
}

builder.mutationFields((t) => ({
  sendChatMessage: t.field({
    type: ChatMessage,
    description:
      'Sends a message to a user (`chat/messages/create-to-user`) or a room ' +
      '(`chat/messages/create-to-room`) and returns it.',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: SendChatMessageInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      if ((input.toUserId == null) === (input.toRoomId == null)) {
        throw badInput('Give exactly one of toUserId and toRoomId.');
      }
      const text = input.text ?? null;
      let fileId = input.fileId != null ? assertId(String(input.fileId), 'fileId') : null;
      const file = input.file ?? null;
      if (file !== null && fileId !== null) {
        file.discard();
        throw badInput('Give fileId or file, not both.', { argument: 'file' });
      }
      if (text !== null && [...text].length > CHAT_TEXT_MAX) {
        file?.discard();
        throw badInput(`text is at most ${CHAT_TEXT_MAX} characters.`, { argument: 'text' });
      }
      if ((text === null || text.trim() === '') && fileId === null && file === null) {
        throw badInput('A message needs text (not only spaces), a file, or both.', {
          argument: 'text',
        });
      }
      if (file !== null) {
        fileId = (await uploadToDrive(ctx, file, {})).id;
      }
      const content = {
        ...(text !== null && text.trim() !== '' ? { text } : {}),
        ...(fileId !== null ? { fileId } : {}),
      };
      const message: ChatMessageShape =
        input.toUserId != null
          ? await ctx.call('chat/messages/create-to-user', {
              toUserId: assertId(String(input.toUserId), 'toUserId'),
              ...content,
            })
          : await ctx.call('chat/messages/create-to-room', {
              toRoomId: assertId(String(input.toRoomId), 'toRoomId'),
              ...content,
            });
      rememberMessages(ctx, [message]);
      return message;
    },
  }),
  deleteChatMessage: t.id({
    description:
      'Deletes a message you sent (`chat/messages/delete`); returns its id. NOT_FOUND when it ' +
      'does not exist or is not yours.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const messageId = assertId(String(args.id), 'id');
      await ctx.call('chat/messages/delete', { messageId });
      return messageId;
    },
  }),
  reactToChatMessage: t.field({
    type: ChatReactionPayload,
    description:
      'Adds a reaction (`chat/messages/react`): a Unicode emoji or a custom emoji ":name:". Only ' +
      'the recipient of a direct message, or a room member, may react, and not to their own ' +
      'message.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }), reaction: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const params = reactionArgs(args.id, args.reaction);
      await ctx.call('chat/messages/react', params);
      return { messageId: params.messageId, reaction: params.reaction };
    },
  }),
  unreactToChatMessage: t.field({
    type: ChatReactionPayload,
    description:
      'Removes every reaction of yours with this emoji from the message (`chat/messages/unreact`).',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }), reaction: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const params = reactionArgs(args.id, args.reaction);
      await ctx.call('chat/messages/unreact', params);
      return { messageId: params.messageId, reaction: params.reaction };
    },
  }),
  markAllChatMessagesRead: t.boolean({
    description:
      'Clears your global "unread chat messages" flag (`chat/read-all`; `me.hasUnreadChatMessages`). ' +
      "Misskey keeps each conversation's own read mark, so `chatHistory` may still show " +
      '`isRead: false` until the conversation is read. Returns true.',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, ctx) => {
      await ctx.call('chat/read-all', {});
      announceChatRead(ctx);
      return true;
    },
  }),
}));
