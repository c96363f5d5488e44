import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { printSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
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
