import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allEndpoints } from '../src/sandbox/endpoints/index.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { scenariosDir } from './support/recordings.js';

/**
 * Contract test: replays test/fixtures/misskey/scenarios/a.json — real calls recorded on a real
 * Misskey 2026.5.4 from an empty instance — against an empty sandbox with the scenario's own
 * replayer, which compares status, error code and id, keys and JSON types of every response.
 * Every step of an endpoint the sandbox implements must match; steps of endpoints not implemented
 * yet are listed as pending.
 */
const scenarios = scenariosDir;

interface StepReport {
  n: number;
  endpoint?: string;
  ok: boolean;
  kind: string | null;
  problems: string[];
}

describe('contract: scenario a.json against an empty sandbox', () => {
  let sandbox: Sandbox;
  let steps: StepReport[] = [];
  let summary = '';

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, seed: 'empty' });
    const report = join(mkdtempSync(join(tmpdir(), 'replay-')), 'a.json');
    try {
      await promisify(execFile)(
        process.execPath,
        [
          join(scenarios, 'replay.mjs'),
          join(scenarios, 'a.json'),
          sandbox.origin,
          '--report',
          report,
        ],
        { cwd: resolve(import.meta.dirname, '..'), maxBuffer: 16 * 1024 * 1024 },
      );
    } catch (error) {
      // exit 1 = some step mismatched; the report says which
      if ((error as { code?: number }).code !== 1) {
        throw error;
      }
    }
    const parsed = JSON.parse(readFileSync(report, 'utf8')) as {
      summary: { line: string };
      steps: StepReport[];
    };
    steps = parsed.steps;
    summary = parsed.summary.line;
  }, 120_000);

  afterAll(async () => {
    await sandbox?.close();
  });

  it('matches every step of every endpoint the sandbox implements', () => {
    const implemented = new Set(allEndpoints.map((e) => e.name));
    const pending = [
      ...new Set(
        steps.filter((s) => s.endpoint && !implemented.has(s.endpoint)).map((s) => s.endpoint),
      ),
    ];
    if (pending.length > 0) {
      console.log(`a.json pending endpoints (${pending.length}): ${pending.join(', ')}`);
    }
    console.log(summary);
    const failures = steps
      .filter((s) => s.endpoint && implemented.has(s.endpoint) && !s.ok)
      .map((s) => `#${s.n} ${s.endpoint}: ${s.kind}: ${s.problems.join('; ')}`);
    expect(failures).toEqual([]);
    expect(steps.length).toBe(218);
  });
});
