import { holdFlag } from './node-flags.js';

/**
 * Building the schema and compiling the plans runs some functions thousands of times once, and V8
 * optimises them with TurboFan: machine code for functions that never run again, plus the
 * compiler's own pages of the node binary, about 2 MB of an idle gateway's RSS. `holdOptimizer()`,
 * called before the modules are loaded, keeps startup on the interpreter and baseline code; the
 * function it returns, called once the server listens, lets TurboFan optimise what requests make
 * hot, as before. A TurboFan flag given on the command line or in NODE_OPTIONS is left alone.
 */
export function holdOptimizer(): () => void {
  return holdFlag(['turbofan', '--opt', '--no-opt'], '--no-turbofan', '--turbofan');
}
