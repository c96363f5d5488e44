import { gunzipSync } from 'node:zlib';
import { parse, validate } from 'graphql';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createGateway, type Gateway, gatewayOptionsFromConfig } from '../src/app/gateway.js';
import { loadConfig } from '../src/config.js';
import { GRAPHIQL_CSP, type GraphiQLPageOptions, graphiqlTabs } from '../src/http/graphiql.js';
import { schema } from '../src/schema/index.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';

/** GraphiQL as served by the gateway (the browser itself is driven in browser.test.ts). */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});

async function page(url: string, accept = 'text/html,application/xhtml+xml') {
  const res = await fetch(url, { headers: { accept } });
  return { res, html: await res.text() };
}

function embeddedOptions(html: string): GraphiQLPageOptions {
  const json = /<script type="application\/json" id="graphiql-options"[^>]*>(.*?)<\/script>/s.exec(
    html,
  )?.[1];
  expect(json).toBeDefined();
  return JSON.parse(json ?? 'null') as GraphiQLPageOptions;
}

describe('GraphiQL page', () => {
  it('is served on GET /graphql to a browser, with every asset from this origin', async () => {
    const { res, html } = await page(stack.gateway.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toBe(GRAPHIQL_CSP);
    expect(html).toContain('<title>misskey-graphql</title>');
    // No CDN: every src/href is a path on this server.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(refs.length).toBe(5);
    for (const ref of refs) {
      expect(ref).toMatch(/^\/graphiql\/[0-9a-f]{12}\/[a-z.]+$/);
    }
    expect(html).not.toMatch(/https?:\/\//);

    const options = embeddedOptions(html);
    expect(options).toMatchObject({ endpoint: '/graphql', subscriptionsProtocol: 'WS' });
    expect(
      options.defaultTabs.map((tab) => /(query|subscription|mutation) (\w+)/.exec(tab.query)?.[2]),
    ).toEqual([
      'Conversation',
      'MyRooms',
      'Trending',
      'NewMessages',
      'ReplyAsBob',
      'Invitations',
      'UnreadBadge',
    ]);
    // Without demo defaults (a real instance) no token is preset anywhere, and none is stored.
    expect(options.headers).toBeUndefined();
    expect(options.defaultTabs.some((tab) => tab.headers !== undefined)).toBe(false);
    expect(options.shouldPersistHeaders).toBe(false);
  });

  it('serves its assets gzipped and cacheable, and 404s unknown ones', async () => {
    const { html } = await page(stack.gateway.url);
    const base = /href="(\/graphiql\/[0-9a-f]{12}\/)graphiql\.css"/.exec(html)?.[1];
    const expected: Record<string, string> = {
      'graphiql.js': 'text/javascript; charset=utf-8',
      'graphiql.css': 'text/css; charset=utf-8',
      'env.js': 'text/javascript; charset=utf-8',
      'boot.js': 'text/javascript; charset=utf-8',
      'editor.worker.js': 'text/javascript; charset=utf-8',
      'json.worker.js': 'text/javascript; charset=utf-8',
      'graphql.worker.js': 'text/javascript; charset=utf-8',
      'favicon.ico': 'image/x-icon',
    };
    for (const [name, type] of Object.entries(expected)) {
      const res = await fetch(`${stack.gateway.origin}${base}${name}`);
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type'), name).toBe(type);
      expect(res.headers.get('cache-control'), name).toBe('public, max-age=31536000, immutable');
      expect((await res.arrayBuffer()).byteLength, name).toBeGreaterThan(100);
    }

    // fetch() decompresses transparently; a raw check of the encoding goes through node:http.
    const { request } = await import('node:http');
    const raw = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((done) => {
      request(
        `${stack.gateway.origin}${base}graphiql.js`,
        {
          headers: { 'accept-encoding': 'gzip, br' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => done({ headers: res.headers, body: Buffer.concat(chunks) }));
        },
      ).end();
    });
    expect(raw.headers['content-encoding']).toBe('gzip');
    const js = gunzipSync(raw.body).toString();
    expect(js).toContain('renderYogaGraphiQL');
    expect(raw.body.length).toBeLessThan(js.length / 2);

    expect((await fetch(`${stack.gateway.origin}${base}nope.js`)).status).toBe(404);
    expect((await fetch(`${stack.gateway.origin}${base}graphiql.js/x`)).status).toBe(404);
    expect(
      (await fetch(`${stack.gateway.origin}${base}graphiql.js`, { method: 'POST' })).status,
    ).toBe(405);
  });

  it('is only for browser navigations: a POST accepting HTML still runs the operation', async () => {
    const res = await fetch(stack.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/html, application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it("in demo mode opens with alice's token, and a tab that replies as bob to alice", async () => {
    const demo = stack.sandbox.demo;
    expect(demo).not.toBeNull();
    const gateway = await createGateway({
      misskeyUrl: stack.sandbox.origin,
      port: 0,
      graphiqlDefaults: { demo: demo ?? undefined },
    });
    try {
      const options = embeddedOptions((await page(gateway.url)).html);
      const alice = JSON.stringify({ Authorization: `Bearer ${DEMO_TOKENS.alice}` }, null, 2);
      expect(options.headers).toBe(alice);
      expect(options.shouldPersistHeaders).toBe(true);
      const [conversation, rooms, trending, live, reply] = options.defaultTabs;
      for (const tab of [conversation, rooms, trending, live]) {
        expect(tab?.headers).toBe(alice);
      }
      expect(JSON.parse(conversation?.variables ?? '{}')).toEqual({ username: 'bob' });
      // GraphiQL fills the first tab's variables editor from the top-level option.
      expect(options.variables).toBe(conversation?.variables);
      expect(JSON.parse(reply?.headers ?? '{}')).toEqual({
        Authorization: `Bearer ${DEMO_TOKENS.bob}`,
      });
      expect(JSON.parse(reply?.variables ?? '{}')).toMatchObject({
        toUserId: demo?.users.alice.id,
      });
    } finally {
      await gateway.close();
    }
  });
});

describe('the example tabs', () => {
  it('are valid operations of the gateway schema', () => {
    for (const tab of graphiqlTabs()) {
      const errors = validate(schema, parse(tab.query)).map((error) => error.message);
      expect(
        errors,
        tab.query.split('\n').find((line) => !line.startsWith('#')),
      ).toEqual([]);
    }
  });

  it('run against the demo sandbox as they open: data, no errors', async () => {
    const demo = stack.sandbox.demo;
    const tabs = graphiqlTabs(demo ? { demo } : {});
    for (const tab of tabs.filter((t) => !t.query.includes('subscription '))) {
      const token = /Bearer (\S+)"/.exec(tab.headers ?? '')?.[1] ?? null;
      const res = await stack.gql(tab.query, JSON.parse(tab.variables ?? '{}'), token);
      expect(res.errors, tab.query).toBeUndefined();
      expect(res.data).toBeTruthy();
    }
  });
});

describe('GRAPHIQL=false', () => {
  let gateway: Gateway;
  beforeAll(async () => {
    const config = loadConfig({ GRAPHIQL: 'false', PORT: '0', LOG_LEVEL: 'silent' });
    expect(config.graphiql).toBe(false);
    gateway = await createGateway(gatewayOptionsFromConfig(config, stack.sandbox.origin));
  });
  afterAll(() => gateway.close());

  it('serves no GraphiQL page and no assets, while the API keeps working', async () => {
    const { res, html } = await page(gateway.url);
    expect(res.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(html).not.toMatch(/graphiql/i);
    expect((await fetch(`${gateway.origin}/graphiql/0123456789ab/graphiql.js`)).status).toBe(404);

    const api = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${DEMO_TOKENS.bob}` },
      body: JSON.stringify({ query: '{ me { username } }' }),
    });
    expect(await api.json()).toEqual({ data: { me: { username: 'bob' } } });
  });
});

describe('the token GraphiQL sends over websockets', () => {
  const wsUrl = () => stack.gateway.url.replace(/^http/, 'ws');

  async function runOverWs(
    extensions: Record<string, unknown> | undefined,
    connectionParams?: Record<string, unknown>,
  ) {
    const client = createClient({
      url: wsUrl(),
      webSocketImpl: WebSocket,
      connectionParams,
      retryAttempts: 0,
    });
    try {
      const results: unknown[] = [];
      for await (const result of client.iterate({
        query: '{ me { username } }',
        ...(extensions ? { extensions } : {}),
      })) {
        results.push(result);
      }
      return results;
    } finally {
      await client.dispose();
    }
  }

  it("is read from the operation's extensions.headers (GraphiQL's header editor)", async () => {
    const results = await runOverWs({
      headers: { Authorization: `Bearer ${DEMO_TOKENS.bob}` },
    });
    expect(results).toEqual([{ data: { me: { username: 'bob' } } }]);
  });

  it('yields to connection_init params; an operation with no token at all is refused (4403)', async () => {
    const both = await runOverWs(
      { headers: { Authorization: `Bearer ${DEMO_TOKENS.bob}` } },
      { authorization: `Bearer ${DEMO_TOKENS.carol}` },
    );
    expect(both).toEqual([{ data: { me: { username: 'carol' } } }]);

    const refused = await runOverWs(undefined).then(
      () => null,
      (closed: { code?: number }) => closed.code,
    );
    expect(refused).toBe(4403);
  });

  it('is ignored in an HTTP body: over HTTP only the Authorization header counts', async () => {
    const res = await fetch(stack.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: '{ me { username } }',
        extensions: { headers: { Authorization: `Bearer ${DEMO_TOKENS.bob}` } },
      }),
    });
    const body = (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
    expect(body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
