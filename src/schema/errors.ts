import { GraphQLError } from 'graphql';
import {
  InvalidCredentialError,
  MisskeyApiError,
  UpstreamBadResponseError,
  UpstreamError,
  UpstreamRequestRefusedError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../upstream/errors.js';
import { CircuitOpenError } from '../upstream/policy.js';

/**
 * The gateway's error model: every error a client can see has one of these `extensions.code`s
 * (docs/errors.md), over HTTP and websockets alike. When Misskey refused a call,
 * `extensions.misskey` holds its `code`, `id` and HTTP `status`. Domains add codes of their own
 * for Misskey refusals they know (e.g. `CHAT_UNAVAILABLE`), always with `extensions.misskey`.
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  /** Misskey's rate limit, or the gateway's own; `extensions.retryAfter` in seconds. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** Misskey failed with an internal error it did not explain. */
  UPSTREAM_ERROR: 'UPSTREAM_ERROR',
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  UPSTREAM_BAD_RESPONSE: 'UPSTREAM_BAD_RESPONSE',
  /** An operation limit (depth, aliases, cost, …) refused the operation before execution. */
  OPERATION_LIMIT_EXCEEDED: 'OPERATION_LIMIT_EXCEEDED',
  /** An upload over what the instance allows the caller (role policy `maxFileSizeMb`) or over
   *  the gateway's `MAX_UPLOAD_BYTES`; also Misskey's `MAX_FILE_SIZE_EXCEEDED`. */
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  /** An upload of zero bytes (Misskey stores none). */
  FILE_EMPTY: 'FILE_EMPTY',
  /** Set by Yoga: malformed request (bad JSON, no query, mutation over GET, missing CSRF header). */
  BAD_REQUEST: 'BAD_REQUEST',
  /** Set by Yoga: request body over `MAX_BODY_BYTES` (HTTP 413). */
  REQUEST_ENTITY_TOO_LARGE: 'REQUEST_ENTITY_TOO_LARGE',
  /** Set by Yoga: the document is not GraphQL. */
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  /** Set by Yoga: the document does not fit the schema. */
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  /** Set by Yoga: a bug; the message is masked and the error logged with the request id. */
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;

export type ErrorCodeName = (typeof ErrorCode)[keyof typeof ErrorCode] | (string & {});

export function gatewayError(
  code: ErrorCodeName,
  message: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

/** The token sent is not a token at all (see `isValidToken`); Misskey was not asked. */
export function malformedToken(): GraphQLError {
  return gatewayError(
    ErrorCode.UNAUTHENTICATED,
    'The access token is malformed: send "Authorization: Bearer <token>" with a Misskey token.',
  );
}

export function unauthenticated(): GraphQLError {
  return gatewayError(
    ErrorCode.UNAUTHENTICATED,
    'This field needs a Misskey access token: send "Authorization: Bearer <token>".',
  );
}

/** A credential that no Misskey token can be: refused before any upstream call (HTTP 401). */
export function malformedCredential(): GraphQLError {
  return gatewayError(
    ErrorCode.UNAUTHENTICATED,
    'The credential is not a valid Misskey access token: send "Authorization: Bearer <token>" with the token\'s letters and digits only.',
    {
      http: { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } },
    },
  );
}

export function badInput(message: string, extensions: Record<string, unknown> = {}): GraphQLError {
  return gatewayError(ErrorCode.BAD_USER_INPUT, message, extensions);
}

/**
 * Misskey reports many domain failures as `500 INTERNAL_ERROR` with the reason in
 * `info.e.message` (API.md §5.3). Domains register the reasons they know, with the code and
 * message the client gets instead.
 */
const internalReasons: { match: RegExp; code: string; message: string }[] = [
  {
    match: /^ROLE_PERMISSION_DENIED$/,
    code: 'CHAT_UNAVAILABLE',
    message: 'Chat is not available to this account (role policy chatAvailability).',
  },
];

export function registerInternalReason(match: RegExp, code: string, message: string): void {
  internalReasons.push({ match, code, message });
}

/** Maps Misskey error codes to the gateway's codes where the meaning is general. */
function codeForApiError(error: MisskeyApiError): { code: string; message: string } {
  const reason = error.internalReason;
  if (reason !== undefined) {
    const known = internalReasons.find((r) => r.match.test(reason));
    if (known) {
      return { code: known.code, message: known.message };
    }
    return { code: ErrorCode.UPSTREAM_ERROR, message: 'Misskey failed with an internal error.' };
  }
  if (error.status === 429 || error.code === 'RATE_LIMIT_EXCEEDED') {
    return { code: ErrorCode.RATE_LIMITED, message: 'Misskey rate limit exceeded; retry later.' };
  }
  if (error.status === 401) {
    return {
      code: ErrorCode.UNAUTHENTICATED,
      message: `Misskey refused the token: ${error.message}`,
    };
  }
  if (error.code === 'MAX_FILE_SIZE_EXCEEDED') {
    return { code: ErrorCode.FILE_TOO_LARGE, message: error.message };
  }
  if (error.code === 'INVALID_PARAM') {
    return { code: ErrorCode.BAD_USER_INPUT, message: error.message };
  }
  if (error.code.startsWith('NO_SUCH_')) {
    return { code: ErrorCode.NOT_FOUND, message: error.message };
  }
  if (
    error.status === 403 ||
    error.code === 'ACCESS_DENIED' ||
    error.code === 'ROLE_PERMISSION_DENIED'
  ) {
    return { code: ErrorCode.FORBIDDEN, message: error.message };
  }
  if (error.status === 502 || error.status === 503 || error.status === 504) {
    return { code: ErrorCode.UPSTREAM_UNAVAILABLE, message: 'Misskey is unavailable.' };
  }
  if (error.status >= 500) {
    return { code: ErrorCode.UPSTREAM_ERROR, message: 'Misskey failed with an internal error.' };
  }
  return { code: error.code, message: error.message };
}

/** Turns any upstream failure into a client-safe GraphQLError (no token, no upstream body). */
export function fromUpstream(error: unknown): GraphQLError | unknown {
  if (!(error instanceof UpstreamError)) {
    return error;
  }
  if (error instanceof InvalidCredentialError) {
    return malformedToken();
  }
  if (error instanceof UpstreamRequestRefusedError) {
    return gatewayError(ErrorCode.BAD_USER_INPUT, 'The request cannot be sent to Misskey.', {
      endpoint: error.endpoint,
    });
  }
  if (error instanceof MisskeyApiError) {
    const { code, message } = codeForApiError(error);
    const misskeyMessage = error.status >= 500 ? undefined : misskeyMessageOf(error);
    // Only reasons a domain registered are shown: an unknown 500 reason may carry server internals.
    const reason = error.internalReason;
    const knownReason = reason !== undefined && internalReasons.some((r) => r.match.test(reason));
    return gatewayError(code, message, {
      misskey: {
        code: error.code,
        id: error.id,
        status: error.status,
        endpoint: error.endpoint,
        ...(misskeyMessage ? { message: misskeyMessage } : {}),
        ...(knownReason ? { reason } : {}),
      },
      ...(error.retryAfter !== undefined ? { retryAfter: error.retryAfter } : {}),
      ...(error.code === 'INVALID_PARAM' ? { invalidParam: error.info } : {}),
    });
  }
  if (error instanceof UpstreamTimeoutError) {
    return gatewayError(ErrorCode.UPSTREAM_TIMEOUT, 'Misskey did not answer in time.', {
      endpoint: error.endpoint,
    });
  }
  if (error instanceof CircuitOpenError) {
    const retryAfter = Math.max(1, Math.ceil(error.retryAfterMs / 1000));
    return gatewayError(
      ErrorCode.UPSTREAM_UNAVAILABLE,
      'Misskey is failing; the gateway stopped calling it for a moment.',
      { endpoint: error.endpoint, circuit: 'open', retryAfter },
    );
  }
  if (error instanceof UpstreamUnavailableError) {
    return gatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, 'Misskey cannot be reached.', {
      endpoint: error.endpoint,
    });
  }
  if (error instanceof UpstreamBadResponseError && [502, 503, 504].includes(error.status)) {
    // A proxy in front of Misskey answering for it: Misskey itself is not there.
    return gatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, 'Misskey is unavailable.', {
      endpoint: error.endpoint,
    });
  }
  if (error instanceof UpstreamBadResponseError) {
    return gatewayError(
      ErrorCode.UPSTREAM_BAD_RESPONSE,
      'Misskey sent a response the gateway cannot read.',
      {
        endpoint: error.endpoint,
      },
    );
  }
  return error;
}

