import { setFlagsFromString } from 'node:v8';
import { flagGiven } from './node-flags.js';

/**
 * undici parses every upstream response with llhttp compiled to WebAssembly. V8 runs it first
 * with its baseline compiler (Liftoff), then recompiles the hot functions with its optimising one
 * (TurboFan) in the background, and that recompilation leaves about 9 MB resident for good (RSS of
 * a process after its first upstream call: +1.3 MB on Liftoff alone, +11 MB with the tier-up).
 * Parsing a response is a few µs of a request that costs hundreds, so the baseline code is kept.
 * Must run before undici compiles its parser (on the first upstream connection); a wasm tiering
 * flag given on the command line or in NODE_OPTIONS is left alone.
 */
const configured = flagGiven('liftoff', 'wasm');

export function keepWasmBaseline(): void {
  if (!configured) {
    setFlagsFromString('--liftoff-only');
  }
}
