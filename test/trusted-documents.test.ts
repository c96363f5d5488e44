import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createClient } from 'graphql-ws';
import { beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ConfigError, loadConfig } from '../src/config.js';
import { loadManifest, sha256 } from '../src/engine/trusted-documents.js';
import { DEMO_TOKENS, type GraphQLResponse, type Stack, startStack } from './harness.js';
import { root, startProcess } from './support/process.js';

/** Trusted documents (PERSISTED_OPERATIONS, ALLOW_ARBITRARY_OPERATIONS) over HTTP and websockets. */
const manifestPath = resolve(root, 'examples/generated/client/persisted-documents.json');
const manifest = loadManifest(manifestPath);
const hashOf = (name: string): string => {
  for (const [hash, document] of manifest) {
    if (document.includes(`query ${name}`)) {
      return hash;
    }
  }
  throw new Error(`no ${name} in the manifest`);
};
const ME = hashOf('Me');
const ARBITRARY = '{ me { username } }';

let strict: Stack;
let open: Stack;
beforeAll(async () => {
  [strict, open] = await Promise.all([
    startStack({ gateway: { trustedDocuments: { documents: manifest, allowArbitrary: false } } }),
    startStack({ gateway: { trustedDocuments: { documents: manifest, allowArbitrary: true } } }),
  ]);
});

async function post(
  stack: Stack,
  body: Record<string, unknown>,
): Promise<{ status: number; body: GraphQLResponse }> {
  const res = await fetch(stack.gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${DEMO_TOKENS.alice}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as GraphQLResponse };
}

const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

