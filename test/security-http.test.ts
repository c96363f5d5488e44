import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post } from './hardening-helpers.js';
import { type Stack, startStack } from './harness.js';

/**
 * The HTTP front under hostile input: metric series a client cannot grow, CORS, methods,
 * slow and numerous connections, introspection cost, and a readiness probe with its own deadline.
 */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ gateway: { upstreamRetries: 0, breakerFailures: 0 } });
});
afterAll(() => stack.close());

const scrape = async () => (await fetch(`${stack.gateway.origin}/metrics`)).text();

/** `count` anonymous operations, each with 30 fresh aliases of a field that fails without a
 *  token (nullable, so every alias is its own error with its own path). */
async function failingAliases(from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 4) {
    await Promise.all(
      [0, 1, 2, 3].map(async (k) => {
        const aliases = Array.from({ length: 30 }, (_, j) => `a${i + k}_${j}: inviteLimit`);
        const res = await post(stack.gateway.url, { query: `{ ${aliases.join(' ')} }` });
        expect(res.status).toBe(200);
      }),
    );
  }
}

describe('metric series stay bounded', () => {
  it('thousands of distinct aliases of a failing field add no series', async () => {
    await failingAliases(0, 4);
    const before = await scrape();
    await failingAliases(4, 100);
    const after = await scrape();
    // Values grew, series did not (bar the first scrape's own request duration).
    const series = (text: string) => text.split('\n').filter((l) => /^[a-z]/.test(l)).length;
    expect(series(after) - series(before)).toBeLessThanOrEqual(15);
    expect(after.length).toBeLessThan(before.length * 1.2);
    expect(after).not.toMatch(/path="/);
    expect(after).not.toContain('a77_');
    // The 3,120 errors were counted, in one series.
    const errors = /^graphql_envelop_error_result\{operationType="query",phase="execute"\} (\d+)/m;
    expect(Number(errors.exec(after)?.[1])).toBeGreaterThanOrEqual(3_120);
  });

  it("an upstream's odd statuses are counted by class, not one series each", async () => {
    for (let status = 520; status < 530; status++) {
      stack.sandbox.fail('i', { status, raw: 'odd', times: 1 });
      expect((await stack.gql('{ me { id } }')).errors).toBeDefined();
    }
    stack.sandbox.clearFailures();
    const text = await scrape();
    expect(text).toMatch(/^misskey_upstream_calls_total\{endpoint="i",[^}]*status="5xx"\} 10$/m);
    expect(text).not.toMatch(/status="52\d"/);
  });
});
