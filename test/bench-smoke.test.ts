import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BenchData, QUICK_SIZES, seedBench } from '../bench/seed.js';
import { MEMBERS, PAGE_SIZE, restCaller, WORKLOADS } from '../bench/workloads.js';
import { type Stack, startStack } from './harness.js';

/**
 * The benchmark's clients, once each on the quick data set: S0 (hand-optimised REST), S1 (naive
 * REST) and S2 (the gateway) must answer the same data with the upstream calls the benchmark
 * claims, so `npm run bench` cannot silently measure something else.
 */
let stack: Stack;
let data: BenchData;
let pool: Pool;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  data = await seedBench(stack.sandbox, QUICK_SIZES);
  pool = new Pool(stack.sandbox.origin, { connections: 8 });
});
afterAll(async () => {
  await pool?.close();
});

const roomsPerOwner = QUICK_SIZES.rooms / QUICK_SIZES.roomOwners;
/** Upstream calls per request: S0, S1 (naive), S2 cold and S2 warm (the same request again:
 *  the senders of a page come from the shared cache of lite users). */
const EXPECTED_CALLS: Record<string, { S0: number; S1?: number; S2: number; S2warm?: number }> = {
  a: { S0: 1, S2: 1 },
  b: { S0: 2, S1: 1 + PAGE_SIZE, S2: 2, S2warm: 1 },
  c: { S0: 1 + roomsPerOwner, S1: 1 + roomsPerOwner * (2 + MEMBERS), S2: 1 + roomsPerOwner },
};

describe.each(WORKLOADS.map((w) => [w.id, w] as const))('workload (%s)', (id, workload) => {
  it('S0, S1 and S2 answer the same data with the claimed number of upstream calls', async () => {
    const call = restCaller(pool);
    const expected = EXPECTED_CALLS[id];
    if (!expected) {
      throw new Error(`no expected calls for workload ${id}`);
    }
    for (const request of workload.requests(data).slice(0, 2)) {
      const answers: Record<string, unknown> = {};
      for (const system of ['S0', 'S1'] as const) {
        const client = workload.rest[system];
        if (!client) {
          continue;
        }
        stack.sandbox.resetCalls();
        answers[system] = await client(call, request.token, request.variables);
        expect(stack.sandbox.callCount(), `${system} calls`).toBe(expected[system]);
      }
      stack.sandbox.resetCalls();
      const res = await stack.gql(workload.query, request.variables, request.token);
      expect(res.errors).toBeUndefined();
      // At most the cold count: earlier workloads may have warmed the shared cache of lite users
      // (test/user-cache.test.ts checks the cold count on a fresh gateway).
      expect(stack.sandbox.callCount(), 'S2 calls').toBeLessThanOrEqual(expected.S2);
      stack.sandbox.resetCalls();
      const again = await stack.gql(workload.query, request.variables, request.token);
      expect(again.data).toEqual(res.data);
      expect(stack.sandbox.callCount(), 'S2 calls, warm').toBe(expected.S2warm ?? expected.S2);
      expect(answers.S0).toEqual(res.data);
      if (workload.rest.S1) {
        expect(answers.S1).toEqual(res.data);
      }
    }
  });
});

it('the data is the size the workloads ask for', async () => {
  const [b, c] = [WORKLOADS[1], WORKLOADS[2]];
  const conversation = data.conversations[0];
  const owner = data.owners[0];
  if (!b || !c || !conversation || !owner) {
    throw new Error('workloads or data missing');
  }
  const page = await stack.gql<{ chatConversation: { edges: { node: unknown }[] } }>(
    b.query,
    { userId: conversation.b.id },
    conversation.a.token,
  );
  expect(page.data?.chatConversation.edges).toHaveLength(PAGE_SIZE);
  const rooms = await stack.gql<{
    ownedChatRooms: { edges: { node: { members: { edges: unknown[] } } }[] };
  }>(c.query, {}, owner.token);
  expect(rooms.data?.ownedChatRooms.edges).toHaveLength(roomsPerOwner);
  expect(
    rooms.data?.ownedChatRooms.edges.every((e) => e.node.members.edges.length === MEMBERS),
  ).toBe(true);
});
