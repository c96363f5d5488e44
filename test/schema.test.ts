import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildSchema, printSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { hasDeprecations } from '../src/engine/plugins.js';
import { schema } from '../src/schema/index.js';

describe('schema.graphql', () => {
  it('is the schema printed from the code (run `npm run schema` if this fails)', () => {
    const committed = readFileSync(resolve(import.meta.dirname, '../schema.graphql'), 'utf8');
    const printed = `${printSchema(schema)}\n`;
    expect(
      committed === printed,
      'schema.graphql is stale: run `npm run schema` and commit it',
    ).toBe(true);
  });
});

describe('deprecations', () => {
  it('are found wherever they are, so the deprecated-field metric is on exactly when needed', () => {
    expect(hasDeprecations(schema)).toBe(false);
    for (const sdl of [
      'type Query { a: Int @deprecated }',
      'type Query { a(x: Int @deprecated): Int }',
      'type Query { a(x: I): Int } input I { y: Int @deprecated }',
      'type Query { a: E } enum E { X @deprecated Y }',
    ]) {
      expect(hasDeprecations(buildSchema(sdl)), sdl).toBe(true);
    }
    expect(hasDeprecations(buildSchema('type Query { a(x: Int): Int }'))).toBe(false);
  });
});