async function overWs(stack: Stack, payload: { query: string; extensions?: object }) {
  const client = createClient({
    url: stack.gateway.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${DEMO_TOKENS.alice}` },
    retryAttempts: 0,
  });
  try {
    const results: unknown[] = [];
    try {
      for await (const result of client.iterate(payload as never)) {
        results.push(result);
      }
    } catch (errors) {
      results.push({ refused: errors });
    }
    return results;
  } finally {
    await client.dispose();
  }
}

const codeOf = (value: unknown): unknown =>
  (value as { refused?: { extensions?: { code?: string } }[] }).refused?.[0]?.extensions?.code;

describe('ALLOW_ARBITRARY_OPERATIONS=false over HTTP', () => {
  it('runs a manifest operation sent by its hash', async () => {
    const { status, body } = await post(strict, { extensions: persisted(ME) });
    expect(status).toBe(200);
    expect(body).toEqual({ data: { me: expect.objectContaining({ username: 'alice' }) } });
  });

  it("runs a manifest operation sent as the manifest's text", async () => {
    const { body } = await post(strict, { query: manifest.get(ME) });
    expect(body.data).toEqual({ me: expect.objectContaining({ username: 'alice' }) });
  });

  it('runs a GET by hash (variables and extensions as query parameters)', async () => {
    const url = new URL(strict.gateway.url);
    url.searchParams.set('extensions', JSON.stringify(persisted(hashOf('UserId'))));
    url.searchParams.set('variables', JSON.stringify({ username: 'bob' }));
    const res = await fetch(url, {
      headers: { 'x-graphql-yoga-csrf': '1', authorization: `Bearer ${DEMO_TOKENS.alice}` },
    });
    expect(((await res.json()) as GraphQLResponse).data).toEqual({
      user: expect.objectContaining({ username: 'bob' }),
    });
  });

  it('refuses an arbitrary document before parsing it, with no upstream call', async () => {
    const before = strict.upstreamCalls.length;
    for (const query of [ARBITRARY, '{ this is not GraphQL', `${manifest.get(ME)} `]) {
      const { status, body } = await post(strict, { query });
      expect(status).toBe(200);
      expect(body.data).toBeUndefined();
      expect(body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
      expect(body.errors?.[0]?.message).toMatch(/Only trusted documents/);
    }
    expect(strict.upstreamCalls.length).toBe(before);
  });

  it('refuses an unknown hash, also when a document comes with it', async () => {
    const before = strict.upstreamCalls.length;
    const unknown = sha256(ARBITRARY);
    for (const body of [
      { extensions: persisted(unknown) },
      { query: ARBITRARY, extensions: persisted(unknown) },
    ]) {
      const res = await post(strict, body);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
      expect(res.body.errors?.[0]?.message).toMatch(/not in the trusted documents/);
    }
    expect(strict.upstreamCalls.length).toBe(before);
  });

  it("a known hash runs the manifest's document, whatever text comes with it", async () => {
    const { body } = await post(strict, {
      query: '{ me { id } }',
      extensions: persisted(ME),
    });
    expect(body.data).toEqual({ me: expect.objectContaining({ username: 'alice' }) });
  });

  it('refuses a request with neither a document nor a hash', async () => {
    const { body } = await post(strict, {});
    expect(body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_ID_REQUIRED');
  });
});

describe('ALLOW_ARBITRARY_OPERATIONS=false over websockets', () => {
  it('runs a manifest operation by hash and by text', async () => {
    for (const payload of [
      { query: '', extensions: persisted(ME) },
      { query: manifest.get(ME) ?? '' },
    ]) {
      expect(await overWs(strict, payload)).toEqual([
        { data: { me: expect.objectContaining({ username: 'alice' }) } },
      ]);
    }
  });

  it('refuses a document outside the manifest and an unknown hash, with no upstream call', async () => {
    // Connecting with a token checks it (`i`); the operations themselves call nothing.
    const calls = () => strict.upstreamCalls.filter((call) => call.endpoint !== 'i').length;
    const before = calls();
    const arbitrary = await overWs(strict, { query: ARBITRARY });
    expect(arbitrary).toHaveLength(1);
    expect(codeOf(arbitrary[0])).toBe('PERSISTED_QUERY_NOT_FOUND');
    const unknown = await overWs(strict, { query: '', extensions: persisted(sha256(ARBITRARY)) });
    expect(codeOf(unknown[0])).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(calls()).toBe(before);
  });
});

describe('ALLOW_ARBITRARY_OPERATIONS=true (the default) with a manifest', () => {
  it('runs arbitrary documents as before, and manifest hashes too', async () => {
    expect((await post(open, { query: ARBITRARY })).body).toEqual({
      data: { me: { username: 'alice' } },
    });
    expect((await post(open, { extensions: persisted(ME) })).body.data).toEqual({
      me: expect.objectContaining({ username: 'alice' }),
    });
    expect(await overWs(open, { query: ARBITRARY })).toEqual([
      { data: { me: { username: 'alice' } } },
    ]);
    expect(await overWs(open, { query: '', extensions: persisted(ME) })).toEqual([
      { data: { me: expect.objectContaining({ username: 'alice' }) } },
    ]);
  });

  it('an unknown hash with its document runs the document; without it, it is not found', async () => {
    const unknown = persisted(sha256(ARBITRARY));
    expect((await post(open, { query: ARBITRARY, extensions: unknown })).body).toEqual({
      data: { me: { username: 'alice' } },
    });
    const alone = await post(open, { extensions: unknown });
    expect(alone.body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('a request without a document is the same BAD_REQUEST as without a manifest', async () => {
    const { status, body } = await post(open, {});
    expect(status).toBe(400);
    expect(body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });
});

describe('PERSISTED_OPERATIONS and ALLOW_ARBITRARY_OPERATIONS configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trusted-documents-'));
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('loads the generated manifest; arbitrary operations default to allowed', () => {
    const config = loadConfig({ PERSISTED_OPERATIONS: manifestPath });
    expect(config.persistedOperations?.size).toBe(manifest.size);
    expect(config.allowArbitraryOperations).toBe(true);
    expect(loadConfig({}).persistedOperations).toBeNull();
  });

  it.each([
    ['a missing file', () => join(dir, 'missing.json')],
    ['not JSON', () => file('bad.json', '{')],
    ['an array', () => file('array.json', '[]')],
    ['an empty object', () => file('empty.json', '{}')],
    ['a key that is not a hash', () => file('key.json', JSON.stringify({ me: '{ me { id } }' }))],
    [
      'a hash of another text',
      () => file('other.json', JSON.stringify({ [sha256('{ a }')]: '{ b }' })),
    ],
  ])('refuses %s', (_what, path) => {
    expect(() => loadConfig({ PERSISTED_OPERATIONS: path() })).toThrow(ConfigError);
    expect(() => loadConfig({ PERSISTED_OPERATIONS: path() })).toThrow(/^PERSISTED_OPERATIONS: /);
  });

  it('refuses ALLOW_ARBITRARY_OPERATIONS=false without a manifest, and a non-boolean', () => {
    expect(() => loadConfig({ ALLOW_ARBITRARY_OPERATIONS: 'false' })).toThrow(
      /^ALLOW_ARBITRARY_OPERATIONS: /,
    );
    expect(() =>
      loadConfig({ PERSISTED_OPERATIONS: manifestPath, ALLOW_ARBITRARY_OPERATIONS: 'maybe' }),
    ).toThrow(/^ALLOW_ARBITRARY_OPERATIONS: /);
  });

  it('a bad manifest stops `npm start` with exit 1 naming the variable', async () => {
    const program = startProcess('src/main.ts', [], {
      MISSKEY_URL: '',
      LOG_LEVEL: 'silent',
      PERSISTED_OPERATIONS: file('start.json', 'not json'),
    });
    expect(await program.exited).toBe(1);
    expect(program.output().trim()).toMatch(/^configuration error: PERSISTED_OPERATIONS: /);
  });
});
