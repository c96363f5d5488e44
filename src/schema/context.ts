import { randomUUID } from 'node:crypto';
import { contextCacheSymbol } from '@pothos/core';
import DataLoader from 'dataloader';
import type { YogaInitialContext } from 'graphql-yoga';
import type { UserCache } from '../loaders/user-cache.js';
import { loadUsers } from '../loaders/users.js';
import { scopeOf } from '../observability/request-scope.js';
import type {
  CallOptions,
  EndpointName,
  EndpointParams,
  EndpointResult,
  MisskeyClient,
} from '../upstream/client.js';
import { isValidToken, MAX_TOKEN_LENGTH } from '../upstream/credentials.js';
import {
  type AnyUser,
  isDetailed,
  type MeDetailed,
  type UserDetailed,
} from '../upstream/entities.js';
import type { StreamHub } from '../upstream/stream.js';
import { fromUpstream, malformedCredential } from './errors.js';

/**
 * Per-request (per-subscription-event) state. A new context is made for every HTTP operation and
 * every websocket operation, so loaders and caches never cross requests or tokens.
 */
export interface Context {
  /** The caller's Misskey token, or null. Never logged, never put in an error. */
  readonly token: string | null;
  readonly client: MisskeyClient;
  /** The request's id (a websocket operation gets one of its own), on its log lines. */
  readonly requestId: string;
  /** The client's address ('unknown' for a websocket operation). */
  readonly ip: string;
  /** The operation's deadline (epoch ms), set when a query or mutation starts executing; its
   *  upstream calls are cut to end by then. An object of its own: Yoga copies the context's
   *  fields into the context it executes with, and this one must be seen by both. */
  readonly operation: { deadline?: number };
  /** What an upstream call of this operation is sent with (`token`: the call's own): the
   *  deadline, the request's id and, for a call without a token, the caller's address. */
  callOptions(token: string | null): CallOptions;
  /** Calls Misskey with the caller's token; failures become client-safe GraphQL errors. */
  call<E extends EndpointName>(endpoint: E, params: EndpointParams<E>): Promise<EndpointResult<E>>;
  /** Calls Misskey without any credential (public data that may be shared between callers). */
  callPublic<E extends EndpointName>(
    endpoint: E,
    params: EndpointParams<E>,
  ): Promise<EndpointResult<E>>;
  readonly users: UserDirectory;
  /** The shared cache of lite users (null when off); per-event contexts reuse it. */
  readonly userCache: UserCache | null;
  /** The caller (`i`), fetched at most once per request. */
  viewer(): Promise<MeDetailed>;
  /** Loaders of other domains, created on first use in this request. */
  loader<K, V>(name: string, create: () => DataLoader<K, V>): DataLoader<K, V>;
  /** The process's stream hub (live subscriptions); set by the gateway. */
  readonly stream?: StreamHub;
}

/** What a user directory reads from its request's context. */
type UserDirectoryContext = Pick<Context, 'client' | 'token' | 'userCache' | 'callOptions'>;

/**
 * Users of one request: a batched `users/show` loader, every user a response embedded, and the
 * shared cache of lite users (when on) between the two.
 */
export class UserDirectory {
  /** Created on first use: many requests and events embed no user. */
  #embedded: Map<string, AnyUser> | undefined;
  readonly #context: UserDirectoryContext;
  #viaCache: DataLoader<string, AnyUser | null> | undefined;
  #loader: DataLoader<string, UserDetailed | null> | undefined;

  constructor(context: UserDirectoryContext) {
    this.#context = context;
  }

  /** The batched `users/show` loader, created on first use (many requests and events need
   *  none: their users are embedded or cached). */
  get loader(): DataLoader<string, UserDetailed | null> {
    const { client, token, userCache } = this.#context;
    this.#loader ??= new DataLoader(
      async (ids) => {
        try {
          const users = await loadUsers(client, token, ids, this.#context.callOptions(token));
          for (const user of users) {
            if (user) {
              userCache?.put(user);
            }
          }
          return users;
        } catch (error) {
          throw fromUpstream(error);
        }
      },
      { maxBatchSize: 1000 },
    );
    return this.#loader;
  }

