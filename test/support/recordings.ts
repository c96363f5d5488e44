import { resolve } from 'node:path';

/** Real Misskey 2026.5.4 answers, kept with the tests (test/fixtures/misskey/README.md). */
export const fixturesDir = resolve(import.meta.dirname, '../fixtures/misskey');
/** Recorded request/response pairs, errors and stream sessions. */
export const recordedDir = resolve(fixturesDir, 'recorded');
/** Replayable scenarios recorded from an empty instance, with their replayer. */
export const scenariosDir = resolve(fixturesDir, 'scenarios');

/** One recorded call (test/fixtures/misskey/recorded/*.json). */
export interface Recording {
  endpoint: string;
  method?: string;
  as: string | null;
  auth?: string;
  request: Record<string, unknown>;
  status: number;
  response: unknown;
}

/**
 * Shape differences between a sandbox answer and a recording: key sets and JSON types, array
 * elements position by position (or against the last recorded one). Values and lengths differ with
 * the data; `null` against a value is accepted for the same reason (e.g. `imageUrl`).
 */
export function shapeProblems(actual: unknown, expected: unknown, path = '$'): string[] {
  const type = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (actual === null || expected === null) {
    return [];
  }
  if (type(actual) !== type(expected)) {
    return [`${path}: ${type(actual)} instead of ${type(expected)}`];
  }
  if (Array.isArray(actual) && Array.isArray(expected)) {
    return expected.length === 0
      ? []
      : actual.flatMap((item, i) =>
          shapeProblems(item, expected[Math.min(i, expected.length - 1)], `${path}[${i}]`),
        );
  }
  if (type(actual) === 'object') {
    const a = actual as Record<string, unknown>;
    const e = expected as Record<string, unknown>;
    return [
      ...Object.keys(e)
        .filter((k) => !(k in a))
        .map((k) => `${path}.${k}: missing`),
      ...Object.keys(a)
        .filter((k) => !(k in e))
        .map((k) => `${path}.${k}: unexpected`),
      ...Object.keys(e)
        .filter((k) => k in a)
        .flatMap((k) => shapeProblems(a[k], e[k], `${path}.${k}`)),
    ];
  }
  return [];
}
