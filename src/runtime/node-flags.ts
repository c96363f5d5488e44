import { setFlagsFromString } from 'node:v8';

/**
 * Whether the user gave a Node or V8 flag containing one of `fragments`, on the command line or
 * in NODE_OPTIONS: the process-wide settings made at start leave such a choice alone.
 */
export function flagGiven(...fragments: string[]): boolean {
  return [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) =>
    fragments.some((fragment) => arg.includes(fragment)),
  );
}

/**
 * Sets the V8 flag `held` until the returned function sets `restored`, unless the user gave a
 * flag containing one of `fragments` (then both are left alone).
 */
export function holdFlag(fragments: string[], held: string, restored: string): () => void {
  if (flagGiven(...fragments)) {
    return () => undefined;
  }
  setFlagsFromString(held);
  return () => setFlagsFromString(restored);
}
