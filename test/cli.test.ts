import { describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { freePort, startProcess } from './support/process.js';

/** The two programs a user runs: `npm run sandbox` and `npm start`, as real processes. */
const start = (script: string, args: string[], env: Record<string, string>) =>
  startProcess(script, args, { MISSKEY_URL: '', LOG_LEVEL: 'silent', ...env });

describe('configuration errors stop the process at boot', () => {
  it.each([
    [{ MISSKEY_URL: 'not a url' }, 'MISSKEY_URL'],
    [{ MISSKEY_URL: 'ftp://misskey.example' }, 'MISSKEY_URL'],
    [{ PORT: '70000' }, 'PORT'],
    [{ PORT: 'abc' }, 'PORT'],
    [{ UPSTREAM_TIMEOUT_MS: '5' }, 'UPSTREAM_TIMEOUT_MS'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ])('%o → exit 1 naming %s', async (env, variable) => {
    const program = start('src/main.ts', [], env);
    expect(await program.exited).toBe(1);
    const lines = program.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^configuration error: ${variable}: `));
  });
});

describe('npm run sandbox + MISSKEY_URL=… npm start', () => {
  it('serves the gateway in front of a separately started sandbox, and stops on SIGTERM', async () => {
    const sandboxPort = await freePort();
    const gatewayPort = await freePort();
    const sandbox = start('src/sandbox/main.ts', ['--port', String(sandboxPort)], {});
    await sandbox.waitFor('listening');
    const gateway = start('src/main.ts', [], {
      MISSKEY_URL: `http://127.0.0.1:${sandboxPort}`,
      PORT: String(gatewayPort),
    });
    await gateway.waitFor(`upstream: http://127.0.0.1:${sandboxPort}`);

    const res = await fetch(`http://127.0.0.1:${gatewayPort}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${DEMO_TOKENS.bob}` },
      body: JSON.stringify({ query: '{ me { username } }' }),
    });
    expect(await res.json()).toEqual({ data: { me: { username: 'bob' } } });
    expect((await fetch(`http://127.0.0.1:${gatewayPort}/ready`)).status).toBe(200);

    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    sandbox.child.kill('SIGTERM');
    expect(await sandbox.exited).toBe(0);
  });

  it('npm start without MISSKEY_URL serves the demo sandbox and prints the demo tokens', async () => {
    const port = await freePort();
    const demo = start('src/main.ts', [], { PORT: String(port) });
    await demo.waitFor('paste into GraphiQL');
    expect(demo.output()).toContain(DEMO_TOKENS.alice);
    const page = await fetch(`http://127.0.0.1:${port}/graphql`, {
      headers: { accept: 'text/html' },
    });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('misskey-graphql');
    demo.child.kill('SIGTERM');
    expect(await demo.exited).toBe(0);
  });
});