function misskeyMessageOf(error: MisskeyApiError): string | undefined {
  const prefix = `${error.endpoint}: ${error.code} (${error.status}): `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : undefined;
}

/** True when `error` is Misskey saying the looked-up thing does not exist. */
export function isNotFound(error: unknown): boolean {
  return (
    error instanceof MisskeyApiError && (error.code.startsWith('NO_SUCH_') || error.status === 404)
  );
}

export function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof GraphQLError;
}

/**
 * Yoga's `maskError`: GraphQL errors the gateway made pass through; an upstream failure a
 * resolver let through unconverted still gets its code; anything else is a bug and becomes
 * `message` ("Unexpected error.") with `INTERNAL_SERVER_ERROR`: no stack, no text of the original
 * (Yoga logs the original).
 */
export function maskUnexpected(error: unknown, message: string): Error {
  let original: unknown = error;
  while (original instanceof GraphQLError && original.originalError) {
    original = original.originalError;
  }
  if (original instanceof GraphQLError) {
    if (isShapeMismatch(original)) {
      return rebase(upstreamShapeError(), error);
    }
    return original === error ? original : rebase(original, error);
  }
  const converted = fromUpstream(original);
  if (converted instanceof GraphQLError) {
    return rebase(converted, error);
  }
  return rebase(
    new GraphQLError(message, { extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } }),
    error,
  );
}

/**
 * graphql-js found a non-list where the schema has a list: only an upstream answer of the wrong
 * shape gets there (resolvers pass Misskey's lists through).
 */
function isShapeMismatch(error: GraphQLError): boolean {
  return (
    error.extensions.code === undefined &&
    error.message.startsWith('Expected Iterable, but did not find one for field')
  );
}

function upstreamShapeError(): GraphQLError {
  return gatewayError(
    ErrorCode.UPSTREAM_BAD_RESPONSE,
    'Misskey sent a response the gateway cannot read.',
  );
}

/** `error`'s message and extensions at the place (path, locations) where `at` was raised. */
function rebase(error: GraphQLError, at: unknown): GraphQLError {
  if (!(at instanceof GraphQLError)) {
    return error;
  }
  return new GraphQLError(error.message, {
    nodes: at.nodes,
    source: at.source,
    positions: at.positions,
    path: at.path,
    extensions: error.extensions,
  });
}
