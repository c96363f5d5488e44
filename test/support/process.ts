import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { afterEach } from 'vitest';

/** The repository root and its tsx, to run the programs a user runs as real processes. */
export const root = resolve(import.meta.dirname, '../..');
export const tsx = resolve(root, 'node_modules/.bin/tsx');

export interface RunningProcess {
  child: ChildProcess;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Waits until stdout+stderr contain `pattern`; fails with the output so far otherwise. */
  waitFor(pattern: string | RegExp, ms?: number): Promise<void>;
  output(): string;
}

const running: ChildProcess[] = [];

// Every process a test started is killed after that test, even when the test failed.
afterEach(() => {
  for (const child of running.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
});

/** Runs `tsx <script> <args>` from the repository root with `env` over the current environment. */
export function startProcess(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
  options: { stdin?: boolean } = {},
): RunningProcess {
  const child = spawn(tsx, [script, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let output = '';
  const collect = (chunk: unknown) => {
    output += String(chunk);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const seen = (pattern: string | RegExp) =>
    typeof pattern === 'string' ? output.includes(pattern) : pattern.test(output);
  return {
    child,
    exited,
    output: () => output,
    waitFor: async (pattern, ms = 15_000) => {
      const deadline = Date.now() + ms;
      while (!seen(pattern)) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`did not print ${String(pattern)}; output:\n${output}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** A port that was free a moment ago (for programs that take a fixed --port / PORT). */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
