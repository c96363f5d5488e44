/**
 * Configuration from the environment. This is the only module that reads `process.env`.
 * A bad value throws a `ConfigError` naming the variable; `main.ts` prints it and exits with 1.
 */

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  /** Origin of the Misskey server, e.g. `https://misskey.example`. `null` = embedded sandbox. */
  misskeyUrl: string | null;
  port: number;
  host: string;
  logLevel: LogLevel;
  /** Deadline of one upstream call, in milliseconds (connect + headers + body). */
  upstreamTimeoutMs: number;
  /** Maximum number of open sockets to the upstream. */
  upstreamConnections: number;
  /** Serve GraphiQL on GET /graphql. */
  graphiql: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

type Env = Readonly<Record<string, string | undefined>>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') {
    return fallback;
  }
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') {
    return fallback;
  }
  if (['1', 'true', 'yes', 'on'].includes(raw)) {
    return true;
  }
  if (['0', 'false', 'no', 'off'].includes(raw)) {
    return false;
  }
  throw new ConfigError(name, `must be true or false, got "${env[name]}"`);
}

function origin(env: Env, name: string): string | null {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') {
    return null;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      name,
      `must be an http(s) URL such as https://misskey.example, got "${raw}"`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `must use http or https, got "${url.protocol}"`);
  }
  if (url.username || url.password) {
    throw new ConfigError(name, 'must not contain credentials');
  }
  // Misskey serves /api and /streaming at the root of its origin.
  return url.origin;
}

export function loadConfig(env: Env = process.env): Config {
  const logLevel = (env.LOG_LEVEL?.trim().toLowerCase() || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`,
    );
  }
  const host = env.HOST?.trim() || '127.0.0.1';
  return {
    misskeyUrl: origin(env, 'MISSKEY_URL'),
    port: integer(env, 'PORT', 4000, 0, 65535),
    host,
    logLevel,
    upstreamTimeoutMs: integer(env, 'UPSTREAM_TIMEOUT_MS', 10_000, 100, 300_000),
    upstreamConnections: integer(env, 'UPSTREAM_CONNECTIONS', 32, 1, 1024),
    graphiql: boolean(env, 'GRAPHIQL', true),
  };
}
