import type { Store } from './store.js';

/**
 * The demo data's shared names and types. This module imports nothing from the seeders or the
 * server, so seed.ts, seeds/*.ts and server.ts can all depend on it without an import cycle.
 */

/** Fixed demo tokens, so GraphiQL and examples work at once against `npm start`. */
export const DEMO_TOKENS = {
  admin: 'demoAdminToken01',
  alice: 'demoAliceToken01',
  bob: 'demoBobToken0001',
  carol: 'demoCarolToken01',
} as const;

export type DemoUser = keyof typeof DEMO_TOKENS;

export interface DemoData {
  users: Record<DemoUser, { id: string; username: string; token: string }>;
  /** Ids of what domain seeders created (rooms, messages, …), by name. */
  ids: Record<string, string>;
}

/** What seeding needs of a running sandbox: its store and its in-process endpoint calls. */
export interface SeedTarget {
  readonly store: Store;
  call(endpoint: string, params?: Record<string, unknown>, token?: string | null): Promise<unknown>;
}

/** A domain's contribution to the demo data, run in order after the users exist. */
export type DemoSeeder = (sandbox: SeedTarget, demo: DemoData) => Promise<void>;
