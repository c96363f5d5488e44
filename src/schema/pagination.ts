import { badInput } from './errors.js';
import { assertId } from './ids.js';

/**
 * Relay connections over Misskey's id cursors.
 *
 * Edges are always **newest first** (Misskey's natural order). Cursors are Misskey ids (of the item,
 * or of the membership/invitation row for those lists), so:
 * - `first` (+ `after`): the next older page → `limit`, `untilId = after` (descending);
 * - `last` (+ `before`): the next newer page → `limit`, `sinceId = before`; Misskey answers a
 *   `sinceId`-only page oldest first, so the page is reversed here; `last` without `before` is the
 *   oldest items (`sinceId = "0"`).
 * One more item than asked is requested, so `hasNextPage`/`hasPreviousPage` are true only when
 * another page exists. `first`/`last` above the endpoint's maximum is BAD_USER_INPUT before any
 * upstream call.
 */
export interface ConnectionArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export interface CursorParams {
  limit: number;
  sinceId?: string;
  untilId?: string;
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

export interface ConnectionOptions<T> {
  /** Misskey's `limit` maximum for the endpoint (100 for every cursor endpoint here). */
  max?: number;
  /** Page size when neither `first` nor `last` is given. */
  defaultSize?: number;
  /** The cursor of an item (default: its `id`). */
  cursorOf?: (item: T) => string;
}

const LOWEST_ID = '0';
/** Sorts after every Misskey id, so `untilId` of it bounds nothing (used to make a `sinceId` page
 *  come back newest first). */
const HIGHEST_ID = 'zzzzzzzzzzzzzzzzzzzzzzzzzz';

function pageSize(value: number | null | undefined, name: string, max: number): number | null {
  if (value === null || value === undefined) {
    return null;
  }
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw badInput(`${name} must be a whole number from 0 to ${max}, got ${value}.`, {
      argument: name,
    });
  }
  return value;
}

/** Checks the arguments (throws BAD_USER_INPUT) before anything is fetched. */
export function parseConnectionArgs(
  args: ConnectionArgs,
  max: number,
  defaultSize: number,
): { direction: 'older' | 'newer'; size: number; after?: string; before?: string } {
  const first = pageSize(args.first, 'first', max);
  const last = pageSize(args.last, 'last', max);
  const after = args.after == null ? undefined : assertId(args.after, 'after');
  const before = args.before == null ? undefined : assertId(args.before, 'before');
  if (first !== null && last !== null) {
    throw badInput('Give first or last, not both.');
  }
  if (last !== null && after !== undefined) {
    throw badInput('last pages towards newer items from before; it cannot be combined with after.');
  }
  if (last !== null) {
    return { direction: 'newer', size: last, before };
  }
  return { direction: 'older', size: first ?? defaultSize, after, before };
}

/**
 * Fetches one page through `fetch` (which calls the Misskey endpoint with the cursor params) and
 * builds the connection. At most two upstream calls: one when the page is below the maximum
 * (limit = size + 1), a second `limit: 1` probe only when size equals the endpoint's maximum.
 */
export async function idConnection<T>(
  args: ConnectionArgs,
  fetch: (params: CursorParams) => Promise<T[]>,
  options: ConnectionOptions<T> = {},
): Promise<Connection<T>> {
  const max = options.max ?? 100;
  const cursorOf = options.cursorOf ?? ((item: T) => (item as { id: string }).id);
  const { direction, size, after, before } = parseConnectionArgs(
    args,
    max,
    options.defaultSize ?? 20,
  );
  if (size === 0) {
    return {
      edges: [],
      pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null },
    };
  }
  const limit = Math.min(size + 1, max);
  let items: T[];
  let more: boolean;
  if (direction === 'older') {
    const params: CursorParams = { limit };
    if (after) {
      params.untilId = after;
    }
    if (before) {
      // With both cursors Misskey pages descending; alone, sinceId would page from the oldest.
      params.sinceId = before;
      params.untilId ??= HIGHEST_ID;
    }
    const page = await fetch(params);
    // Misskey answers `sinceId`-only pages ascending; with `untilId` or no cursor, descending.
    items = descending(page, cursorOf);
    more = items.length > size;
    items = items.slice(0, size);
    if (!more && items.length === size && limit === size) {
      const last = items[items.length - 1];
      const probe: CursorParams = { limit: 1, untilId: last ? cursorOf(last) : HIGHEST_ID };
      if (before) {
        probe.sinceId = before;
      }
      more = (await fetch(probe)).length > 0;
    }
    return build(items, cursorOf, { hasNextPage: more, hasPreviousPage: after !== undefined });
  }
  const page = await fetch({ limit, sinceId: before ?? LOWEST_ID });
  // Ascending from the cursor: keep the `size` items nearest to it, then turn newest first.
  const ascending = [...descending(page, cursorOf)].reverse();
  more = ascending.length > size;
  items = ascending.slice(0, size);
  if (!more && items.length === size && limit === size) {
    const newest = items[items.length - 1];
    more = (await fetch({ limit: 1, sinceId: newest ? cursorOf(newest) : LOWEST_ID })).length > 0;
  }
  return build(items.reverse(), cursorOf, {
    hasNextPage: before !== undefined,
    hasPreviousPage: more,
  });
}

function descending<T>(items: T[], cursorOf: (item: T) => string): T[] {
  return [...items].sort((a, b) =>
    cursorOf(a) < cursorOf(b) ? 1 : cursorOf(a) > cursorOf(b) ? -1 : 0,
  );
}

function build<T>(
  items: T[],
  cursorOf: (item: T) => string,
  flags: { hasNextPage: boolean; hasPreviousPage: boolean },
): Connection<T> {
  const edges = items.map((node) => ({ cursor: cursorOf(node), node }));
  return {
    edges,
    pageInfo: {
      ...flags,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges[edges.length - 1]?.cursor ?? null,
    },
  };
}
