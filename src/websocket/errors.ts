import { GraphQLError, type GraphQLFormattedError } from 'graphql';

export /** A parse or validation failure of a websocket operation, coded like Yoga codes it on HTTP. */
function parseFailure(error: unknown, code = 'GRAPHQL_PARSE_FAILED'): GraphQLError {
  if (!(error instanceof GraphQLError)) {
    return new GraphQLError('The document could not be checked.', { extensions: { code } });
  }
  // In place, as Yoga codes HTTP parse errors: Yoga caches this very error object by document,
  // and an HTTP request for the same document must get the code too.
  (error.extensions as Record<string, unknown>).code ??= code;
  return error;
}

/** A websocket error without `extensions.http`: it steers HTTP statuses, meaningless here. */
export function withoutHttp(error: GraphQLError): GraphQLFormattedError {
  const { http: _http, ...extensions } = error.extensions ?? {};
  const json = error.toJSON();
  return Object.keys(extensions).length > 0
    ? { ...json, extensions }
    : { ...json, extensions: undefined };
}
