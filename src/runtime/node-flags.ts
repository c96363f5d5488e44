/**
 * Whether the user gave a Node or V8 flag containing one of `fragments`, on the command line or
 * in NODE_OPTIONS: the process-wide settings made at start leave such a choice alone.
 */
export function flagGiven(...fragments: string[]): boolean {
  return [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) =>
    fragments.some((fragment) => arg.includes(fragment)),
  );
}
