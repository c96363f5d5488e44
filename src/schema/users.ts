import type { AnyUser, UserDetailed } from '../upstream/entities.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { badInput } from './errors.js';
import { assertId } from './ids.js';

/** How many users `Query.users` takes at once. */
export const MAX_USERS_PER_QUERY = 100;

export const OnlineStatus = builder.enumType('OnlineStatus', {
  values: {
    ONLINE: { value: 'online' },
    ACTIVE: { value: 'active' },
    OFFLINE: { value: 'offline' },
    UNKNOWN: { value: 'unknown' },
  } as const,
});

export const ChatScope = builder.enumType('ChatScope', {
  description: 'Who may start a chat with the user (Misskey `chatScope`; the default is MUTUAL).',
  values: {
    EVERYONE: { value: 'everyone' },
    FOLLOWING: { value: 'following', description: 'Users the user follows.' },
    FOLLOWERS: { value: 'followers', description: "The user's followers." },
    MUTUAL: { value: 'mutual', description: 'Users who follow and are followed by the user.' },
    NONE: { value: 'none' },
  } as const,
});

const Emoji = builder.simpleObject('CustomEmoji', {
  fields: (t) => ({ name: t.string(), url: t.string() }),
});

const BadgeRole = builder.simpleObject('BadgeRole', {
  fields: (t) => ({
    name: t.string(),
    iconUrl: t.string({ nullable: true }),
    displayOrder: t.int(),
  }),
});

const AvatarDecoration = builder.simpleObject('AvatarDecoration', {
  fields: (t) => ({
    id: t.id(),
    url: t.string(),
    angle: t.float({ nullable: true }),
    flipH: t.boolean({ nullable: true }),
    offsetX: t.float({ nullable: true }),
    offsetY: t.float({ nullable: true }),
  }),
});

/**
 * A Misskey user. The light fields come from wherever the user was embedded (no extra call);
 * the detail fields load `users/show` through the request's batched loader when needed.
 */
export const User = builder.objectRef<AnyUser>('User');

/** Resolves a detail field: reads the detailed form of the user, loading it at most once. */
function detail<T>(pick: (user: UserDetailed) => T) {
  return async (user: AnyUser, _args: unknown, ctx: Context): Promise<T | null> => {
    const detailed = await ctx.users.detailed(user);
    return detailed ? pick(detailed) : null;
  };
}

