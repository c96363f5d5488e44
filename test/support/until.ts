/** Resolves once `check` holds, asking every 10 ms; fails after `withinMs`, naming `what`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  withinMs = 5_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > end) {
      throw new Error(`${what} not met within ${withinMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
