import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type BrowserContext, chromium, type Page, type WebSocket } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';

/**
 * GraphiQL in a real headless Chromium (Debian's package, driven by playwright-core; no browser is
 * ever downloaded), against `npm start` as a newcomer runs it: the gateway in front of the demo
 * sandbox, as a real process. Without Chromium it skips with one line saying how to enable it,
 * except in CI (`CI=true`), where it must run (.ci/run installs Debian's chromium).
 */
const root = resolve(import.meta.dirname, '..');
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = !existsSync(executablePath) && process.env.CI !== 'true';
if (skip) {
  console.warn(
    `browser tests skipped: no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );
}

let server: ChildProcess | undefined;
let origin = '';
let context: BrowserContext | undefined;
let profile = '';
/** Every URL the browser asked for (pages, scripts, workers, fetches, websockets). */
const requested: string[] = [];
const problems: string[] = [];

beforeAll(async () => {
  if (skip) {
    return;
  }
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: install it (apt-get install chromium, as .ci/run ` +
        'does) or set CHROMIUM_PATH',
    );
  }
  server = spawn(resolve(root, 'node_modules/.bin/tsx'), ['src/main.ts'], {
    cwd: root,
    env: { ...process.env, MISSKEY_URL: '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  server.stderr?.on('data', (chunk) => {
    output += String(chunk);
  });
  origin = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`npm start printed no URL:\n${output}`)), 20_000);
    server?.stdout?.on('data', (chunk) => {
      output += String(chunk);
      const url = /serving (http:\/\/127\.0\.0\.1:\d+)\/graphql/.exec(output)?.[1];
      if (url) {
        clearTimeout(timer);
        done(url);
      }
    });
    server?.once('exit', (code) => fail(new Error(`npm start exited with ${code}:\n${output}`)));
  });

  profile = mkdtempSync(join(tmpdir(), 'misskey-graphql-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context.on('request', (request) => requested.push(request.url()));
  context.on('page', watch);
  for (const page of context.pages()) {
    watch(page);
  }
}, 60_000);

function watch(page: Page): void {
  page.on('websocket', (ws) => requested.push(ws.url()));
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // Content-Security-Policy violations and failed loads are console errors too.
    if (message.type() === 'error') {
      problems.push(`console: ${message.text()}`);
    }
  });
}

afterAll(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((done) => server?.once('exit', done));
    server.kill('SIGTERM');
    await exited;
  }
  if (profile) {
    rmSync(profile, { recursive: true, force: true });
  }
});

async function openGraphiQL(page: Page): Promise<void> {
  await page.goto(`${origin}/graphql`);
  await page.locator('.graphiql-tab-active').waitFor({ timeout: 20_000 });
}

/** Clicks a tab until it is the active one (GraphiQL's draggable tab strip can eat the first
 *  click), then lets GraphiQL pick up the tab's operation name. */
async function selectTab(page: Page, name: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (
      (await page.locator('.graphiql-tab-active .graphiql-tab-button').textContent())?.trim() ===
      name
    ) {
      await page.waitForTimeout(300);
      return;
    }
    await page.locator('.graphiql-tab-button', { hasText: name }).click();
    await page
      .locator('.graphiql-tab-active .graphiql-tab-button', { hasText: name })
      .waitFor({ timeout: 1_000 })
      .catch(() => {});
  }
  throw new Error(`could not select the GraphiQL tab ${name}`);
}

/** The text the result panel shows (Monaco renders its spaces as no-break spaces). */
async function resultText(page: Page): Promise<string> {
  const text = await page.locator('.graphiql-response').textContent();
  return (text ?? '').replace(/\u00a0/g, ' ');
}

