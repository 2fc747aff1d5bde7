import type { FastifyBaseLogger } from 'fastify'
import { isThenable } from './thenable.js'

/**
 * The answer of an application predicate, failing closed: one that throws, or returns a promise (an `async`
 * function, whose promise is always truthy), answers `false`, and is logged.
 */
export function askPredicate (log: FastifyBaseLogger, name: string, context: Record<string, unknown>, consequence: string, predicate: () => unknown): boolean {
  try {
    const answer = predicate()
    if (isThenable(answer)) {
      answer.then(undefined, () => {}) // its outcome is not waited for, so its rejection is no one's to handle
      log.error(context, `${name} returned a promise, but must answer synchronously; ${consequence}`)
      return false
    }
    return Boolean(answer)
  } catch (err) {
    log.error({ err, ...context }, `${name} threw; ${consequence}`)
    return false
  }
}

/** Whether the application's `isValidUsername` takes `username`. */
export function isValidUsername (log: FastifyBaseLogger, check: (username: string) => unknown, username: string): boolean {
  return askPredicate(log, 'isValidUsername', { username }, 'the username is treated as invalid', () => check(username))
}
