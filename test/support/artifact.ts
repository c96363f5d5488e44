import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { type RunningProcess, root, startCommand } from './process.js';

/**
 * The artifact that ships, assembled as the Dockerfile assembles it: `npm run build` output in
 * `dist/`, beside a `node_modules` holding the production dependency set ALONE (`npm ci
 * --omit=dev` in a folder of its own), plus package.json and schema.graphql. The folder lives
 * under the OS temp dir, never inside the repository: Node resolves packages by walking up the
 * parent folders, and the repository's own node_modules (with every dev dependency) must not be
 * one of them.
 *
 * Build and install are cached by the hash of their inputs under node_modules/.cache, behind a
 * lock, so the test files that need the artifact build it once per source state between them.
 */
const CACHE = resolve(root, 'node_modules/.cache/misskey-graphql-artifact');
const run = promisify(execFile);

export interface Artifact {
  /** The folder to run `node dist/main.js` from. */
  readonly dir: string;
  remove(): void;
}

export async function prepareArtifact(): Promise<Artifact> {
  const [build, deps] = await Promise.all([
    cached('build', inputsHash(['src', 'scripts/build.ts', ...LOCK]), (into) =>
      npm(root, ['run', '-s', 'build', '--', '--outDir', join(into, 'dist')]),
    ),
    cached('deps', inputsHash(LOCK), async (into) => {
      for (const file of LOCK) {
        cpSync(resolve(root, file), join(into, file));
      }
      await npm(into, ['ci', '--omit=dev', '--no-audit', '--no-fund']);
    }),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'misskey-graphql-artifact-'));
  // A copy, not a symlink: Node resolves a symlinked package by its real path, and walking up
  // from there would reach the repository's node_modules again.
  cpSync(join(deps, 'node_modules'), join(dir, 'node_modules'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  cpSync(join(build, 'dist'), join(dir, 'dist'), { recursive: true });
  for (const file of ['package.json', 'schema.graphql']) {
    cpSync(resolve(root, file), join(dir, file));
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `node <script> <args>` from the artifact folder with NODE_ENV=production and only `env`
 *  besides PATH: nothing of the test runner's environment (NODE_ENV=test, MISSKEY_URL, …). */
export function startBuilt(
  artifact: Artifact,
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): RunningProcess {
  return startCommand(process.execPath, [script, ...args], {
    cwd: artifact.dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...env },
    scope: 'file',
  });
}

/** The gateway's address from its first line (`misskey-graphql serving http://…/graphql`). */
export async function servingUrl(gateway: RunningProcess): Promise<string> {
  const pattern = /serving (http:\/\/\S+\/graphql)/;
  await gateway.waitFor(pattern, 30_000);
  return pattern.exec(gateway.output())?.[1] ?? '';
}

const LOCK = ['package.json', 'package-lock.json'];

/** npm without the variables `npm test` exports (npm_config_local_prefix and friends), so it
 *  works on `cwd` as a user's shell would. */
async function npm(cwd: string, args: string[]): Promise<void> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
  );
  try {
    await run('npm', args, { cwd, env, maxBuffer: 16 * 1024 * 1024, timeout: 240_000 });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}

/** sha-256 over the repository files (folders recursively) whose content decides an output. */
function inputsHash(paths: string[]): string {
  const hash = createHash('sha256');
  const add = (path: string) => {
    const full = resolve(root, path);
    if (statSync(full).isDirectory()) {
      for (const name of readdirSync(full).sort()) {
        add(join(path, name));
      }
      return;
    }
    hash.update(`${path}\0`).update(readFileSync(full)).update('\0');
  };
  for (const path of paths) {
    add(path);
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * `CACHE/<kind>-<hash>`, made by `produce` into a scratch folder that is renamed into place when
 * complete, so a half-made entry is never used. One process produces while the others wait.
 */
async function cached(
  kind: string,
  hash: string,
  produce: (into: string) => Promise<void>,
): Promise<string> {
  const target = join(CACHE, `${kind}-${hash}`);
  const lock = `${target}.lock`;
  mkdirSync(CACHE, { recursive: true });
  const deadline = Date.now() + 300_000;
  while (!existsSync(target)) {
    if (!tryLock(lock)) {
      if (Date.now() > deadline) {
        throw new Error(`waited 300 s for ${target} (lock ${lock})`);
      }
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      if (!existsSync(target)) {
        const scratch = mkdtempSync(`${target}.tmp-`);
        try {
          await produce(scratch);
          renameSync(scratch, target);
        } finally {
          rmSync(scratch, { recursive: true, force: true });
        }
        prune(kind, target);
      }
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return target;
}

/** Takes the lock folder; a lock whose holder died (crashed worker) is removed for a retry. */
function tryLock(lock: string): boolean {
  try {
    mkdirSync(lock);
    writeFileSync(join(lock, 'pid'), String(process.pid));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw error;
    }
  }
  let holder = 0;
  try {
    holder = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    // Written right after mkdir: only a lock older than a few seconds without it is stale.
    const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    if (age > 10_000) {
      rmSync(lock, { recursive: true, force: true });
    }
    return false;
  }
  if (!alive(holder)) {
    rmSync(lock, { recursive: true, force: true });
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Entries of older sources or lock files are dead weight once a new one exists. */
function prune(kind: string, keep: string): void {
  for (const name of readdirSync(CACHE)) {
    const path = join(CACHE, name);
    if (!name.startsWith(`${kind}-`) || path === keep || name.includes('.lock')) {
      continue;
    }
    // A scratch folder may belong to a producer running right now (another lock file's hash).
    if (name.includes('.tmp-') && Date.now() - statSync(path).mtimeMs < 3_600_000) {
      continue;
    }
    rmSync(path, { recursive: true, force: true });
  }
}
