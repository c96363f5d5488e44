import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../src/app/gateway.js';
import { serializeError } from '../src/observability/index.js';
import { checkedLogger, DEMO_TOKENS, type Stack, startStack } from './harness.js';

/**
 * A logged error must never change an answer. The same requests go to three gateways in front of
 * one sandbox: production logger at `info`, at `debug`, and logs off; every answer must be the
 * same, and every log line valid JSON without a token (the harness's checked logger).
 */

let stack: Stack;
let gateways: Record<'info' | 'debug' | 'silent', Gateway>;
beforeAll(async () => {
  stack = await startStack({ gateway: { logger: checkedLogger('info') } });
  const start = (level: 'info' | 'debug' | 'silent') =>
    createGateway({ misskeyUrl: stack.sandbox.origin, port: 0, logger: checkedLogger(level) });
  gateways = {
    info: await start('info'),
    debug: await start('debug'),
    silent: await start('silent'),
  };
});
afterAll(async () => {
  await Promise.all(Object.values(gateways).map((gateway) => gateway.close()));
});

async function ask(gateway: Gateway, query: string, token: string | null): Promise<unknown> {
  const res = await fetch(gateway.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query }),
  });
  return { status: res.status, body: await res.json() };
}

async function sameEverywhere(query: string, token: string | null): Promise<unknown> {
  const [info, debug, silent] = await Promise.all([
    ask(gateways.info, query, token),
    ask(gateways.debug, query, token),
    ask(gateways.silent, query, token),
  ]);
  expect(info, `info vs silent: ${query}`).toEqual(silent);
  expect(debug, `debug vs silent: ${query}`).toEqual(silent);
  return silent;
}

describe('answers with logs on and off', () => {
  const cases: [string, string | null][] = [
    ['{ me { id } }', null],
    ['{ user(username: "bob") { username } me { id } }', null],
    ['{ user(id: "Bearer abc") { id } }', null],
    ['{ user(id: "Bearer \\"quoted\\\\ back\\nslash") { id } }', DEMO_TOKENS.alice],
    ['{ me { username } }', DEMO_TOKENS.alice],
    ['{ user(username: "nobody-here") { id } }', DEMO_TOKENS.bob],
    ['{ chatRoom(id: "0000000000000000") { id } }', DEMO_TOKENS.alice],
    ['{ me { id }', DEMO_TOKENS.alice],
    ['{ nope }', null],
  ];
  for (const [query, token] of cases) {
    it(`${token ? 'with' : 'without'} a token: ${query}`, async () => {
      await sameEverywhere(query, token);
    });
  }

  it('token-less `me` is UNAUTHENTICATED with its path (me is non-null, so data is null)', async () => {
    const answer = (await sameEverywhere(
      '{ user(username: "bob") { username } me { id } }',
      null,
    )) as { body: { data: null; errors: { path: string[]; extensions: { code: string } }[] } };
    expect(answer.body.data).toBeNull();
    expect(answer.body.errors[0]?.path).toEqual(['me']);
    expect(answer.body.errors[0]?.extensions.code).toBe('UNAUTHENTICATED');
  });

  it('holds for any id text (Bearer, quotes, backslashes, newlines)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .array(fc.constantFrom('Bearer ', 'bearer\t', '"', '\\', '\n', '\\"', 'abc', '✓', ' '), {
            maxLength: 8,
          })
          .map((parts) => parts.join('')),
        async (id) => {
          await sameEverywhere(`{ user(id: ${JSON.stringify(id)}) { id } }`, null);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('the error serializer', () => {
  it('never throws, gives JSON-safe values and scrubs bearer values, whatever the message', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.constantFrom('Bearer ', 'bearer ', '"', '\\', '\n', '\\"', '{', '}', ','),
            fc.string({ maxLength: 6 }),
          ),
          { maxLength: 12 },
        ),
        (parts) => {
          const message = `${parts.join('')} Bearer ${DEMO_TOKENS.alice}`;
          const error = Object.assign(new Error(message), { detail: { text: message } });
          const serialized = serializeError(error);
          const json = JSON.stringify(serialized);
          expect(() => JSON.parse(json)).not.toThrow();
          expect(json).not.toContain(DEMO_TOKENS.alice);
        },
      ),
      { numRuns: 300 },
    );
  });
});
