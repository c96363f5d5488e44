import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The benchmark's processes talk over Node's IPC channel: the runner sends `{ id, cmd, arg }`,
 * the child answers `{ id, ok, result | error }`. A child also sends `{ ready: payload }` once
 * it listens.
 */
interface Request {
  id: number;
  cmd: string;
  arg?: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export type Handlers = Record<string, (arg: never) => unknown>;

/** Child side: answers the runner's commands; exits when the runner goes away. */
export function serveCommands(handlers: Handlers): void {
  process.on('message', (message: Request) => {
    const handler = handlers[message.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) {
          throw new Error(`unknown command ${message.cmd}`);
        }
        return handler(message.arg as never);
      })
      .then(
        (result) => process.send?.({ id: message.id, ok: true, result } satisfies Reply),
        (error: unknown) =>
          process.send?.({
            id: message.id,
            ok: false,
            error: error instanceof Error ? (error.stack ?? error.message) : String(error),
          } satisfies Reply),
      );
  });
  // The runner died or closed the channel: nobody will stop us otherwise.
  process.on('disconnect', () => process.exit(0));
}

export function announceReady(payload: unknown): void {
  process.send?.({ ready: payload });
}

/** Runner side: one child process running a bench/procs module. */
export class BenchProcess<Ready = unknown> {
  readonly child: ChildProcess;
  readonly ready: Promise<Ready>;
  #next = 1;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  #exited = false;

  constructor(
    readonly name: string,
    module: string,
    env: Record<string, string> = {},
    options: { quietStdout?: boolean } = {},
  ) {
    const file = fileURLToPath(new URL(`./procs/${module}.ts`, import.meta.url));
    this.child = fork(file, [], {
      execArgv: ['--import', 'tsx', '--expose-gc'],
      env: { ...process.env, ...env },
      stdio: ['ignore', options.quietStdout ? 'ignore' : 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.ready = new Promise<Ready>((resolve, reject) => {
      this.child.on('message', (message: Reply | { ready: Ready }) => {
        if ('ready' in message) {
          resolve(message.ready);
          return;
        }
        const waiter = this.#pending.get(message.id);
        if (!waiter) {
          return;
        }
        this.#pending.delete(message.id);
        if (message.ok) {
          waiter.resolve(message.result);
        } else {
          waiter.reject(new Error(`${name}: ${message.error}`));
        }
      });
      this.child.once('exit', (code, signal) => {
        this.#exited = true;
        const error = new Error(`${name} exited (${signal ?? code})`);
        reject(error);
        for (const waiter of this.#pending.values()) {
          waiter.reject(error);
        }
        this.#pending.clear();
      });
    });
    // An unhandled rejection of `ready` after a clean stop is not an error.
    this.ready.catch(() => undefined);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  request<T = unknown>(cmd: string, arg?: unknown): Promise<T> {
    if (this.#exited) {
      return Promise.reject(new Error(`${this.name} is not running`));
    }
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, cmd, arg } satisfies Request);
    });
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 3_000): Promise<void> {
    if (this.#exited || this.child.exitCode !== null) {
      return;
    }
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Pins a process (all its threads) to one CPU with taskset; false when that is not possible. */
export function pin(pid: number, cpu: number): boolean {
  try {
    execFileSync('taskset', ['-a', '-c', '-p', String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
