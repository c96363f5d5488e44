import type { Readable } from 'node:stream';

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