  /** Remembers users a response embedded, so a later reference by id costs no call. */
  remember(user: AnyUser | null | undefined): void {
    if (!user) {
      return;
    }
    if (isDetailed(user)) {
      this.loader.prime(user.id, user);
    }
    this.#embedded ??= new Map();
    const known = this.#embedded.get(user.id);
    if (!known || (!isDetailed(known) && isDetailed(user))) {
      this.#embedded.set(user.id, user);
      this.#context.userCache?.put(user);
    }
  }

  /** A user by id: embedded if seen in this request, else the shared lite cache, else through
   *  the loader (null if unknown). Detail fields of a lite user load the detailed form. */
  async byId(id: string): Promise<AnyUser | null> {
    const embedded = this.#embedded?.get(id);
    if (embedded) {
      return embedded;
    }
    const cache = this.#context.userCache;
    if (!cache) {
      return await this.loader.load(id);
    }
    this.#viaCache ??= this.#cachedLoader(cache);
    return await this.#viaCache.load(id);
  }

  /** The detailed form of a user (loads it when only the lite form is known). */
  async detailed(user: AnyUser): Promise<UserDetailed | null> {
    return isDetailed(user) ? user : await this.loader.load(user.id);
  }

  /** One cache read per batch of ids; the misses go to `users/show` together. */
  #cachedLoader(cache: UserCache): DataLoader<string, AnyUser | null> {
    return new DataLoader(
      async (ids) => {
        const cached = await cache.getMany(ids);
        const missing = ids.filter((_, i) => cached[i] === undefined);
        const loaded = missing.length > 0 ? await this.loader.loadMany(missing) : [];
        const byId = new Map<string, AnyUser | null | Error>();
        for (const [i, id] of missing.entries()) {
          byId.set(id, loaded[i] ?? null);
        }
        return ids.map((id, i) => cached[i] ?? byId.get(id) ?? null);
      },
      { maxBatchSize: 1000 },
    );
  }
}

export type InitialContext = Partial<YogaInitialContext> & {
  connectionParams?: Readonly<Record<string, unknown>>;
};

/**
 * What a caller sent as its credential: nothing, a well-formed token, or something that cannot be
 * a Misskey token (CR/LF, NUL, non-Latin-1, too long, not `Bearer …`). A malformed credential is
 * refused at the edge and never reaches the upstream client, the stream hub or any shared key.
 */
export type Credential =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'malformed' };

const NONE: Credential = { kind: 'none' };
const MALFORMED: Credential = { kind: 'malformed' };

/** Reads the credential from `Authorization: Bearer` (HTTP) or the graphql-ws `connection_init`
 *  payload (`{ authorization: "Bearer …" }` or `{ token }`), or an operation's
 *  `extensions.headers` on a websocket. */
export function credentialFrom(initial: InitialContext): Credential {
  const header = initial.request?.headers.get('authorization') ?? null;
  if (header !== null) {
    return header.trim() === '' ? NONE : bearer(header);
  }
  // Over websockets GraphiQL sends its header editor with each operation (`extensions.headers`).
  const sent = initial.request ? undefined : initial.params?.extensions?.headers;
  const params: Record<string, unknown> = {
    ...(typeof sent === 'object' && sent !== null ? (sent as Record<string, unknown>) : {}),
    ...initial.connectionParams,
  };
  const authorization = params.authorization ?? params.Authorization;
  if (authorization !== undefined && authorization !== null) {
    if (typeof authorization !== 'string') {
      return MALFORMED;
    }
    return authorization.trim() === '' ? NONE : bearer(authorization);
  }
  if (params.token === undefined || params.token === null) {
    return NONE;
  }
  if (typeof params.token !== 'string') {
    return MALFORMED;
  }
  const token = params.token.trim();
  return token === '' ? NONE : asToken(token);
}

function bearer(value: string): Credential {
  // Bounded before the regular expression runs: a header can be kilobytes long.
  if (value.length > MAX_TOKEN_LENGTH + 16) {
    return MALFORMED;
  }
  const match = /^\s*Bearer +(\S+)\s*$/i.exec(value);
  return match?.[1] ? asToken(match[1]) : MALFORMED;
}

