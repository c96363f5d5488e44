import { boundHeapGrowth } from './heap-growth.js';
import { holdOptimizer } from './optimizer-hold.js';
import { keepWasmBaseline } from './wasm-baseline.js';
import { holdYoungGeneration } from './young-generation.js';

/**
 * The process-wide V8 settings of a gateway process (each module says why). Call it before the
 * gateway's modules are loaded, and the function it returns once the server listens.
 */
export function tuneProcess(): () => void {
  const releaseYoungGeneration = holdYoungGeneration();
  const releaseOptimizer = holdOptimizer();
  keepWasmBaseline();
  return () => {
    releaseYoungGeneration();
    releaseOptimizer();
    boundHeapGrowth();
  };
}
