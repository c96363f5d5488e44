import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  defaultExtractPersistedOperationId,
  usePersistedOperations,
} from '@graphql-yoga/plugin-persisted-operations';
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode, gatewayError } from '../schema/errors.js';

/**
 * Trusted documents (persisted operations): a manifest of `sha256(document text)` → document
 * text, made by `npm run codegen` from the app's operations. A client sends the hash in
 * `extensions.persistedQuery.sha256Hash` (Apollo's format), or the text itself; with
 * `allowArbitrary` false, any other document is refused before it is parsed.
 */
export interface TrustedDocuments {
  /** Hash → document text. */
  readonly documents: ReadonlyMap<string, string>;
  /** Whether documents outside the manifest may run (GraphiQL, ad-hoc clients). */
  readonly allowArbitrary: boolean;
}

export const PERSISTED_QUERY_NOT_FOUND = 'PERSISTED_QUERY_NOT_FOUND';

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Reads and checks a manifest: a JSON object of lower-case sha256 hex → document text, each key
 * the hash of its text. Throws an `Error` saying what is wrong (the config names the variable).
 */
export function loadManifest(path: string): Map<string, string> {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error(`${path} is not JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${path} must hold a JSON object of sha256 hash → document`);
  }
  const documents = new Map<string, string>();
  for (const [hash, document] of Object.entries(parsed)) {
    if (!/^[0-9a-f]{64}$/.test(hash) || typeof document !== 'string') {
      throw new Error(`${path}: "${hash.slice(0, 80)}" is not a sha256 hash with a document`);
    }
    if (sha256(document) !== hash) {
      throw new Error(`${path}: ${hash} is not the sha256 of its document`);
    }
    documents.set(hash, document);
  }
  if (documents.size === 0) {
    throw new Error(`${path} holds no documents`);
  }
  return documents;
}

function notFound(): GraphQLError {
  return gatewayError(
    PERSISTED_QUERY_NOT_FOUND,
    'This persisted query hash is not in the trusted documents.',
  );
}

function arbitraryRefused(): GraphQLError {
  return gatewayError(
    PERSISTED_QUERY_NOT_FOUND,
    'Only trusted documents run here: send extensions.persistedQuery.sha256Hash (or the exact document text) of an operation in the manifest.',
  );
}

function idRequired(trusted: TrustedDocuments): GraphQLError {
  if (trusted.allowArbitrary) {
    // What Yoga answers without the plugin.
    return gatewayError(ErrorCode.BAD_REQUEST, 'Must provide query string.', {
      http: { status: 400 },
    });
  }
  return gatewayError(
    'PERSISTED_QUERY_ID_REQUIRED',
    'Send extensions.persistedQuery: { version: 1, sha256Hash } or a query.',
  );
}

interface Params {
  query?: string | null;
  extensions?: Record<string, unknown> | null;
}

/**
 * The document text to run for one operation's parameters, or the error refusing it. Used as is
 * by the websocket front; over HTTP the Yoga plugin below applies the same rules.
 */
export function resolveDocument(
  trusted: TrustedDocuments,
  params: Params,
): { query: string } | GraphQLError {
  const hash = defaultExtractPersistedOperationId(params as never, undefined as never, {});
  const persisted = hash === null ? undefined : trusted.documents.get(hash);
  if (persisted !== undefined) {
    return { query: persisted };
  }
  if (typeof params.query === 'string' && params.query !== '') {
    if (trusted.allowArbitrary || trusted.documents.has(sha256(params.query))) {
      return { query: params.query };
    }
    return hash === null ? arbitraryRefused() : notFound();
  }
  return hash === null ? idRequired(trusted) : notFound();
}

type AnyPlugin = Plugin<Record<string, unknown>>;

/**
 * Yoga's persisted-operations plugin over the manifest, after a step that turns a document sent
 * as text whose hash is in the manifest into its hash (the plugin alone only knows hashes).
 * A known hash wins over a text sent with it: what runs is then the manifest's document.
 */
export function trustedDocumentPlugins(trusted: TrustedDocuments): AnyPlugin[] {
  const byText: AnyPlugin = {
    onParams({ params, setParams }) {
      const hash = defaultExtractPersistedOperationId(params, undefined as never, {});
      if (hash !== null && trusted.documents.has(hash)) {
        setParams({ ...params, query: undefined });
        return;
      }
      if (hash !== null) {
        return;
      }
      if (typeof params.query !== 'string' || params.query === '') {
        return;
      }
      const textHash = sha256(params.query);
      if (trusted.documents.has(textHash)) {
        setParams({
          ...params,
          query: undefined,
          extensions: {
            ...params.extensions,
            persistedQuery: { version: 1, sha256Hash: textHash },
          },
        });
      }
    },
  };
  const persisted = usePersistedOperations<Record<string, unknown>>({
    getPersistedOperation: (hash) => trusted.documents.get(hash) ?? null,
    allowArbitraryOperations: trusted.allowArbitrary,
    customErrors: {
      notFound: () => notFound(),
      persistedQueryOnly: ({ params }) =>
        defaultExtractPersistedOperationId(params, undefined as never, {}) === null
          ? arbitraryRefused()
          : notFound(),
      keyNotFound: () => idRequired(trusted),
    },
  }) as AnyPlugin;
  return [byText, persisted];
}
