import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, afterEach } from 'vitest';

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
  /** Sends `signal` (SIGKILL after `ms`) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | null>;
}

const running: ChildProcess[] = [];
const fileScoped: ChildProcess[] = [];

const killNow = (child: ChildProcess) => {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
  }
};

// Every process a test started is killed after that test, even when the test failed; those a
// beforeAll started for the whole file, after the file.
afterEach(() => {
  for (const child of running.splice(0)) {
    killNow(child);
  }
});
afterAll(() => {
  for (const child of fileScoped.splice(0)) {
    killNow(child);
  }
});
// And none outlives a worker that exits before its hooks ran.
process.once('exit', () => {
  for (const child of [...running, ...fileScoped]) {
    killNow(child);
  }
});

/** Runs `tsx <script> <args>` from the repository root with `env` over the current environment. */
export function startProcess(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
  options: { stdin?: boolean } = {},
): RunningProcess {
  return startCommand(tsx, [script, ...args], {
    cwd: root,
    env: { ...process.env, ...env } as Record<string, string>,
    stdin: options.stdin,
  });
}

export interface CommandOptions {
  cwd: string;
  /** The whole environment of the process (nothing is inherited). */
  env: Record<string, string>;
  stdin?: boolean;
  /** 'test' (default): killed after the test; 'file': after the test file. */
  scope?: 'test' | 'file';
}

/** Runs any program; see `startProcess` for the repository's own scripts. */
export function startCommand(
  command: string,
  args: string[],
  options: CommandOptions,
): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  (options.scope === 'file' ? fileScoped : running).push(child);
  let output = '';
  const collect = (chunk: unknown) => {
    output += String(chunk);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // 'error' (e.g. ENOENT) comes instead of 'exit' when the program cannot be started.
  const exited = new Promise<number | null>((done) => {
    child.once('exit', (code) => done(code));
    child.once('error', (error) => {
      output += `\ncannot run ${command}: ${error.message}`;
      done(null);
    });
  });
  const seen = (pattern: string | RegExp) =>
    typeof pattern === 'string' ? output.includes(pattern) : pattern.test(output);
  return {
    child,
    exited,
    output: () => output,
    waitFor: async (pattern, ms = 15_000) => {
      const deadline = Date.now() + ms;
      while (!seen(pattern)) {
        if (Date.now() > deadline || child.exitCode !== null || child.pid === undefined) {
          throw new Error(`${command} did not print ${String(pattern)}; output:\n${output}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: async (signal = 'SIGTERM', ms = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
        return exited;
      }
      child.kill(signal);
      const timer = setTimeout(() => killNow(child), ms);
      const code = await exited;
      clearTimeout(timer);
      return code;
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
