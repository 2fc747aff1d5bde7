import type { Test } from 'tap'

/** Resolves after the current macrotask, so that rejections nobody handled are reported before it. */
export function nextMacrotask (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

/** Waits until `check()` holds, looking after each macrotask; after `timeoutMilliseconds` it fails with `describe()`. */
export async function eventually (check: () => boolean, describe: () => string, timeoutMilliseconds = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMilliseconds
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`still not so after ${timeoutMilliseconds} ms: ${describe()}`)
    }
    await nextMacrotask()
  }
}

/**
 * Polls `read` every 50 ms until it answers `wanted` (compared as JSON), for at most `timeoutMilliseconds`; answers
 * what it read last, for the caller to assert (so that a failure shows what was there).
 */
export async function settlesTo<T> (read: () => Promise<T>, wanted: T, timeoutMilliseconds = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMilliseconds
  let value = await read()
  while (JSON.stringify(value) !== JSON.stringify(wanted) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 50))
    value = await read()
  }
  return value
}

/** How many timers are active in this process. */
export function timerCount (): number {
  return process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length
}

/**
 * Records the process's unhandled rejections while the test runs: without a listener Node ends the
 * process on the first one, which is what a listener's rejected promise did before it was handled.
 */
export function unhandledRejections (t: Test): unknown[] {
  const seen: unknown[] = []
  const listener = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', listener)
  t.teardown(() => { process.off('unhandledRejection', listener) })
  return seen
}
