import { resolve } from 'node:path';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

/**
 * Import graph of src/: no module may import itself back through others. madge reads the
 * TypeScript sources (ESM `.js` specifiers resolved to `.ts` through tsconfig.json), counting type
 * imports and dynamic imports too.
 */
const root = resolve(import.meta.dirname, '..');

describe('architecture', () => {
  it('src/ has no circular imports', async () => {
    const graph = await madge(resolve(root, 'src'), {
      baseDir: root,
      fileExtensions: ['ts'],
      tsConfig: resolve(root, 'tsconfig.json'),
    });
    // The graph really was read: the entry point and its imports resolved to .ts files.
    const modules = graph.obj();
    expect(modules['src/main.ts']).toContain('src/app/gateway.ts');
    expect(modules['src/main.ts']).toContain('src/sandbox/demo.ts');
    expect(modules['src/sandbox/seed.ts']).toContain('src/sandbox/demo.ts');

    const cycles = graph.circular();
    const inSandbox = cycles.filter((cycle) =>
      cycle.some((file) => file.startsWith('src/sandbox/')),
    );
    const elsewhere = cycles.filter((cycle) => !inSandbox.includes(cycle));
    if (elsewhere.length > 0) {
      console.warn(
        `circular imports outside src/sandbox:\n${elsewhere.map((c) => `  ${c.join(' -> ')}`).join('\n')}`,
      );
    }
    expect(inSandbox).toEqual([]);
    expect(elsewhere).toEqual([]);
  }, 60_000);
});
