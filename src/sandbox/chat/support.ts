import { type ApiError, internalError } from '../errors.js';
import { type IdGenerator, idForDate } from '../ids.js';
import type { EndpointContext } from '../registry.js';
import type { Store, UserRow } from '../store.js';
import { customEmojis } from './state.js';

/** What the checks need of an endpoint's context, whatever its params. */
type Caller = Pick<EndpointContext, 'me' | 'store'>;

/** Me, known to be non-null: every chat endpoint requires a credential. */
export function me(ctx: Caller): UserRow {
  if (!ctx.me) {
    throw new Error('credential required');
  }
  return ctx.me;
}

/** Misskey's `checkChatAvailability`: `available` reads and writes, `readonly` only reads. */
export function checkChatAvailability(ctx: Caller, permission: 'read' | 'write'): UserRow {
  const user = me(ctx);
  if (!canChat(ctx.store, user, permission)) {
    throw internalError('ROLE_PERMISSION_DENIED');
  }
  return user;
}

export function canChat(store: Store, user: UserRow, permission: 'read' | 'write'): boolean {
  const availability = store.policiesOf(user).chatAvailability;
  return availability === 'available' || (availability === 'readonly' && permission === 'read');
}

export function isModerator(store: Store, user: UserRow): boolean {
  return store.isModerator(user);
}

/** TypeORM's `findOneByOrFail` failure, with the criteria printed the way Misskey leaks them. */
export function entityNotFound(entity: string, criteria: Record<string, string>): ApiError {
  return internalError(
    `Could not find any entity of type "${entity}" matching: ${JSON.stringify(criteria, null, 4)}`,
    'EntityNotFoundError',
  );
}

export type CursorParams = {
  limit: number;
  sinceId?: string;
  untilId?: string;
  sinceDate?: number;
  untilDate?: number;
};

/** A date cursor as an id cursor (`IdService.gen(date)`); 0 is absent. */
function dateCursor(ids: IdGenerator, date: number | undefined): string | undefined {
  return date ? idForDate(ids, date) : undefined;
}

/**
 * Misskey's `makePaginationQuery` as the chat endpoints call it (`sinceId ?? gen(sinceDate)`, same
 * for until): newest first, except with only a since cursor, which pages oldest first.
 */
export function paginate<T>(
  rows: Iterable<T>,
  idOf: (row: T) => string,
  p: CursorParams,
  ids: IdGenerator,
): T[] {
  const sinceId = p.sinceId ?? dateCursor(ids, p.sinceDate);
  const untilId = p.untilId ?? dateCursor(ids, p.untilDate);
  const selected: T[] = [];
  for (const row of rows) {
    const id = idOf(row);
    if ((sinceId === undefined || id > sinceId) && (untilId === undefined || id < untilId)) {
      selected.push(row);
    }
  }
  const ascending = sinceId !== undefined && untilId === undefined;
  selected.sort((a, b) => {
    const order = idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0;
    return ascending ? order : -order;
  });
  return selected.slice(0, p.limit);
}

/** Newest first. */
export function byIdDesc<T extends { id: string }>(a: T, b: T): number {
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

const CUSTOM_EMOJI = /^:([\w+-]+)(?:@\.)?:$/;

/**
 * The first emoji of a string: a flag, a keycap, or a pictographic character with its modifiers,
 * tag sequence and ZWJ-joined parts (what Misskey's emoji regex finds).
 */
const EMOJI =
  /\p{Regional_Indicator}{2}|[0-9#*]\uFE0F?\u20E3|\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier})*(?:[\u{E0020}-\u{E007E}]+\u{E007F})?(?:\u200D\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier})*)*/u;

/**
 * A reaction as Misskey stores it: `:name:` for a local custom emoji (which must exist when
 * `requireExisting`), otherwise the first Unicode emoji with U+FE0F removed unless it is a ZWJ
 * sequence. Anything else is ≡500 `invalid emoji`.
 */
export function normalizeReaction(
  store: Store,
  reaction: string,
  requireExisting: boolean,
): string {
  const custom = CUSTOM_EMOJI.exec(reaction);
  if (custom) {
    const name = custom[1] ?? '';
    if (requireExisting && !customEmojis(store).has(name)) {
      throw internalError('no such emoji');
    }
    return `:${name}:`;
  }
  const found = EMOJI.exec(reaction)?.[0];
  if (found === undefined) {
    throw internalError('invalid emoji');
  }
  return found.includes('\u200D') ? found : found.replaceAll('\uFE0F', '');
}
