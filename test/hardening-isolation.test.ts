import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOKENS, type GraphQLResponse, type Stack, startStack } from './harness.js';

/**
 * Token isolation under load: 1,000 operations of two users, interleaved at random, in flight
 * together while the upstream answers after a random delay (so answers come back out of order).
 * Every answer must belong to the token that asked.
 */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ gateway: { upstreamConnections: 16 } });
});

const QUERY = '{ me { id username } u: user(username: "carol") { username isFollowing } }';

describe('token isolation', () => {
  it('1,000 interleaved operations of alice and bob: every answer is the asker’s', async () => {
    const users = stack.sandbox.demo?.users;
    const who = { alice: users?.alice.id, bob: users?.bob.id };
    // A reproducible interleaving: which user asks each time, and single vs batched requests.
    const plan = fc.sample(
      fc.record({ user: fc.constantFrom('alice', 'bob'), batch: fc.boolean() }),
      { numRuns: 700, seed: 4242 },
    );
    const requests: { user: 'alice' | 'bob'; batch: boolean }[] = [];
    let operations = 0;
    for (const step of plan) {
      if (operations >= 1_000) {
        break;
      }
      const batch = step.batch && operations <= 998;
      requests.push({ user: step.user as 'alice' | 'bob', batch });
      operations += batch ? 2 : 1;
    }
    expect(operations).toBe(1_000);

    // Random upstream latency, changing every millisecond.
    const jitter = setInterval(() => {
      stack.sandbox.latencyMs = Math.floor(Math.random() * 6);
    }, 1);
    stack.sandbox.resetCalls();
    const started = performance.now();
    const wrong: string[] = [];
    let answered = 0;
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const { user, batch } = requests[next++] as (typeof requests)[number];
        const op = { query: QUERY };
        const res = await fetch(stack.gateway.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${DEMO_TOKENS[user]}`,
          },
          body: JSON.stringify(batch ? [op, op] : op),
        });
        const body = (await res.json()) as GraphQLResponse<{
          me: { id: string; username: string };
          u: { username: string };
        }>;
        for (const answer of Array.isArray(body) ? body : [body]) {
          answered++;
          const me = (answer as GraphQLResponse<{ me: { id: string; username: string } }>).data?.me;
          if (answer.errors || me?.username !== user || me?.id !== who[user]) {
            wrong.push(`${user}: ${JSON.stringify(answer)}`);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    clearInterval(jitter);
    stack.sandbox.latencyMs = 0;
    const ms = Math.round(performance.now() - started);

    expect(wrong).toEqual([]);
    expect(answered).toBe(1_000);
    // Upstream, each user's `i` calls carried that user's token: one per operation.
    const byUser = (id: string | undefined) =>
      stack.sandbox.calls.filter((c) => c.endpoint === 'i' && c.userId === id).length;
    const asked = (user: 'alice' | 'bob') =>
      requests.filter((r) => r.user === user).reduce((n, r) => n + (r.batch ? 2 : 1), 0);
    expect(byUser(who.alice)).toBe(asked('alice'));
    expect(byUser(who.bob)).toBe(asked('bob'));
    console.log(`1,000 interleaved operations (64 in flight, random upstream delay) in ${ms} ms`);
  });
});
