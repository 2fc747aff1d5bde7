/**
 * Whether `value` is a promise or another thenable: what an `async` function returns. Reading `then`
 * may throw (a hostile getter); callers read it inside their own `try`.
 */
export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
}
