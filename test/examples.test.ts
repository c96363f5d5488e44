import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { generate } from '@graphql-codegen/cli';
import { parse, validate } from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import codegenConfig from '../examples/codegen.js';
import { loadManifest } from '../src/engine/trusted-documents.js';
import { schema } from '../src/schema/index.js';
import { DEMO_TOKENS, type Stack, startStack } from './harness.js';
import { root, startProcess } from './support/process.js';

/** The programs in examples/ run for real against the sandbox, so they never rot. */
const operationsDir = resolve(root, 'examples/operations');
const generatedPath = 'examples/generated/graphql.ts';
const manifestPath = 'examples/generated/client/persisted-documents.json';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});

const run = (script: string, args: string[], env: Record<string, string>) =>
  startProcess(script, args, env, { stdin: true });

describe('examples/operations and the generated types', () => {
  it('every operation validates against the gateway schema', () => {
    const files = readdirSync(operationsDir).filter((name) => name.endsWith('.graphql'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    // One document: operations share the ChatLine fragment.
    const source = files
      .map((name) => readFileSync(resolve(operationsDir, name), 'utf8'))
      .join('\n');
    expect(validate(schema, parse(source)).map((error) => error.message)).toEqual([]);
  });

  it('examples/generated/ is what `npm run codegen` makes from schema.graphql', async () => {
    const outputs: { filename: string; content: string }[] = await generate(
      { ...codegenConfig, hooks: {}, cwd: root, silent: true },
      false,
    );
    expect(outputs.map((output) => output.filename).sort()).toEqual(
      [
        generatedPath,
        'examples/generated/client/gql.ts',
        'examples/generated/client/graphql.ts',
        'examples/generated/client/index.ts',
        manifestPath,
      ].sort(),
    );
    for (const output of outputs) {
      // The codegen hook runs Biome over the files; do the same to the fresh output.
      const formatted = spawnSync(
        resolve(root, 'node_modules/.bin/biome'),
        ['check', '--write', `--stdin-file-path=${output.filename}`],
        { cwd: root, input: output.content, encoding: 'utf8' },
      );
      expect(formatted.status, formatted.stderr).toBe(0);
      expect(
        formatted.stdout,
        `${output.filename} is stale: run \`npm run codegen\` and commit the result`,
      ).toBe(readFileSync(resolve(root, output.filename), 'utf8'));
    }
  }, 30_000);

  it(`${manifestPath} maps the sha256 of each document's text to that text`, () => {
    const manifest = JSON.parse(readFileSync(resolve(root, manifestPath), 'utf8')) as Record<
      string,
      string
    >;
    const entries = Object.entries(manifest);
    expect(entries.length).toBe(
      readdirSync(operationsDir).filter((name) => name.endsWith('.graphql')).length - 1,
    );
    for (const [hash, document] of entries) {
      expect(hash).toBe(createHash('sha256').update(document).digest('hex'));
      expect(validate(schema, parse(document))).toEqual([]);
    }
    // The same manifest loads as PERSISTED_OPERATIONS.
    expect(loadManifest(resolve(root, manifestPath)).size).toBe(entries.length);
  });
});

describe('examples/conversation.ts (typed operations over HTTP)', () => {
  it("prints alice's last ten messages with bob, oldest first", async () => {
    const program = run('examples/conversation.ts', ['bob'], {
      GATEWAY_URL: stack.gateway.url,
      MISSKEY_TOKEN: DEMO_TOKENS.alice,
    });
    expect(await program.exited).toBe(0);
    const expected = await stack.gql<{
      user: {
        chatMessages: { edges: { node: { text: string; fromUser: { username: string } } }[] };
      };
    }>(
      '{ user(username: "bob") { chatMessages(first: 10) { edges { node { text fromUser { username } } } } } }',
    );
    const lines = program.output().trim().split('\n');
    expect(lines[0]).toBe('Your last 10 messages with Bob:');
    const shown = lines.slice(1).map((line) => line.replace(/^\S+ \S+ /, ''));
    expect(shown).toEqual(
      (expected.data?.user.chatMessages.edges ?? [])
        .map(({ node }) => `${node.fromUser.username}: ${node.text}`)
        .reverse(),
    );
  });

  it('exits 1 with a message for an unknown user', async () => {
    const program = run('examples/conversation.ts', ['nobody'], {
      GATEWAY_URL: stack.gateway.url,
      MISSKEY_TOKEN: DEMO_TOKENS.alice,
    });
    expect(await program.exited).toBe(1);
    expect(program.output().trim()).toBe('no user named nobody');
  });
});

describe('examples/live-chat.ts (graphql-ws)', () => {
  it('shows a message bob sends, sends what alice types, and stops on SIGTERM', async () => {
    const program = run('examples/live-chat.ts', ['--to', 'bob'], {
      GATEWAY_URL: stack.gateway.url,
      MISSKEY_TOKEN: DEMO_TOKENS.alice,
    });
    await program.waitFor(/listening as alice for new chat messages; lines you type go to bob/);

    const ping = `ping ${randomUUID()}`;
    const sent = await stack.gql(
      'mutation ($to: ID!, $text: String!) { sendChatMessage(input: { toUserId: $to, text: $text }) { id } }',
      { to: stack.sandbox.demo?.users.alice.id, text: ping },
      DEMO_TOKENS.bob,
    );
    expect(sent.errors).toBeUndefined();
    // Misskey announces a message about 3 s after it was sent.
    await program.waitFor(new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] bob: ${ping}$`, 'm'), 15_000);

    const pong = `pong ${randomUUID()}`;
    program.child.stdin?.write(`${pong}\n`);
    await program.waitFor(new RegExp(`\\] alice: ${pong} \\(sent\\)$`, 'm'));
    const seenByBob = await stack.gql<{
      user: {
        chatMessages: { edges: { node: { text: string; fromUser: { username: string } } }[] };
      };
    }>(
      '{ user(username: "alice") { chatMessages(first: 1) { edges { node { text fromUser { username } } } } } }',
      {},
      DEMO_TOKENS.bob,
    );
    expect(seenByBob.data?.user.chatMessages.edges[0]?.node).toEqual({
      text: pong,
      fromUser: { username: 'alice' },
    });

    program.child.kill('SIGTERM');
    expect(await program.exited).toBe(0);
    expect(program.output()).not.toMatch(/error/i);
  }, 30_000);

  it("exits 1 with the gateway's message for a token Misskey does not know", async () => {
    const program = run('examples/live-chat.ts', [], {
      GATEWAY_URL: stack.gateway.url,
      MISSKEY_TOKEN: 'notARealToken123',
    });
    expect(await program.exited).toBe(1);
    // One readable line (the gateway refuses the connection), not a stack or an object dump.
    const lines = program.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/closed the connection: 4\d\d\d|authenticat/i);
  });
});