function asToken(token: string): Credential {
  return isValidToken(token) ? { kind: 'token', token } : MALFORMED;
}

/** The caller's token, or null without one; throws `malformedCredential()` for a credential that
 *  cannot be a Misskey token. */
export function tokenFrom(initial: InitialContext): string | null {
  const credential = credentialFrom(initial);
  if (credential.kind === 'malformed') {
    throw malformedCredential();
  }
  return credential.kind === 'token' ? credential.token : null;
}

/** Where a context keeps its per-request state (see `renewCaches`). */
const REQUEST_STATE = Symbol('requestState');

/** A request's viewer and loaders, created on first use. */
interface RequestState {
  viewer?: Promise<MeDetailed>;
  loaders?: Map<string, DataLoader<unknown, unknown>>;
}

type ContextFields = Context & {
  [REQUEST_STATE]: RequestState | undefined;
  [contextCacheSymbol]: object;
};

/** The methods of every context, shared: they read the context they are called on (`this`), so
 *  a context (one per websocket operation, kept while it runs) holds no closures of its own. */
const contextMethods: Pick<Context, 'call' | 'callPublic' | 'callOptions' | 'viewer' | 'loader'> = {
  call(this: Context, endpoint, params) {
    return callUpstream(this.client, endpoint, params, this.token, this.callOptions(this.token));
  },
  callPublic(this: Context, endpoint, params) {
    return callUpstream(this.client, endpoint, params, null, this.callOptions(null));
  },
  callOptions(this: Context, token) {
    return {
      deadline: this.operation.deadline,
      requestId: this.requestId,
      // With a token the client counts the call for the token; without, for the address.
      ...(token === null ? { caller: this.ip } : {}),
    };
  },
  viewer(this: Context) {
    const state = requestState(this);
    state.viewer ??= this.call('i', {}).then((me) => {
      this.users.remember(me as unknown as UserDetailed);
      return me;
    });
    return state.viewer;
  },
  loader<K, V>(this: Context, name: string, create: () => DataLoader<K, V>) {
    const state = requestState(this);
    state.loaders ??= new Map();
    let loader = state.loaders.get(name) as DataLoader<K, V> | undefined;
    if (!loader) {
      loader = create();
      state.loaders.set(name, loader as DataLoader<unknown, unknown>);
    }
    return loader;
  },
};

async function callUpstream<E extends EndpointName>(
  client: MisskeyClient,
  endpoint: E,
  params: EndpointParams<E>,
  token: string | null,
  options: CallOptions,
): Promise<EndpointResult<E>> {
  try {
    return await client.call(endpoint, params, token, options);
  } catch (error) {
    throw fromUpstream(error);
  }
}

function requestState(context: Context): RequestState {
  const fields = context as ContextFields;
  fields[REQUEST_STATE] ??= {};
  return fields[REQUEST_STATE];
}

export function createContextFactory(client: MisskeyClient, userCache: UserCache | null = null) {
  return (initial: InitialContext): Context => {
    const token = tokenFrom(initial);
    // The HTTP front's scope of the request; a websocket operation has none.
    const scope = scopeOf((initial as { req?: unknown }).req);
    const context = {
      token,
      client,
      requestId: scope?.requestId ?? randomUUID(),
      ip: scope?.ip ?? 'unknown',
      operation: {},
      ...contextMethods,
      userCache,
      users: undefined as unknown as UserDirectory,
      [REQUEST_STATE]: undefined,
      [contextCacheSymbol]: {},
    } satisfies ContextFields;
    context.users = new UserDirectory(context);
    return context;
  };
}

/** Gives `context` fresh per-request caches (users, viewer, loaders, and Pothos' per-request
 *  cache, which holds the auth scopes' answers): before each event of a subscription (Pothos'
 *  advice: loaders must not live across events), and once its stream is open, so what its
 *  subscribe resolver loaded is not kept while the subscription waits. */
export function renewCaches(context: Context): void {
  const fields = context as ContextFields;
  (fields as { users: UserDirectory }).users = new UserDirectory(context);
  fields[REQUEST_STATE] = undefined;
  // Pothos keys its per-request cache by this object when the context has one.
  fields[contextCacheSymbol] = {};
}