describe.skipIf(skip)('GraphiQL in Chromium against the demo sandbox', () => {
  let alice: Page;
  let conversationHeadline = '';

  it("opens with the example tabs and alice's token, and runs the conversation query", async () => {
    if (!context) {
      throw new Error('no browser');
    }
    alice = context.pages()[0] ?? (await context.newPage());
    await openGraphiQL(alice);
    const tabs = await alice.locator('.graphiql-tab-button').allTextContents();
    expect(tabs.map((tab) => tab.trim())).toEqual([
      'Conversation',
      'MyRooms',
      'Trending',
      'NewMessages',
      'ReplyAsBob',
      'Invitations',
      'UnreadBadge',
    ]);
    await alice.getByText('Headers', { exact: true }).click();
    await expect
      .poll(async () =>
        (await alice.locator('.graphiql-editor-tool').textContent())?.replace(/\u00a0/g, ' '),
      )
      .toContain(`Bearer ${DEMO_TOKENS.alice}`);

    const answered = alice.waitForResponse(
      (res) =>
        res.request().method() === 'POST' && /Conversation/.test(res.request().postData() ?? ''),
    );
    await alice.locator('.graphiql-execute-button').click();
    const body = (await (await answered).json()) as {
      data: { user: { name: string; chatMessages: { edges: { node: { text: string } }[] } } };
    };
    expect(body.data.user.name).toBe('Bob');
    const edges = body.data.user.chatMessages.edges;
    expect(edges).toHaveLength(10);
    conversationHeadline = edges[0]?.node.text ?? '';
    expect(conversationHeadline).not.toBe('');
    // What the person sees: the result panel shows bob and the newest line of the conversation.
    await expect.poll(() => resultText(alice)).toContain('"name": "Bob"');
    await expect.poll(() => resultText(alice)).toContain(conversationHeadline);
  }, 45_000);

  it('runs the subscription tab and shows a message that bob sends from a second window', async () => {
    if (!context) {
      throw new Error('no browser');
    }
    await selectTab(alice, 'NewMessages');
    const subscribed = new Promise<string>((done) => {
      const onSocket = (ws: WebSocket) =>
        ws.on('framesent', (frame) => {
          const text = String(frame.payload);
          if (text.includes('"subscribe"') && text.includes('NewMessages')) {
            done(text);
          }
        });
      alice.on('websocket', onSocket);
    });
    await alice.locator('.graphiql-execute-button').click();
    const frame = JSON.parse(await subscribed) as {
      payload: { extensions?: { headers?: Record<string, string> } };
    };
    // The header editor's token travels with the operation over the websocket.
    expect(frame.payload.extensions?.headers?.Authorization).toBe(`Bearer ${DEMO_TOKENS.alice}`);
    await expect
      .poll(() => alice.locator('.graphiql-execute-button').getAttribute('aria-label'))
      .toMatch(/^Stop/);

    const bob = await context.newPage();
    await openGraphiQL(bob);
    await selectTab(bob, 'ReplyAsBob');
    const sent = bob.waitForResponse(
      (res) =>
        res.request().method() === 'POST' && /ReplyAsBob/.test(res.request().postData() ?? ''),
    );
    await bob.locator('.graphiql-execute-button').click();
    const reply = (await (await sent).json()) as {
      data: { sendChatMessage: { id: string; text: string; fromUser: { username: string } } };
    };
    expect(reply.data.sendChatMessage).toMatchObject({
      text: 'Hello from GraphiQL!',
      fromUser: { username: 'bob' },
    });

    // Misskey announces a new message about 3 s after it was sent.
    await expect
      .poll(() => resultText(alice), { timeout: 15_000, interval: 250 })
      .toContain(reply.data.sendChatMessage.id);
    const shown = await resultText(alice);
    expect(shown).toContain('"chatMessageReceived"');
    expect(shown).toContain('Hello from GraphiQL!');
    expect(shown).toContain('"username": "bob"');
    await bob.close();
  }, 45_000);

  it("reloads without piling up tabs, keeps a person's tabs, and drops them when the examples changed", async () => {
    if (!context) {
      throw new Error('no browser');
    }
    const examples = [
      'Conversation',
      'MyRooms',
      'Trending',
      'NewMessages',
      'ReplyAsBob',
      'Invitations',
      'UnreadBadge',
    ];
    // Other windows of this profile would store their own tab state over the one set below.
    for (const open of context.pages()) {
      await open.close();
    }
    const page = await context.newPage();
    const tabNames = async () => {
      await openGraphiQL(page);
      return (await page.locator('.graphiql-tab-button').allTextContents()).map((t) => t.trim());
    };
    // The earlier windows stored their tabs in this browser profile: they come back as they were.
    expect(await tabNames()).toEqual(examples);
    await selectTab(page, 'MyRooms');
    // GraphiQL stores its tabs a moment after a change.
    await expect
      .poll(() =>
        page.evaluate(
          () => JSON.parse(localStorage.getItem('graphiql:tabState') ?? '{}').activeTabIndex,
        ),
      )
      .toBe(1);
    expect(await tabNames()).toEqual(examples);
    expect(await page.locator('.graphiql-tab-active .graphiql-tab-button').textContent()).toBe(
      'MyRooms',
    );

    const stale = (title: string) => ({
      id: title,
      hash: title,
      title,
      query: `query ${title} { me { id } }`,
      variables: null,
      headers: null,
      operationName: title,
      response: null,
    });
    const storeOwnTabs = () =>
      page.evaluate(
        (tabs) =>
          localStorage.setItem('graphiql:tabState', JSON.stringify({ activeTabIndex: 1, tabs })),
        [stale('Mine'), stale('Yours')],
      );
    await storeOwnTabs();
    expect(await tabNames()).toEqual(['Mine', 'Yours']);

    await storeOwnTabs();
    await page.evaluate(() => localStorage.setItem('misskey-graphql:tabs', 'an older release'));
    expect(await tabNames()).toEqual(examples);
    // The fresh examples run as they are, variables included.
    const answered = page.waitForResponse(
      (res) =>
        res.request().method() === 'POST' && /Conversation/.test(res.request().postData() ?? ''),
    );
    await page.locator('.graphiql-execute-button').click();
    const body = (await (await answered).json()) as { data?: { user?: { name?: string } } };
    expect(body.data?.user?.name).toBe('Bob');
    await page.close();
  }, 45_000);

  it('loaded nothing from outside the gateway and logged no error', () => {
    const [host, port] = origin.replace('http://', '').split(':');
    const local = new RegExp(`^(https?|wss?)://${host?.replace(/\./g, '\\.')}:${port}/`);
    const outside = requested.filter((url) => !local.test(url) && !/^(blob|data):/.test(url));
    expect(outside).toEqual([]);
    expect(requested.some((url) => url.startsWith('ws://'))).toBe(true);
    expect(requested.filter((url) => url.includes('/graphiql/')).length).toBeGreaterThanOrEqual(7);
    expect(problems).toEqual([]);
  });
});
