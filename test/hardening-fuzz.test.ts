import fc from 'fast-check';
import {
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  getNamedType,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isObjectType,
  isScalarType,
  isUnionType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../src/schema/index.js';
import { answer, type HttpAnswer, isGraphQLResponse, WsClient } from './hardening-helpers.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';

/**
 * Property-based fuzzing of the HTTP and websocket entry points: random token soup, random
 * schema-shaped operations with random arguments and variables, random JSON bodies and random
 * bytes. Whatever comes in, the answer is a well-formed GraphQL response, never a 5xx, and the
 * gateway keeps serving. Runs are bounded so the file takes seconds.
 */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
});

const AUTH = { authorization: `Bearer ${DEMO_TOKENS.alice}` };

function expectWellFormed(res: HttpAnswer, batch = false): void {
  expect(res.status, res.text).toBeLessThan(500);
  expect(res.headers.get('content-type') ?? '', res.text).toMatch(/json/);
  if (batch && Array.isArray(res.json)) {
    for (const item of res.json) {
      expect(isGraphQLResponse(item), res.text).toBe(true);
    }
    return;
  }
  expect(isGraphQLResponse(res.json), res.text).toBe(true);
}

async function postRaw(body: Uint8Array | string, headers: Record<string, string>) {
  return answer(
    await fetch(stack.gateway.url, {
      method: 'POST',
      headers,
      body: body as RequestInit['body'],
    }),
  );
}

const WORDS = [
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ':',
  '!',
  '=',
  ',',
  '...',
  '$v',
  '$first',
  '@include(if: true)',
  '@skip(if: $v)',
  '@deprecated',
  'query',
  'mutation',
  'subscription',
  'fragment',
  'on',
  'F',
  'me',
  'user',
  'users',
  'id',
  'username',
  'ownedChatRooms',
  'edges',
  'node',
  'messages',
  'first',
  'after',
  '__typename',
  '__schema',
  '__type',
  'types',
  'fields',
  'name',
  'Query',
  'User',
  '"x"',
  '"""block"""',
  '1',
  '-1',
  '1e400',
  '0.5',
  'true',
  'null',
  'ids',
  '#',
  '\n',
];

/** Token soup: mostly GraphQL words, sometimes arbitrary text. */
const soup = fc
  .array(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...WORDS) }, fc.string({ maxLength: 6 })),
    {
      maxLength: 60,
    },
  )
  .map((words) => words.join(' '));

/** A small deterministic PRNG, so a schema walk is reproducible from one fast-check integer. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JUNK = ['"x"', '0', '-5', '101', '1e9', 'true', 'null', '"9zzzzzzzzzzzzzzz"', '[]', '{}'];

function randomValue(type: GraphQLInputType, random: () => number, depth = 0): string {
  if (random() < 0.15) {
    return JUNK[Math.floor(random() * JUNK.length)] as string;
  }
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const n = Math.floor(random() * 3);
    return `[${Array.from({ length: n }, () => randomValue(nullable.ofType, random, depth + 1)).join(', ')}]`;
  }
  if (isEnumType(nullable)) {
    const values = nullable.getValues();
    return values[Math.floor(random() * values.length)]?.name ?? 'X';
  }
  if (isInputObjectType(nullable)) {
    if (depth > 2) {
      return '{}';
    }
    const fields = Object.values(nullable.getFields()).filter(() => random() < 0.7);
    return `{ ${fields.map((f) => `${f.name}: ${randomValue(f.type, random, depth + 1)}`).join(', ')} }`;
  }
  if (isScalarType(nullable)) {
    switch (nullable.name) {
      case 'Int':
        return String(Math.floor(random() * 130) - 10);
      case 'Float':
        return String(random() * 100);
      case 'Boolean':
        return random() < 0.5 ? 'true' : 'false';
      case 'DateTime':
        return random() < 0.5 ? '"2026-01-01T00:00:00Z"' : '"yesterday"';
      default:
        return JSON.stringify(
          ['alice', 'carol', '9zzzzzzzzzzzzzzz', '', 'x'.repeat(70), 'a b'][
            Math.floor(random() * 6)
          ],
        );
    }
  }
  return 'null';
}

function selection(type: GraphQLNamedType, random: () => number, depth: number): string {
  if (!(isObjectType(type) || isInterfaceType(type))) {
    if (isUnionType(type)) {
      return '{ __typename }';
    }
    return '';
  }
  const fields = Object.values(type.getFields()) as GraphQLField<unknown, unknown>[];
  const picked = fields.filter(() => random() < (depth === 0 ? 0.25 : 0.4)).slice(0, 6);
  if (picked.length === 0) {
    return '{ __typename }';
  }
  const parts = picked.map((field) => {
    const args = field.args
      .filter((arg) => random() < 0.6 || getNullableType(arg.type) !== arg.type)
      .map((arg) => `${arg.name}: ${randomValue(arg.type, random)}`);
    const named = getNamedType(field.type);
    const sub = depth < 4 ? selection(named, random, depth + 1) : '{ __typename }';
    const inner = isObjectType(named) || isInterfaceType(named) || isUnionType(named) ? sub : '';
    return `${field.name}${args.length ? `(${args.join(', ')})` : ''} ${inner}`;
  });
  return `{ ${parts.join(' ')} }`;
}

/** A schema-shaped query (or mutation, now and then) with random arguments. */
const schemaOperation = fc.integer().map((seed) => {
  const random = prng(seed);
  const root =
    random() < 0.15 && schema.getMutationType() ? schema.getMutationType() : schema.getQueryType();
  const keyword = root === schema.getMutationType() ? 'mutation' : 'query';
  return `${keyword} ${selection(root as GraphQLNamedType, random, 0)}`;
});

