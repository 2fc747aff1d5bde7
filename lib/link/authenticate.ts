import type { AttachUserData, AuthenticateInfo, AuthenticateReject, LinkServerEvents, MarkAsync } from '../../types/index.js'
import { isThenable } from '../thenable.js'

export type AuthenticateListener = LinkServerEvents['authenticate']

/** The reason a link was refused, or `undefined` when it is accepted. */
export type Decision = string | undefined

export const authenticationTimeoutReason = 'authentication timeout'
export const authenticationFailedReason = 'authentication failed'
export const authenticationCancelledReason = 'authentication cancelled'

/** An authentication under way: its decision, and a way to stop waiting for it. */
export interface PendingAuthentication {
  decision: Promise<Decision>
  cancel: () => void
  /** The data attached last (`attach`, or what a listener or handler resolved to), once the decision is made. */
  attached: () => { data: unknown } | undefined
}

/** What the link flow hears from an authentication besides its decision. */
export interface AuthenticationHooks {
  /** A listener or handler threw or rejected with `error`. */
  onError: (error: unknown) => void
  /** `reject` or `markAsync` was called after the decision was made. */
  onLate: (call: 'reject' | 'markAsync' | 'attach') => void
}

/**
 * Runs the `authenticate` listeners for one link request and decides it. The first `reject` wins. A
 * listener that returns a promise is awaited like a handler given to `markAsync`, and `markAsync` may
 * be called at any time before the decision, also from a pending handler: the link is accepted only
 * once nothing is pending. A listener or handler that throws or rejects refuses the link with
 * `authentication failed`, or with its own message when the error is meant for the client (see
 * `reasonOf`). Nothing pending after `timeoutMilliseconds` refuses it with `authentication timeout`;
 * the timer is cleared as soon as the decision is made.
 */
export function authenticate (
  listeners: readonly AuthenticateListener[],
  username: string,
  info: AuthenticateInfo,
  timeoutMilliseconds: number,
  hooks: AuthenticationHooks
): PendingAuthentication {
  let resolveDecision!: (decision: Decision) => void
  const decision = new Promise<Decision>(resolve => { resolveDecision = resolve })
  let decided = false
  let timer: NodeJS.Timeout | undefined
  const decide = (why: Decision): void => {
    if (decided) {
      return
    }
    decided = true
    clearTimeout(timer)
    resolveDecision(why)
  }

  let reason: Decision
  let listenersDone = false
  let pending = 0
  let attached: { data: unknown } | undefined
  const keep = (data: unknown): void => {
    if (data !== undefined && !decided) {
      attached = { data }
    }
  }
  const refuse = (why: string): void => {
    reason ??= why
    if (listenersDone) {
      decide(reason)
    }
  }
  const fail = (error: unknown): void => {
    hooks.onError(error)
    refuse(reasonOf(error))
  }
  const settle = (): void => {
    pending--
    if (listenersDone && pending === 0) {
      decide(reason)
    }
  }
  const wait = (work: PromiseLike<unknown>): void => {
    pending++
    Promise.resolve(work).then(data => { keep(data); settle() }, (error: unknown) => { pending--; fail(error) })
  }

  const reject: AuthenticateReject = (why) => {
    if (decided) {
      hooks.onLate('reject')
      return
    }
    refuse(String(why))
  }
  const markAsync: MarkAsync = (handler) => {
    if (decided) {
      hooks.onLate('markAsync')
      return // the handler is not run: nothing it does can change a decision already made
    }
    wait(new Promise<unknown>(resolve => { resolve(handler()) }))
  }

  const attach: AttachUserData = (data) => {
    if (decided) {
      hooks.onLate('attach')
      return
    }
    attached = { data }
  }

  for (const listener of listeners) {
    try {
      const result: unknown = listener(username, info, reject, markAsync, attach)
      if (isThenable(result)) {
        wait(result)
      }
    } catch (error) {
      fail(error)
    }
  }
  listenersDone = true

  if (reason !== undefined || pending === 0) {
    decide(reason)
  } else {
    timer = setTimeout(decide, timeoutMilliseconds, authenticationTimeoutReason)
  }
  return { decision, cancel: () => decide(authenticationCancelledReason), attached: () => attached }
}

/**
 * The reject reason for an error thrown in authentication. Its own message reaches the client only
 * when the application marks it as meant for the client, as Fastify does for HTTP errors: an
 * `expose: true` property or a 4xx `statusCode`. Anything else could be internal (a database address,
 * a stack) and is only logged.
 */
export function reasonOf (error: unknown): string {
  if (typeof error !== 'object' || error === null) {
    return authenticationFailedReason
  }
  try {
    const { expose, statusCode, message } = error as { expose?: unknown, statusCode?: unknown, message?: unknown }
    const isMeantForClient = expose === true || (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500)
    return isMeantForClient && typeof message === 'string' && message !== '' ? message : authenticationFailedReason
  } catch {
    return authenticationFailedReason // a getter that throws: nothing about this error is safe to send
  }
}
