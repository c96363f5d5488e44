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

/** A cursor id for a date, as Misskey makes from `sinceDate`/`untilDate`: every real id of that
 *  millisecond sorts after it. */
export function idForDate(time: number): string {
  return `${(Math.max(time, TIME_2000) - TIME_2000).toString(36).padStart(8, '0')}00000000`;
}

export function timeOfId(id: string): number {
  return Number.parseInt(id.slice(0, 8), 36) + TIME_2000;
}

export function createdAtOf(id: string): string {
  return new Date(timeOfId(id)).toISOString();
}

export const ID_PATTERN = /^[a-zA-Z0-9]+$/;
