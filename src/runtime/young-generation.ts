import { holdFlag } from './node-flags.js';

/** V8's own semi-space growth factor. */
const DEFAULT_GROWTH_FACTOR = 2;

/**
 * Startup allocates a burst of objects that all survive (modules, the schema, compiled plans).
 * V8 reads that survival as a reason to grow the young generation to its maximum (two 16 MB
 * semi-spaces), and those pages then stay resident while the process idles: about 25 MB of an
 * idle gateway. `holdYoungGeneration()`, called before the modules are loaded (loading them is
 * most of that burst), keeps the young generation at its initial size; the function it returns,
 * called once the server listens, restores V8's growth, so under load it grows as before (a
 * large young generation keeps per-request garbage cheap to collect). A semi-space setting given
 * on the command line or in NODE_OPTIONS is left alone.
 */
export function holdYoungGeneration(): () => void {
  return holdFlag(
    ['semi-space'],
    '--semi-space-growth-factor=1',
    `--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`,
  );
}
