import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';
import pkg from '../package.json' with { type: 'json' };

/**
 * `npm run build [-- --outDir <dir>]`: the shipped program as an esbuild bundle in `dist/`.
 *
 * One bundle instead of a tree of modules because the process then holds one module record and
 * one source per chunk instead of ~600 of each: idle RSS of `node dist/main.js` drops by ~12 MB
 * (bench/FINDINGS.md). Identifiers are kept (stack traces stay readable); only whitespace and
 * syntax are minified, which is what saves the memory. Lazily loaded parts (the sandbox, tracing,
 * Redis, GraphiQL's page) stay in chunks of their own, loaded on first use as before.
 *
 * Not bundled: the dev dependencies (so a stray runtime import of one still fails in the
 * production image, as test/artifact.test.ts checks) and packages with native addons, which
 * locate their binaries relative to their own files.
 */
const NATIVE = ['sharp'];

/**
 * graphql 16 ships each module twice, CommonJS (`.js`) and ES (`.mjs`), without an exports map:
 * CommonJS dependents (graphql-jit) and deep imports (`graphql/language/parser`) would get the
 * `.js` tree. Every file of graphql is taken from its ES build instead, so the bundle holds one
 * graphql (its `instanceof` checks hold) and ES importers bind its exports directly rather than
 * each copying ~400 of them into a namespace of getters (~11,000 closures at rest).
 */
const graphqlAsEsm: Plugin = {
  name: 'graphql-as-esm',
  setup(build) {
    build.onResolve({ filter: /^graphql(\/|$)/ }, async (args) => {
      if (args.pluginData === 'graphql-as-esm') {
        return undefined;
      }
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: 'graphql-as-esm',
      });
      if (resolved.errors.length > 0 || !resolved.path.endsWith('.js')) {
        return resolved;
      }
      return { path: resolved.path.replace(/\.js$/, '.mjs') };
    });
  },
};

const { values } = parseArgs({ options: { outDir: { type: 'string', default: 'dist' } } });
const root = resolve(import.meta.dirname, '..');
const outdir = resolve(root, values.outDir);

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'src/main.ts',
    'sandbox/main': 'src/sandbox/main.ts',
    // Imported by the benchmark's subscription gateway, which builds the gateway itself.
    'app/gateway': 'src/app/gateway.ts',
    config: 'src/config.ts',
  },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [graphqlAsEsm],
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  external: [...Object.keys(pkg.devDependencies), ...NATIVE],
  // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
console.log(`built ${join(values.outDir, 'main.js')}`);
