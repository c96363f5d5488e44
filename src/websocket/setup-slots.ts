/**
 * How many websocket subscriptions are set up at once: from their subscribe message (parsed and
 * admitted) until their source stream is open. The others wait their turn, in order.
 *
 * A subscription being set up holds the state of its execution (the engine's orchestration,
 * graphql-js' execution context, its resolver's upstream calls and loaders) until Misskey has
 * answered and the channel is connected. When hundreds are set up together (clients opening
 * their rooms at once, or reconnecting after a deploy), each waits behind all the others, so that
 * state outlives two scavenges, is promoted to V8's old generation and dies there: the pages it
 * shared with the subscriptions' long-lived state stay partly empty, and V8 compacts only a few
 * MB of such pages per major collection. 10,000 subscriptions set up 500 at a time left 90 MB of
 * such holes in a 230 MB old generation. A few dozen at a time, each setup is over before its
 * state is promoted, and the whole burst is set up sooner (less to collect).
 */
export const SUBSCRIPTION_SETUPS = 32;

/**
 * A slot is given back after this at the latest, even when its setup still waits (on a Misskey
 * that does not answer, up to the stream's ready timeout): the slots bound bursts of work, they
 * never make a subscription wait behind a stuck one for long.
 */
export const SETUP_SLOT_MAX_MS = 250;

/** A FIFO semaphore of `size` slots, each held until released or `maxHoldMs` has passed. */
export class SetupSlots {
  readonly #waiting: (() => void)[] = [];
  #free: number;

  constructor(
    size = SUBSCRIPTION_SETUPS,
    readonly maxHoldMs = SETUP_SLOT_MAX_MS,
  ) {
    this.#free = size;
  }

  /** Operations waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves, once a slot is free, with the function that gives it back (idempotent). */
  acquire(): Promise<() => void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(this.#lease());
    }
    return new Promise((resolve) => {
      this.#waiting.push(() => resolve(this.#lease()));
    });
  }

  #lease(): () => void {
    let held = true;
    const release = () => {
      if (held) {
        held = false;
        clearTimeout(timer);
        this.#handOver();
      }
    };
    const timer = setTimeout(release, this.maxHoldMs);
    timer.unref();
    return release;
  }

  /** The freed slot goes to the longest waiting operation, or back to the free ones. */
  #handOver(): void {
    const next = this.#waiting.shift();
    if (next) {
      next();
    } else {
      this.#free++;
    }
  }
}
