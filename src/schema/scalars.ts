import { GraphQLError, Kind } from 'graphql';
import { builder } from './builder.js';

function parseDate(value: unknown): Date {
  const date = typeof value === 'string' || typeof value === 'number' ? new Date(value) : null;
  if (!date || Number.isNaN(date.getTime())) {
    throw new GraphQLError(
      'DateTime must be an ISO 8601 date-time string, e.g. 2026-01-31T12:00:00Z.',
      {
        extensions: { code: 'BAD_USER_INPUT' },
      },
    );
  }
  return date;
}

/** Misskey's own form (`Date.prototype.toISOString`): passed through without a Date round trip. */
const CANONICAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

builder.scalarType('DateTime', {
  description: 'An instant as an ISO 8601 string in UTC, e.g. 2026-11-27T21:10:38.652Z.',
  serialize: (value) => {
    if (value instanceof Date) {
      return value.toISOString();
    }
    return typeof value === 'string' && CANONICAL.test(value)
      ? value
      : new Date(value).toISOString();
  },
  parseValue: parseDate,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) {
      throw new GraphQLError('DateTime must be a string.', {
        extensions: { code: 'BAD_USER_INPUT' },
      });
    }
    return parseDate(ast.value);
  },
});
