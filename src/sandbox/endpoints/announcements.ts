import { apiError } from '../errors.js';
import { createdAtOf, type IdGenerator, idForDate } from '../ids.js';
import { meHooks } from '../pack.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import type { Store, UserRow } from '../store.js';
import { me } from './core.js';

/**
 * Announcements (API.md §1.6, recordings `announcements*.json`, `i.read-announcement*.json`,
 * `setup/admin.announcements.*.json`).
 */

export interface AnnouncementRow {
  id: string;
  updatedAt: string | null;
  title: string;
  text: string;
  imageUrl: string | null;
  icon: 'info' | 'warning' | 'error' | 'success';
  display: 'normal' | 'banner' | 'dialog';
  needConfirmationToRead: boolean;
  isActive: boolean;
  forExistingUsers: boolean;
  silence: boolean;
  /** The addressee of a user-targeted announcement; null = everyone. */
  userId: string | null;
  /** Order of the last write: Postgres returns unsorted rows (`i.unreadAnnouncements`) in heap
   *  order, where an updated row moves to the end. */
  writeSeq: number;
}

interface AnnouncementTables {
  rows: Map<string, AnnouncementRow>;
  /** `userId>announcementId` */
  reads: Set<string>;
  seq: number;
}

function tables(store: Store): AnnouncementTables {
  return store.ext<AnnouncementTables>('announcements', () => ({
    rows: new Map(),
    reads: new Set(),
    seq: 0,
  }));
}

const NO_SUCH_ANNOUNCEMENT = () =>
  apiError('NO_SUCH_ANNOUNCEMENT', 'b57b5e1d-4f49-404a-9edb-46b00268f121', 'No such announcement.');

export type PageParams = {
  limit: number;
  sinceId?: string;
  untilId?: string;
  sinceDate?: number;
  untilDate?: number;
};

/**
 * Misskey's `QueryService.makePaginationQuery` over rows with time-ordered ids: an id cursor wins
 * over both dates; a date becomes a synthetic id (a future date is clamped to now, 0 is absent);
 * `since` alone pages ascending (oldest first), everything else descending (API.md §1.1).
 */
export function paginate<T extends { id: string }>(
  rows: Iterable<T>,
  params: PageParams,
  ids: IdGenerator,
): T[] {
  let since = params.sinceId;
  let until = params.untilId;
  if (since === undefined && until === undefined) {
    if (params.sinceDate) {
      since = idForDate(ids, params.sinceDate);
    }
    if (params.untilDate) {
      until = idForDate(ids, params.untilDate);
    }
  }
  const picked = [...rows].filter(
    (row) => (since === undefined || row.id > since) && (until === undefined || row.id < until),
  );
  const ascending = since !== undefined && until === undefined;
  picked.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) * (ascending ? 1 : -1));
  return picked.slice(0, params.limit);
}

/** `Announcement` as the recordings show it: `isRead` only when there is a viewer. */
export function packAnnouncement(
  store: Store,
  row: AnnouncementRow,
  viewer: UserRow | null,
): Record<string, unknown> {
  const packed: Record<string, unknown> = {
    id: row.id,
    createdAt: createdAtOf(row.id),
    updatedAt: row.updatedAt,
    title: row.title,
    text: row.text,
    imageUrl: row.imageUrl,
    icon: row.icon,
    display: row.display,
    forYou: viewer !== null && row.userId === viewer.id,
    needConfirmationToRead: row.needConfirmationToRead,
    silence: row.silence,
  };
  if (viewer) {
    packed.isRead = tables(store).reads.has(`${viewer.id}>${row.id}`);
  }
  return packed;
}

/** `MeDetailed.unreadAnnouncements`: raw rows plus `createdAt`, in heap order (API.md §1.10). */
function unreadAnnouncements(store: Store, userId: string): Record<string, unknown>[] {
  const { rows, reads } = tables(store);
  return [...rows.values()]
    .filter(
      (row) =>
        row.isActive &&
        !row.silence &&
        (row.userId === null || row.userId === userId) &&
        // forExistingUsers: only for accounts that existed when it was published.
        (!row.forExistingUsers || row.id > userId) &&
        !reads.has(`${userId}>${row.id}`),
    )
    .sort((a, b) => a.writeSeq - b.writeSeq)
    .map((row) => ({
      createdAt: createdAtOf(row.id),
      id: row.id,
      updatedAt: row.updatedAt,
      text: row.text,
      title: row.title,
      imageUrl: row.imageUrl,
      icon: row.icon,
      display: row.display,
      needConfirmationToRead: row.needConfirmationToRead,
      isActive: row.isActive,
      forExistingUsers: row.forExistingUsers,
      silence: row.silence,
      userId: row.userId,
    }));
}

/** Makes `i`'s `unreadAnnouncements` / `hasUnreadAnnouncement` real (domain setup). */
export function setupAnnouncements(store: Store): void {
  meHooks(store).unreadAnnouncements = (userId) => unreadAnnouncements(store, userId);
}

