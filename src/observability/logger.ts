import {
  type DestinationStream,
  destination as fileDestination,
  type Logger,
  pino,
  stdSerializers,
} from 'pino';
import type { LogLevel } from '../config.js';

/**
 * Logs are pino JSON lines; the lines of a request (its access line, its upstream calls, its
 * unexpected errors) carry its `reqId`; credentials are redacted by path and scrubbed from error
 * text.
 */

const BEARER = /(bearer\s+)(?:bearer\s+)*[^\s"',;]+/gi;

/** Removes anything shaped like a bearer credential from a text. */
export function scrub(text: string): string {
  return text.replace(BEARER, '$1[redacted]');
}

/**
 * An error for the log: pino's standard fields with every string value scrubbed (values, never
 * serialized JSON, whose escapes a replacement could cut). Whatever the error holds, this never
 * throws: a log line must never change an answer.
 */
export function serializeError(error: unknown): unknown {
  try {
    return scrubValues(stdSerializers.err(error as Error), 0);
  } catch {
    return { type: 'Error', message: '[error could not be serialized]' };
  }
}

const MAX_SCRUB_DEPTH = 8;

function scrubValues(value: unknown, depth: number): unknown {
  if (typeof value === 'string') {
    return scrub(value);
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if (depth >= MAX_SCRUB_DEPTH) {
    return '[nested too deep]';
  }
  if (Array.isArray(value)) {
    return value.map((item) => scrubValues(item, depth + 1));
  }
  const scrubbed: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    scrubbed[key] = scrubValues(item, depth + 1);
  }
  return scrubbed;
}

/** Paths pino replaces with "[redacted]" wherever they appear in a log object. */
export const REDACT_PATHS = [
  'token',
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'connectionParams',
  '*.token',
  '*.authorization',
  '*.connectionParams',
  'i',
  'params.i',
];

/** Where the logger writes when no destination is given: standard output, bounded. */
export interface OutputTarget {
  fd: number;
  maxPendingBytes: number;
}

const STDOUT: OutputTarget = { fd: 1, maxPendingBytes: 4 * 1024 * 1024 };

export function createLogger(
  level: LogLevel,
  destination?: DestinationStream,
  output: OutputTarget = STDOUT,
): Logger {
  const options = {
    level,
    base: { service: 'misskey-graphql' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError },
  };
  if (destination) {
    return pino(options, destination);
  }
  const logger: Logger = pino(
    options,
    bufferedOutput(output, (dropped) =>
      logger.warn({ dropped }, 'log lines dropped: the standard output was not read'),
    ),
  );
  return logger;
}

/**
 * The same logger (stream, level, bindings) without redaction, for lines made only of scalars the
 * gateway chose itself, none of them a credential: the access log. pino's redaction copies every
 * object of a line to look for its paths (with `*.token`, all of them), which was half the cost
 * of an access line, for fields that can never match.
 */
export function unredacted(logger: Logger): Logger {
  return logger.child({}, { redact: [] });
}

/** Size of a block of lines written at once. */
const BLOCK_BYTES = 4 * 1024;
/** How long a log line may wait in the stdout buffer. */
const FLUSH_MS = 100;

/**
 * Standard output, written in blocks: lines are buffered up to 4 KB and flushed every
 * `FLUSH_MS`, and synchronously when the process exits (pino's exit hook). A `write(2)` per
 * access-log line cost more CPU than building the line; larger blocks cost more, not less:
 * sonic-boom measures its pending block (one string) on every line, which copies the whole block
 * each time (12 KB blocks: +3% CPU for `me`). What a killed process can lose is at most the last
 * `FLUSH_MS` of lines.
 *
 * A reader that stops reading (a stuck log collector) blocks a threadpool thread, never the
 * gateway, and what waits for it is bounded (`maxPendingBytes`): lines past the bound are
 * dropped and counted, and `warn` gets the count once a line fits again (a warning that does not
 * fit is not counted; the count waits for the next one).
 */
function bufferedOutput(
  { fd, maxPendingBytes }: OutputTarget,
  warn: (dropped: number) => void,
): DestinationStream {
  const stream = fileDestination({
    dest: fd,
    sync: false,
    minLength: BLOCK_BYTES,
    maxLength: maxPendingBytes,
  });
  let dropped = 0;
  stream.on('drop', () => {
    dropped++;
  });
  setInterval(() => {
    try {
      stream.flush();
    } catch {
      // Destroyed at exit: pino's exit hook has already written what was buffered.
      return;
    }
    if (dropped > 0) {
      const count = dropped;
      warn(count);
      // A warning that did not fit was counted as one more drop: the count waits for next time.
      dropped = dropped > count ? count : 0;
    }
  }, FLUSH_MS).unref();
  return stream;
}