const variables = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(fc.constantFrom('v', 'first', 'id', 'x'), fc.jsonValue({ maxDepth: 2 })),
  fc.jsonValue({ maxDepth: 2 }),
);

describe('fuzzing over HTTP', () => {
  it('random token soup: a GraphQL response, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(soup, variables, async (query, vars) => {
        const res = await postRaw(JSON.stringify({ query, variables: vars }), {
          'content-type': 'application/json',
          ...AUTH,
        });
        expectWellFormed(res);
      }),
      { numRuns: 250, seed: 1 },
    );
  });

  it('random schema-shaped operations with random arguments (executed against the sandbox)', async () => {
    let executed = 0;
    stack.sandbox.resetCalls();
    await fc.assert(
      fc.asyncProperty(schemaOperation, fc.boolean(), async (query, withToken) => {
        const res = await postRaw(JSON.stringify({ query }), {
          'content-type': 'application/json',
          ...(withToken ? AUTH : {}),
        });
        expectWellFormed(res);
        const text = res.text;
        expect(text).not.toContain(DEMO_TOKENS.alice);
        expect(text).not.toMatch(/\bat .+:\d+:\d+\)/);
        if ((res.json as { data?: unknown }).data !== undefined) {
          executed++;
        }
      }),
      { numRuns: 250, seed: 2 },
    );
    // The generator is worth its runs only if many operations get past validation and run.
    expect(executed).toBeGreaterThan(50);
    expect(stack.sandbox.callCount()).toBeGreaterThan(50);
    console.log(
      `${executed} of 250 random operations executed, ${stack.sandbox.callCount()} upstream calls`,
    );
  });

  it('random JSON bodies (objects, arrays, scalars) as the request', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), async (body) => {
        const res = await postRaw(JSON.stringify(body), {
          'content-type': 'application/json',
          ...AUTH,
        });
        expectWellFormed(res, true);
      }),
      { numRuns: 200, seed: 3 },
    );
  });

  it('random bytes under random media types, and random GET query strings', async () => {
    const mediaType = fc.constantFrom(
      'application/json',
      'application/graphql',
      'application/graphql+json',
      'application/json; charset=utf-16',
      'text/plain',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      'application/octet-stream',
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), mediaType, async (bytes, type) => {
        const res = await postRaw(bytes, {
          'content-type': type,
          'x-graphql-yoga-csrf': '1',
          ...AUTH,
        });
        expectWellFormed(res, true);
      }),
      { numRuns: 200, seed: 4 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 200 }),
        fc.string({ maxLength: 50 }),
        async (q, v) => {
          const url = `${stack.gateway.url}?query=${encodeURIComponent(q)}&variables=${encodeURIComponent(v)}`;
          const res = await answer(
            await fetch(url, { headers: { ...AUTH, 'x-graphql-yoga-csrf': '1' } }),
          );
          expectWellFormed(res);
        },
      ),
      { numRuns: 100, seed: 5 },
    );
  });
});

describe('fuzzing over websockets', () => {
  let ws: WsClient;
  beforeAll(async () => {
    ws = new WsClient(stack.gateway.url);
    await ws.init({ authorization: `Bearer ${DEMO_TOKENS.alice}` });
  });
  afterAll(() => ws.close());

  it('random documents: each gets a result or an error, and the socket stays open', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(soup, schemaOperation), async (query) => {
        const id = `f${n++}`;
        ws.subscribe(id, query);
        const { next, error } = await ws.result(id);
        if (error === undefined) {
          expect(next.length).toBeGreaterThan(0);
          for (const payload of next) {
            expect(isGraphQLResponse(payload)).toBe(true);
          }
        } else {
          expect(Array.isArray(error)).toBe(true);
          for (const e of error as { message: unknown }[]) {
            expect(typeof e.message).toBe('string');
          }
        }
        expect(ws.closeCode).toBeNull();
      }),
      { numRuns: 150, seed: 6 },
    );
  });
});

describe('after the fuzzing', () => {
  it('the gateway still answers normally', async () => {
    const res = await stack.gql<{ me: { username: string } }>('{ me { username } }');
    expect(res).toEqual({ data: { me: { username: 'alice' } } });
    expect((await fetch(`${stack.gateway.origin}/health`)).status).toBe(200);
  });
});
