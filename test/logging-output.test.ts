import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { symbols } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { until } from './support/until.js';

/**
 * The default log output (standard output in production) in front of a reader that stops
 * reading: a named pipe nobody reads fills up, as the pipe to a stuck log collector would.
 */
let dir = '';
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Line {
  level: number;
  msg: string;
  n?: number;
  dropped?: number;
}

describe('log output to a reader that stops reading', () => {
  it('bounds what waits, drops and counts the rest, and reports the count once read again', async () => {
    dir = mkdtempSync(join(tmpdir(), 'misskey-graphql-log-'));
    const fifo = join(dir, 'stdout');
    execFileSync('mkfifo', [fifo]);
    // Read-write, so opening does not wait for a reader; nothing reads it until later.
    const fd = openSync(fifo, 'r+');
    const maxPendingBytes = 64 * 1024;
    const logger = createLogger('info', undefined, { fd, maxPendingBytes });
    const padding = 'x'.repeat(200);
    const total = 5_000; // about 1.3 MB: the pipe's 64 KB and the 64 KB bound hold a tenth
    for (let n = 0; n < total; n++) {
      logger.info({ n, padding }, 'line');
    }
    const lines: Line[] = [];
    const reader = createReadStream(fifo, { encoding: 'utf8' });
    let partial = '';
    reader.on('data', (chunk) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts.map((text) => JSON.parse(text) as Line));
    });
    try {
      await until(() => lines.some((line) => line.dropped !== undefined), 10_000);
      const delivered = lines.filter((line) => line.msg === 'line').map((line) => line.n);
      const warnings = lines.filter((line) => line.dropped !== undefined);
      const dropped = warnings.reduce((sum, line) => sum + (line.dropped ?? 0), 0);
      // Every line was either written, in order, or counted as dropped: none lost silently.
      expect(delivered.length + dropped).toBe(total);
      expect(delivered).toEqual([...delivered].sort((a, b) => (a ?? 0) - (b ?? 0)));
      expect(delivered.length).toBeLessThan(total / 2);
      expect(dropped).toBeGreaterThan(total / 2);
      expect(warnings[0]).toMatchObject({
        level: 40,
        msg: 'log lines dropped: the standard output was not read',
      });
      // Once read again, lines flow as before.
      logger.info({ n: total }, 'line');
      await until(() => lines.some((line) => line.n === total), 10_000);
    } finally {
      // Ending the output closes its descriptor.
      (Reflect.get(logger, symbols.streamSym) as { end(): void }).end();
      reader.destroy();
    }
  }, 20_000);
});
