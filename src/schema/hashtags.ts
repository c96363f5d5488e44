import DataLoader from 'dataloader';
import { GraphQLError } from 'graphql';
import type { entities } from 'misskey-js';
import type { UserDetailed } from '../upstream/entities.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { badInput } from './errors.js';
import { User } from './users.js';

type HashtagEntity = entities.Hashtag;

interface TrendItem {
  tag: string;
  chart: number[];
  usersCount: number;
}

/** Misskey's `limit` range for every hashtag endpoint. */
const MAX_FIRST = 100;

function pageSize(value: number, argument: string): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_FIRST) {
    throw badInput(`${argument} must be a whole number from 1 to ${MAX_FIRST}, got ${value}.`, {
      argument,
    });
  }
  return value;
}

function offsetOf(value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw badInput(`offset must be a whole number from 0, got ${value}.`, { argument: 'offset' });
  }
  return value;
}

/** A tag as users type it: without `#`, never empty. */
function tagOf(value: string): string {
  const tag = value.trim().replace(/^#/, '');
  if (tag === '') {
    throw badInput('tag must not be empty.', { argument: 'tag' });
  }
  return tag;
}

const sortValues = {} as Record<string, { value: string; description: string }>;
for (const [kind, what] of [
  ['mentioned', 'users who posted it'],
  ['attached', 'users with it in their profile'],
] as const) {
  for (const [origin, which] of [
    ['', ''],
    ['Local', 'local '],
    ['Remote', 'remote '],
  ] as const) {
    const name = `${kind.toUpperCase()}_${origin ? `${origin.toUpperCase()}_` : ''}USERS`;
    const field = `${kind}${origin}Users`;
    sortValues[`${name}_DESC`] = {
      value: `+${field}`,
      description: `Most ${which}${what} first (Misskey \`+${field}\`).`,
    };
    sortValues[`${name}_ASC`] = {
      value: `-${field}`,
      description: `Fewest ${which}${what} first (Misskey \`-${field}\`).`,
    };
  }
}

const HashtagSort = builder.enumType('HashtagSort', {
  description:
    "The 12 orders of Misskey's `hashtags/list`: by the number of (local / remote) users who " +
    'posted the tag (mentioned) or have it in their profile (attached).',
  values: sortValues,
});

const HashtagUserSort = builder.enumType('HashtagUserSort', {
  values: {
    FOLLOWERS_DESC: { value: '+follower', description: 'Most followers first.' },
    FOLLOWERS_ASC: { value: '-follower', description: 'Fewest followers first.' },
    CREATED_DESC: { value: '+createdAt', description: 'Newest accounts first.' },
    CREATED_ASC: { value: '-createdAt', description: 'Oldest accounts first.' },
    UPDATED_DESC: { value: '+updatedAt', description: 'Most recently updated first.' },
    UPDATED_ASC: { value: '-updatedAt', description: 'Least recently updated first.' },
  } as const,
});

const UserOrigin = builder.enumType('UserOrigin', {
  values: {
    LOCAL: { value: 'local', description: 'Users of this server (Misskey default).' },
    REMOTE: { value: 'remote', description: 'Users of other servers.' },
    COMBINED: { value: 'combined', description: 'Both.' },
  } as const,
});

const UserState = builder.enumType('UserState', {
  values: {
    ALL: { value: 'all', description: 'Every user (default).' },
    ALIVE: { value: 'alive', description: 'Users whose profile changed in the last 5 days.' },
  } as const,
});

export const Hashtag = builder.objectRef<HashtagEntity>('Hashtag');

interface UsersKey {
  tag: string;
  sort: string;
  origin: string;
  state: string;
  limit: number;
  offset: number;
}

/** `hashtags/users` once per distinct (tag, arguments) in a request; the users it returns are
 *  remembered, so every `User` field of them resolves without another call. */
function usersLoader(ctx: Context) {
  return ctx.loader(
    'hashtag-users',
    () =>
      new DataLoader<string, UserDetailed[]>((keys) =>
        Promise.all(
          keys.map(async (key) => {
            const params = JSON.parse(key) as UsersKey;
            const users = (await ctx.call(
              'hashtags/users',
              params as never,
            )) as unknown as UserDetailed[];
            for (const user of users) {
              ctx.users.remember(user);
            }
            return users;
          }),
        ),
      ),
  );
}

/** `hashtags/show` once per tag in a request; null for NO_SUCH_HASHTAG. */
function hashtagLoader(ctx: Context) {
  return ctx.loader(
    'hashtag',
    () =>
      new DataLoader<string, HashtagEntity | null>((tags) =>
        Promise.all(
          tags.map(async (tag) => {
            try {
              return (await ctx.call('hashtags/show', { tag })) as HashtagEntity;
            } catch (error) {
              if (
                error instanceof GraphQLError &&
                (error.extensions.misskey as { code?: string } | undefined)?.code ===
                  'NO_SUCH_HASHTAG'
              ) {
                return null;
              }
              throw error;
            }
          }),
        ),
      ),
  );
}

Hashtag.implement({
  description: 'A hashtag and how many users use it (Misskey `Hashtag`).',
  fields: (t) => ({
    tag: t.exposeString('tag', { description: 'The normalised tag (NFKC, lower case), no `#`.' }),
    mentionedUsersCount: t.exposeInt('mentionedUsersCount', {
      description: 'Users who posted it in a public or home note.',
    }),
    mentionedLocalUsersCount: t.exposeInt('mentionedLocalUsersCount'),
    mentionedRemoteUsersCount: t.exposeInt('mentionedRemoteUsersCount'),
    attachedUsersCount: t.exposeInt('attachedUsersCount', {
      description: 'Users who have it in their profile.',
    }),
    attachedLocalUsersCount: t.exposeInt('attachedLocalUsersCount'),
    attachedRemoteUsersCount: t.exposeInt('attachedRemoteUsersCount'),
    users: t.field({
      type: [User],
      description:
        'Users with the tag in their profile (`hashtags/users`); suspended users are left out.',
      args: {
        sort: t.arg({ type: HashtagUserSort, required: true, defaultValue: '+follower' }),
        origin: t.arg({ type: UserOrigin, required: true, defaultValue: 'local' }),
        state: t.arg({ type: UserState, required: true, defaultValue: 'all' }),
        first: t.arg.int({ required: true, defaultValue: 10 }),
        offset: t.arg.int({ required: true, defaultValue: 0 }),
      },
      resolve: (hashtag, args, ctx) => {
        const key: UsersKey = {
          tag: hashtag.tag,
          sort: args.sort,
          origin: args.origin,
          state: args.state,
          limit: pageSize(args.first, 'first'),
          offset: offsetOf(args.offset),
        };
        return usersLoader(ctx).load(JSON.stringify(key));
      },
    }),
  }),
});

const TrendingHashtag = builder.simpleObject('TrendingHashtag', {
  description: 'A tag of the trend (`hashtags/trend`).',
  fields: (t) => ({
    tag: t.string(),
    chart: t.intList({
      description:
        'Distinct users per 10-minute bucket, 20 numbers, most recent first. Misskey steps back ' +
        '0, 0, 10, 30, 60, 100 … minutes, so the first two are the same bucket.',
    }),
    usersCount: t.int({ description: 'The largest number of the chart.' }),
  }),
});

builder.queryFields((t) => ({
  hashtags: t.field({
    type: [Hashtag],
    description:
      'Hashtags with their statistics (`hashtags/list`); Misskey offers no paging here, only ' +
      '`first`. Works without a token.',
    args: {
      sort: t.arg({ type: HashtagSort, required: true, defaultValue: '+mentionedUsers' }),
      first: t.arg.int({ required: true, defaultValue: 10 }),
      attachedToUserOnly: t.arg.boolean({
        required: true,
        defaultValue: false,
        description: 'Only tags some user has in their profile.',
      }),
      attachedToLocalUserOnly: t.arg.boolean({ required: true, defaultValue: false }),
      attachedToRemoteUserOnly: t.arg.boolean({ required: true, defaultValue: false }),
    },
    resolve: async (_root, args, ctx) =>
      (await ctx.call('hashtags/list', {
        sort: args.sort as never,
        limit: pageSize(args.first, 'first'),
        attachedToUserOnly: args.attachedToUserOnly,
        attachedToLocalUserOnly: args.attachedToLocalUserOnly,
        attachedToRemoteUserOnly: args.attachedToRemoteUserOnly,
      })) as HashtagEntity[],
  }),
  hashtagSuggestions: t.stringList({
    description:
      'Tags starting with `query` (`hashtags/search`: case-insensitive prefix match), most used ' +
      'by local users first. An empty query matches every tag. Works without a token.',
    args: {
      query: t.arg.string({ required: true }),
      first: t.arg.int({ required: true, defaultValue: 10 }),
      offset: t.arg.int({ required: true, defaultValue: 0 }),
    },
    resolve: async (_root, args, ctx) =>
      (await ctx.call('hashtags/search', {
        query: args.query.replace(/^#/, ''),
        limit: pageSize(args.first, 'first'),
        offset: offsetOf(args.offset),
      })) as string[],
  }),
  hashtag: t.field({
    type: Hashtag,
    nullable: true,
    description:
      'One hashtag with all its counts (`hashtags/show`; case-insensitive, a leading `#` is ' +
      'ignored). Null when no one has used it. Works without a token.',
    args: { tag: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => hashtagLoader(ctx).load(tagOf(args.tag)),
  }),
  trendingHashtags: t.field({
    type: [TrendingHashtag],
    description:
      'Trending tags of the last two hours (`hashtags/trend`), current hour first. Each user ' +
      'counts once per tag per hour. Works without a token; anonymous results are cached 60 s.',
    resolve: async (_root, _args, ctx) =>
      (await ctx.call('hashtags/trend', {})) as unknown as TrendItem[],
  }),
}));