interface CreateParams {
  title: string;
  text: string;
  imageUrl: string | null;
  icon: AnnouncementRow['icon'];
  display: AnnouncementRow['display'];
  forExistingUsers: boolean;
  silence: boolean;
  needConfirmationToRead: boolean;
  userId: string | null;
}

type UpdateParams = Partial<Omit<CreateParams, 'userId'>> & { id: string; isActive?: boolean };

export const announcementsEndpoints: EndpointDef[] = [
  {
    name: 'announcements',
    handler: (ctx: EndpointContext<PageParams & { isActive: boolean }>) => {
      const { store, params } = ctx;
      const viewer = ctx.me;
      // `isActive: false` lists only the archived ones (API.md §5.12); user-targeted ones only
      // for their addressee; silent ones are listed.
      const visible = [...tables(store).rows.values()].filter(
        (row) =>
          row.isActive === params.isActive &&
          (row.userId === null || (viewer !== null && row.userId === viewer.id)),
      );
      return paginate(visible, params, store.ids).map((row) =>
        packAnnouncement(store, row, viewer),
      );
    },
  },
  {
    name: 'announcements/show',
    handler: (ctx: EndpointContext<{ announcementId: string }>) => {
      const row = tables(ctx.store).rows.get(ctx.params.announcementId);
      // Since 2026.5 a user-targeted announcement is refused to anyone but its addressee,
      // anonymous callers included (errors/announcements.show.user-targeted.anonymous.json).
      if (!row || (row.userId !== null && row.userId !== ctx.me?.id)) {
        throw NO_SUCH_ANNOUNCEMENT();
      }
      return packAnnouncement(ctx.store, row, ctx.me);
    },
  },
  {
    name: 'i/read-announcement',
    handler: (ctx: EndpointContext<{ announcementId: string }>) => {
      const user = me(ctx);
      const t = tables(ctx.store);
      const row = t.rows.get(ctx.params.announcementId);
      const key = `${user.id}>${ctx.params.announcementId}`;
      // Always 204: an unknown id or a repeated read fails the insert, which Misskey swallows.
      if (!row || (row.userId !== null && row.userId !== user.id) || t.reads.has(key)) {
        return null;
      }
      t.reads.add(key);
      if (row.userId === user.id) {
        // A user-targeted announcement is archived once its addressee has read it.
        row.isActive = false;
        row.writeSeq = ++t.seq;
      }
      if (unreadAnnouncements(ctx.store, user.id).length === 0) {
        ctx.publish({ stream: `mainStream:${user.id}`, type: 'readAllAnnouncements', body: null });
      }
      return null;
    },
  },
  {
    name: 'admin/announcements/create',
    requireModerator: true,
    handler: (ctx: EndpointContext<CreateParams>) => {
      const { store, params } = ctx;
      const t = tables(store);
      const row: AnnouncementRow = {
        id: store.ids.gen(),
        updatedAt: null,
        title: params.title,
        text: params.text,
        imageUrl: params.imageUrl,
        icon: params.icon,
        display: params.display,
        needConfirmationToRead: params.needConfirmationToRead,
        isActive: true,
        forExistingUsers: params.forExistingUsers,
        silence: params.silence,
        userId: params.userId,
        writeSeq: ++t.seq,
      };
      t.rows.set(row.id, row);
      // Packed without a viewer: `forYou` false and no `isRead` (setup/admin.announcements.create.json).
      const packed = packAnnouncement(store, row, null);
      ctx.publish(
        row.userId === null
          ? { stream: 'broadcast', type: 'announcementCreated', body: { announcement: packed } }
          : {
              stream: `mainStream:${row.userId}`,
              type: 'announcementCreated',
              body: { announcement: packed },
            },
      );
      return packed;
    },
  },
  {
    name: 'admin/announcements/update',
    requireModerator: true,
    handler: (ctx: EndpointContext<UpdateParams>) => {
      const { store, params } = ctx;
      const t = tables(store);
      const row = t.rows.get(params.id);
      if (!row) {
        throw apiError(
          'NO_SUCH_ANNOUNCEMENT',
          'd3aae5a7-6372-4cb4-b61c-f511ffc2d7cc',
          'No such announcement.',
        );
      }
      row.updatedAt = new Date().toISOString();
      row.title = params.title ?? row.title;
      row.text = params.text ?? row.text;
      // Misskey writes `imageUrl || null`: leaving it out of an update clears it.
      row.imageUrl = params.imageUrl || null;
      row.icon = params.icon ?? row.icon;
      row.display = params.display ?? row.display;
      row.forExistingUsers = params.forExistingUsers ?? row.forExistingUsers;
      row.silence = params.silence ?? row.silence;
      row.needConfirmationToRead = params.needConfirmationToRead ?? row.needConfirmationToRead;
      row.isActive = params.isActive ?? row.isActive;
      row.writeSeq = ++t.seq;
      return null;
    },
  },
];
