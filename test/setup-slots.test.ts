import { describe, expect, it } from 'vitest';
import { SetupSlots } from '../src/websocket/setup-slots.js';

/** Lets pending promise callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('setup slots', () => {
  it('hold at most their size; the others get theirs in order as slots are given back', async () => {
    const slots = new SetupSlots(2, 60_000);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    for (let i = 0; i < 5; i++) {
      void slots.acquire().then((release) => {
        order.push(i);
        releases.push(release);
      });
    }
    await settle();
    expect(order).toEqual([0, 1]);
    expect(slots.waiting).toBe(3);
    releases[1]?.();
    await settle();
    expect(order).toEqual([0, 1, 2]);
    releases[0]?.();
    releases[2]?.();
    await settle();
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(slots.waiting).toBe(0);
    for (const release of releases) {
      release();
    }
  });

  it('a slot given back twice frees one slot, not two', async () => {
    const slots = new SetupSlots(1, 60_000);
    const first = await slots.acquire();
    let taken = 0;
    void slots.acquire().then(() => taken++);
    void slots.acquire().then(() => taken++);
    first();
    first();
    await settle();
    expect(taken).toBe(1);
    expect(slots.waiting).toBe(1);
  });

  it('a slot held past maxHoldMs is given back to the next one waiting', async () => {
    const slots = new SetupSlots(1, 20);
    await slots.acquire();
    const started = performance.now();
    const release = await slots.acquire();
    expect(performance.now() - started).toBeGreaterThanOrEqual(15);
    release();
  });
});
