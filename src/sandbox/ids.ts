/**
 * Misskey's default `aidx` ids: 8 base-36 characters of milliseconds since 2000-01-01, 4 characters
 * of node id and 4 of a counter, 16 characters of [0-9a-z] in all. Ids sort by creation time as
 * strings, and `createdAt` is read back from the id (API.md §4.5).
 */
const TIME_2000 = 946_684_800_000;

export class IdGenerator {
  #counter = 0;
  #lastTime = 0;
  readonly #node: string;

  constructor(node = Math.floor(Math.random() * 36 ** 4)) {
    this.#node = node.toString(36).padStart(4, '0').slice(-4);
  }

  /** `genAidx(time)` as it is, for a past date too: the time given and the next counter value. */
  at(time: number): string {
    this.#counter = (this.#counter + 1) % 36 ** 4;
    return (
      (Math.max(time, TIME_2000) - TIME_2000).toString(36).padStart(8, '0') +
      this.#node +
      this.#counter.toString(36).padStart(4, '0')
    );
  }

  /** A new id for `time` (default now). Ids made in one process never repeat and never go back. */
  gen(time = Date.now()): string {
    let t = Math.max(time, TIME_2000);
    // Keep ids monotonic within the process even if the clock steps back.
    if (t < this.#lastTime) {
      t = this.#lastTime;
    }
    this.#lastTime = t;
    this.#counter = (this.#counter + 1) % 36 ** 4;
    return (
      (t - TIME_2000).toString(36).padStart(8, '0') +
      this.#node +
      this.#counter.toString(36).padStart(4, '0')
    );
  }
}

/**
 * The cursor Misskey makes from `sinceDate`/`untilDate`: `IdService.gen(date)` (a future or zero
 * date is now), a real aidx of this node with the next counter value, so the ids already made
 * in that millisecond sort before it: `untilDate` = a message's `createdAt` includes that message,
 * `sinceDate` = its `createdAt` leaves it out (core/QueryService.ts makePaginationQuery).
 */
export function idForDate(ids: IdGenerator, time: number): string {
  const now = Date.now();
  return ids.at(!time || time > now ? now : time);
}

export function timeOfId(id: string): number {
  return Number.parseInt(id.slice(0, 8), 36) + TIME_2000;
}

export function createdAtOf(id: string): string {
  return new Date(timeOfId(id)).toISOString();
}

export const ID_PATTERN = /^[a-zA-Z0-9]+$/;
