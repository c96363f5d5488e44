import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/engine/limits.js';
import { post } from './hardening-helpers.js';
import { type Stack, startStack } from './harness.js';

/**
 * Client input that reaches state shared by every caller stays bounded: response-cache keys,
 * rate-limit keys (client addresses from `X-Forwarded-For` included).
 */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    gateway: { trustProxy: true, rateLimit: { perToken: 0, perIp: 5, windowMs: 60_000 } },
  });
});
afterAll(() => stack.close());

describe('response cache keys', () => {
  it('answers an anonymous operation with 30,000-deep unused variables (runs uncached)', async () => {
    const deep = `${'['.repeat(30_000)}${']'.repeat(30_000)}`;
    const body = `{"query":"{ trendingHashtags { tag } }","variables":{"unused":${deep}}}`;
    const res = await post(stack.gateway.url, body, { 'x-forwarded-for': '203.0.113.1' });
    expect(res.status).toBe(200);
    expect((res.json as { data?: unknown }).data).toEqual({ trendingHashtags: expect.any(Array) });
  });
});

describe('rate-limit keys', () => {
  it('counts a client whose X-Forwarded-For is not an address by its socket address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      // Fresh text each time: were it a key, no budget would ever run out.
      const res = await post(
        stack.gateway.url,
        { query: '{ trendingHashtags { tag } }' },
        { 'x-forwarded-for': `not-an-address-${i}-${'z'.repeat(200)}` },
      );
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    // A real forwarded address has a budget of its own.
    const other = await post(
      stack.gateway.url,
      { query: '{ trendingHashtags { tag } }' },
      { 'x-forwarded-for': '198.51.100.7' },
    );
    expect(other.status).toBe(200);
  });

  it('keeps at most maxKeys windows however many distinct keys come', () => {
    const limiter = new RateLimiter(1, 60_000, 1_000);
    for (let i = 0; i < 50_000; i++) {
      limiter.take(`t:${i}`, 1_000);
    }
    expect(limiter.size).toBe(1_000);
    // The newest keys are still counted.
    expect(limiter.take('t:49999', 1_001)).toBeGreaterThan(0);
  });
});