User.implement({
  description: 'A Misskey user (`UserLite`, with `UserDetailed` fields loaded on demand).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey user id.' }),
    username: t.exposeString('username'),
    host: t.exposeString('host', {
      nullable: true,
      description: 'The remote host, or null for a local user.',
    }),
    name: t.exposeString('name', { nullable: true, description: 'Display name.' }),
    avatarUrl: t.string({ nullable: true, resolve: (user) => user.avatarUrl }),
    avatarBlurhash: t.exposeString('avatarBlurhash', { nullable: true }),
    avatarDecorations: t.field({
      type: [AvatarDecoration],
      resolve: (user) =>
        (user.avatarDecorations ?? []).map((d) => ({
          id: d.id,
          url: d.url,
          angle: d.angle ?? null,
          flipH: d.flipH ?? null,
          offsetX: d.offsetX ?? null,
          offsetY: d.offsetY ?? null,
        })),
    }),
    isBot: t.boolean({ resolve: (user) => user.isBot ?? false }),
    isCat: t.boolean({ resolve: (user) => user.isCat ?? false }),
    emojis: t.field({
      type: [Emoji],
      description: 'Custom emojis used in the name.',
      resolve: (user) => Object.entries(user.emojis ?? {}).map(([name, url]) => ({ name, url })),
    }),
    onlineStatus: t.field({ type: OnlineStatus, resolve: (user) => user.onlineStatus }),
    badgeRoles: t.field({
      type: [BadgeRole],
      resolve: (user) =>
        (user.badgeRoles ?? []).map((r) => ({
          name: r.name,
          iconUrl: r.iconUrl,
          displayOrder: r.displayOrder,
        })),
    }),
    acct: t.string({
      description: 'username@host for a remote user, username for a local one.',
      resolve: (user) => (user.host ? `${user.username}@${user.host}` : user.username),
    }),
    // Detail fields (UserDetailed): loaded through users/show when the user came embedded.
    description: t.string({ nullable: true, resolve: detail((u) => u.description) }),
    location: t.string({ nullable: true, resolve: detail((u) => u.location) }),
    birthday: t.string({ nullable: true, resolve: detail((u) => u.birthday) }),
    createdAt: t.field({ type: 'DateTime', nullable: true, resolve: detail((u) => u.createdAt) }),
    updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: detail((u) => u.updatedAt) }),
    followersCount: t.int({
      nullable: true,
      description: 'Null when the user hides it.',
      resolve: detail((u) => u.followersCount ?? null),
    }),
    followingCount: t.int({ nullable: true, resolve: detail((u) => u.followingCount ?? null) }),
    notesCount: t.int({ nullable: true, resolve: detail((u) => u.notesCount) }),
    isLocked: t.boolean({ nullable: true, resolve: detail((u) => u.isLocked) }),
    isSuspended: t.boolean({ nullable: true, resolve: detail((u) => u.isSuspended) }),
    chatScope: t.field({
      type: ChatScope,
      nullable: true,
      resolve: detail((u) => (u as UserDetailed & { chatScope?: string }).chatScope as never),
    }),
    canChat: t.boolean({
      nullable: true,
      description: "Whether the user's role lets them chat (Misskey `canChat`).",
      resolve: detail((u) => (u as UserDetailed & { canChat?: boolean }).canChat ?? null),
    }),
    isFollowing: t.boolean({
      nullable: true,
      description: 'Whether the viewer follows this user; null without a token or for the viewer.',
      resolve: detail((u) => ('isFollowing' in u ? (u.isFollowing as boolean) : null)),
    }),
    isFollowed: t.boolean({
      nullable: true,
      description: 'Whether this user follows the viewer; null without a token or for the viewer.',
      resolve: detail((u) => ('isFollowed' in u ? (u.isFollowed as boolean) : null)),
    }),
    hasUnreadChatMessages: t.boolean({
      nullable: true,
      description:
        'Whether you have unread chat messages (`i.hasUnreadChatMessages`; live: the ' +
        '`chatUnreadChanged` subscription). Only on `me` (or your own user): null for others ' +
        'and without a token.',
      resolve: async (user, _args, ctx) => {
        if (ctx.token === null) {
          return null;
        }
        const me = (await ctx.viewer()) as { id: string; hasUnreadChatMessages?: boolean };
        return me.id === user.id ? (me.hasUnreadChatMessages ?? null) : null;
      },
    }),
  }),
});

builder.queryFields((t) => ({
  me: t.field({
    type: User,
    description: 'The user the token belongs to (Misskey `i`).',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, ctx) => (await ctx.viewer()) as AnyUser,
  }),
  user: t.field({
    type: User,
    nullable: true,
    description: 'A user by id, or a local user by username (`users/show`). Null when unknown.',
    args: {
      id: t.arg.id({ required: false }),
      username: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      if ((args.id == null) === (args.username == null)) {
        throw badInput('Give exactly one of id and username.');
      }
      if (args.id != null) {
        return ctx.users.byId(assertId(String(args.id), 'id'));
      }
      const username = String(args.username).replace(/^@/, '');
      if (!/^\w{1,64}$/.test(username)) {
        throw badInput('username must be 1 to 64 letters, digits or underscores.', {
          argument: 'username',
        });
      }
      try {
        const user = (await ctx.call('users/show', { username })) as unknown as UserDetailed;
        ctx.users.remember(user);
        return user;
      } catch (error) {
        if ((error as { extensions?: { code?: string } }).extensions?.code === 'NOT_FOUND') {
          return null;
        }
        throw error;
      }
    },
  }),
  users: t.field({
    type: [User],
    nullable: { list: false, items: true },
    description: `Users by id, in the order asked, null for unknown ids; one users/show call for up to ${MAX_USERS_PER_QUERY} ids.`,
    args: { ids: t.arg.idList({ required: true }) },
    resolve: async (_root, args, ctx) => {
      if (args.ids.length > MAX_USERS_PER_QUERY) {
        throw badInput(`ids takes at most ${MAX_USERS_PER_QUERY} ids.`, { argument: 'ids' });
      }
      const ids = args.ids.map((id) => assertId(String(id), 'ids'));
      return Promise.all(ids.map((id) => ctx.users.byId(id)));
    },
  }),
}));
