import DataLoader from 'dataloader';
import { GraphQLError } from 'graphql';
import type { entities } from 'misskey-js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { badInput } from './errors.js';
import { assertId } from './ids.js';
import { type CursorParams, idConnection } from './pagination.js';

type AnnouncementEntity = entities.Announcement;

export const Announcement = builder.objectRef<AnnouncementEntity>('Announcement');

const AnnouncementStatus = builder.enumType('AnnouncementStatus', {
  description:
    'Which announcements to list. Misskey itself only filters on `isActive`, so that ' +
    '`isActive: false` returns only the archived ones; ALL merges both lists.',
  values: {
    ACTIVE: { value: 'active', description: 'Current announcements (Misskey `isActive: true`).' },
    ARCHIVED: {
      value: 'archived',
      description:
        'Archived announcements only (Misskey `isActive: false`), including user-targeted ones ' +
        'their addressee has read.',
    },
    ALL: { value: 'all', description: 'Both, merged newest first (two upstream calls).' },
  } as const,
});

const AnnouncementIcon = builder.enumType('AnnouncementIcon', {
  values: {
    INFO: { value: 'info' },
    WARNING: { value: 'warning' },
    ERROR: { value: 'error' },
    SUCCESS: { value: 'success' },
  } as const,
});

const AnnouncementDisplay = builder.enumType('AnnouncementDisplay', {
  values: {
    NORMAL: { value: 'normal', description: 'Listed on the announcements page.' },
    BANNER: { value: 'banner', description: 'Shown as a banner.' },
    DIALOG: { value: 'dialog', description: 'Shown as a dialog.' },
  } as const,
});

Announcement.implement({
  description: 'A server announcement (Misskey `Announcement`).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey announcement id (the cursor of its list).' }),
    createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
    updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.updatedAt }),
    title: t.exposeString('title'),
    text: t.exposeString('text', { description: 'MFM text.' }),
    imageUrl: t.exposeString('imageUrl', { nullable: true }),
    icon: t.field({ type: AnnouncementIcon, resolve: (a) => a.icon }),
    display: t.field({ type: AnnouncementDisplay, resolve: (a) => a.display }),
    needConfirmationToRead: t.exposeBoolean('needConfirmationToRead'),
    silence: t.exposeBoolean('silence', {
      description: 'Silent announcements do not count as unread.',
    }),
    forYou: t.exposeBoolean('forYou', {
      description: 'Whether it is addressed to the viewer only (a user-targeted announcement).',
    }),
    isRead: t.boolean({
      nullable: true,
      description:
        'Whether the viewer has read it (`markAnnouncementRead`). Null without a token: Misskey ' +
        'only knows read state for a user.',
      resolve: (a) => a.isRead ?? null,
    }),
  }),
});

const AnnouncementConnection = builder.connectionObject(
  { type: Announcement, name: 'AnnouncementConnection' },
  { name: 'AnnouncementEdge' },
);

type Status = 'active' | 'archived' | 'all';

interface DateBounds {
  since?: number;
  until?: number;
}

/**
 * One page of `announcements`. Misskey ignores `sinceDate`/`untilDate` as soon as an id cursor is
 * sent (API.md §1.1), so dates go upstream only on a page without an id cursor; on later pages the
 * cursor lies inside the range and the items are filtered here instead.
 */
async function fetchPage(
  ctx: Context,
  status: Status,
  dates: DateBounds,
  cursor: CursorParams,
): Promise<AnnouncementEntity[]> {
  const params: Record<string, unknown> = { limit: cursor.limit };
  if (cursor.sinceId === undefined && cursor.untilId === undefined) {
    if (dates.since !== undefined) {
      params.sinceDate = dates.since;
      // With both dates Misskey pages newest first; `sinceDate` alone would page oldest first.
      params.untilDate = dates.until ?? Date.now() + 60_000;
    } else if (dates.until !== undefined) {
      params.untilDate = dates.until;
    }
  } else if (cursor.sinceId === '0' && cursor.untilId === undefined && dates.since !== undefined) {
    // `last` without `before`: the oldest items, from `since` on (ascending).
    params.sinceDate = dates.since;
  } else {
    Object.assign(params, cursor);
  }
  const actives = status === 'all' ? [true, false] : [status === 'active'];
  const pages = await Promise.all(
    actives.map(
      (isActive) =>
        ctx.call('announcements', {
          ...params,
          isActive,
        } as never) as unknown as Promise<AnnouncementEntity[]>,
    ),
  );
  return pages
    .flat()
    .filter(
      (a) =>
        (dates.since === undefined || Date.parse(a.createdAt) > dates.since) &&
        (dates.until === undefined || Date.parse(a.createdAt) < dates.until),
    );
}

/** `announcements/show` per id, once per request; null when Misskey says there is no such one. */
function announcementLoader(ctx: Context) {
  return ctx.loader(
    'announcement',
    () =>
      new DataLoader<string, AnnouncementEntity | null>((ids) =>
        Promise.all(
          ids.map(async (announcementId) => {
            try {
              return (await ctx.call('announcements/show', {
                announcementId,
              })) as AnnouncementEntity;
            } catch (error) {
              if (
                error instanceof GraphQLError &&
                (error.extensions.misskey as { code?: string } | undefined)?.code ===
                  'NO_SUCH_ANNOUNCEMENT'
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

builder.queryFields((t) => ({
  announcements: t.connection(
    {
      type: Announcement,
      description:
        'Server announcements, newest first (`announcements`); cursors are announcement ids. ' +
        'Global ones for everyone, plus those addressed to the viewer when a token is sent. ' +
        '`since`/`until` bound the creation time (exclusive). Works without a token.',
      args: {
        active: t.arg({
          type: AnnouncementStatus,
          defaultValue: 'active',
          required: true,
          description: 'ACTIVE (default), ARCHIVED or ALL.',
        }),
        since: t.arg({ type: 'DateTime', required: false }),
        until: t.arg({ type: 'DateTime', required: false }),
      },
      resolve: (_root, args, ctx) => {
        const dates: DateBounds = {
          since: args.since ? args.since.getTime() : undefined,
          until: args.until ? args.until.getTime() : undefined,
        };
        if (dates.until !== undefined && args.first != null && args.before != null) {
          // Misskey cannot combine an id cursor with a date; this page would come out short.
          throw badInput('`until` cannot be combined with `first` and `before`; page with `last`.');
        }
        return idConnection(args, (cursor) => fetchPage(ctx, args.active, dates, cursor), {
          defaultSize: 10,
        });
      },
    },
    AnnouncementConnection,
  ),
  announcement: t.field({
    type: Announcement,
    nullable: true,
    description:
      'One announcement, active or archived (`announcements/show`). Null when it does not exist ' +
      'or is addressed to another user (anonymous callers never see user-targeted ones).',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => announcementLoader(ctx).load(assertId(String(args.id), 'id')),
  }),
}));

builder.mutationFields((t) => ({
  markAnnouncementRead: t.field({
    type: Announcement,
    nullable: true,
    description:
      'Marks an announcement read (`i/read-announcement`) and returns it as it is now. Reading ' +
      'one addressed to you also archives it. Misskey accepts unknown ids silently: the result ' +
      'is then null.',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const announcementId = assertId(String(args.id), 'id');
      await ctx.call('i/read-announcement', { announcementId });
      return announcementLoader(ctx).load(announcementId);
    },
  }),
}));
