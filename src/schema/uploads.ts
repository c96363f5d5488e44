import type { Readable } from 'node:stream';
import { GraphQLError } from 'graphql';
import { builder } from './builder.js';

/**
 * A file of a GraphQL multipart request (the `File` scalar's value), read as it arrives: `stream`
 * yields its bytes straight from the HTTP request, so the gateway never holds the whole file.
 */
export class Upload {
  constructor(
    /** The part's file name, as the client sent it. */
    readonly name: string,
    /** The part's `Content-Type`, as the client sent it. */
    readonly type: string,
    readonly stream: Readable & { truncated?: boolean },
    /** What the request's `Content-Length` says the file has at least (0 when unknown). */
    readonly sizeAtLeast: number,
    /** The gateway's own bound (`MAX_UPLOAD_BYTES`): the stream is cut past it (`truncated`). */
    readonly maxBytes: number,
    /** Aborted when the client goes away before its request was answered. */
    readonly signal: AbortSignal,
    /** Called when the rest of the file is not wanted (see `discard`). */
    readonly onDiscard: () => void = () => {},
  ) {}

  /** Reads the rest of the file into nothing, so the request can finish without it; the
   *  connection is closed after the answer unless the request was read to its end. */
  discard(): void {
    this.onDiscard();
    this.stream.resume();
  }
}

function notAnUpload(): GraphQLError {
  return new GraphQLError(
    'A File is sent as a part of a multipart request (GraphQL multipart request spec), mapped to this variable.',
    { extensions: { code: 'BAD_USER_INPUT' } },
  );
}

builder.scalarType('File', {
  description:
    'A file uploaded in a multipart request (GraphQL multipart request spec): input only.',
  serialize: () => {
    throw new GraphQLError('File is an input type.');
  },
  parseValue: (value) => {
    if (value instanceof Upload) {
      return value;
    }
    throw notAnUpload();
  },
  parseLiteral: () => {
    throw notAnUpload();
  },
});
